"""The front end's entry points: `.dl` text or file -> checked Program."""
from __future__ import annotations

from .elaborate import elaborate
from .errors import SpecError
from .ir.model import Program
from .syntax.parser import parse as parse_ast


def parse(text: str, filename: str = "<text>") -> Program:
    """Parse and elaborate `.dl` text (SpecError/SpecErrors for a bad spec)."""
    return elaborate(parse_ast(text, filename), filename)


def load(path) -> Program:
    """Read, parse and elaborate a `.dl` file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    return parse(text, str(path))
