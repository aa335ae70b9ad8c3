"""User-facing errors: every one carries a location and renders as

    file:line:col: error: message
        the source line
              ^
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """A spec's text and the name it is reported under."""
    filename: str
    text: str = field(repr=False)

    def line(self, n: int) -> str:
        lines = self.__dict__.get("_lines")
        if lines is None:            # split once: error messages ask for many lines
            lines = self.text.splitlines()
            object.__setattr__(self, "_lines", lines)
        return lines[n - 1] if 1 <= n <= len(lines) else ""


@dataclass(frozen=True)
class Loc:
    """A position in a spec (1-based line and column). `source` may be None for
    nodes built without text (then only file:line is known, e.g. a Python file)."""
    filename: str
    line: int
    col: int = 1
    source: Source | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}"


class SpecError(Exception):
    """A problem in a spec (or a builder call), reported at a location.

    Attributes: filename, line, column, message (INTERFACE.md)."""

    def __init__(self, message: str, loc: Loc | None = None, notes: list[str] | None = None):
        self.message = message
        self.loc = loc
        self.notes = notes or []
        self.filename = loc.filename if loc else "<unknown>"
        self.line = loc.line if loc else 0
        self.column = loc.col if loc else 0
        super().__init__(self.format())

    def format(self) -> str:
        if self.loc is None:
            head = f"error: {self.message}"
        else:
            head = f"{self.loc.filename}:{self.loc.line}:{self.loc.col}: error: {self.message}"
        out = [head]
        if self.loc is not None and self.loc.source is not None:
            text = self.loc.source.line(self.loc.line)
            if text:
                out.append("    " + text)
                out.append("    " + " " * (self.loc.col - 1) + "^")
        out += [f"    note: {n}" for n in self.notes]
        return "\n".join(out)


class SpecErrors(SpecError):
    """Several independent errors found in one run; behaves as the first."""

    def __init__(self, errors: list[SpecError]):
        assert errors
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, first.loc, first.notes)

    def format(self) -> str:  # all of them, in order
        return "\n".join(e.format() for e in getattr(self, "errors", [])) or super().format()


def suggest(name: str, candidates) -> str:
    """' (did you mean `x`?)' for the nearest candidate, or ''."""
    best = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean `{best[0]}`?)" if best else ""
