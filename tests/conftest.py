"""Every test runs with the IR linted after every pass of every optimization
(DESIGN.md principle 5: tests lint after every pass; lint errors print the graph)."""
from __future__ import annotations

import pytest

from dslc import passes
from dslc.ir.graph import Graph


def _lint(name, roots):
    try:
        Graph(roots).lint()
    except AssertionError as e:
        raise AssertionError(f"after pass `{name}`: {e}") from None


@pytest.fixture(autouse=True)
def lint_after_each_pass():
    with passes.check_after_each_pass(_lint):
        yield
