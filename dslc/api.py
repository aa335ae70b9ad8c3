"""The front end's entry points: `.dl` text or file -> checked Program."""
from __future__ import annotations

from .elaborate import elaborate
from .errors import SpecError
from .ir.model import Program
from .syntax.parser import parse as parse_ast


def parse(text: str, filename: str = "<text>") -> Program:
    """Parse and elaborate `.dl` text (SpecError/SpecErrors for a bad spec)."""
    return elaborate(parse_ast(text, filename), filename)


MAX_SPEC_BYTES = 16 * 2 ** 20     # a spec is text a person writes; more is a wrong file (/dev/zero)


def read_spec(path) -> str:
    """A spec file's text; SpecError when it cannot be read, is not UTF-8 text,
    or is larger than MAX_SPEC_BYTES (read no further than that)."""
    import os
    try:
        if os.path.isdir(path):
            raise SpecError(f"cannot read {path}: it is a folder, expected a .dl file")
        with open(path, "rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"cannot read {path}: larger than {MAX_SPEC_BYTES // 2 ** 20} MiB, "
                        "which is no spec (expected a .dl text file)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"cannot read {path}: not UTF-8 text (byte {e.start}); expected a .dl text file") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")   # universal newlines, as text mode reads


def load(path) -> Program:
    """Read, parse and elaborate a `.dl` file."""
    return parse(read_spec(path), str(path))
