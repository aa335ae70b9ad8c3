"""Code-shape rules of DESIGN.md that a test can hold: every function in the
compiler's driver files stays short (issue 10: ≤ 40 lines)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHORT = ["dslc/compile.py", "dslc/step.py"]


@pytest.mark.parametrize("path", SHORT)
def test_functions_at_most_40_lines(path):
    tree = ast.parse((ROOT / path).read_text())
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines, line {n.lineno})" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 40]
    assert not long, f"{path}: functions over 40 lines: {', '.join(long)}"
