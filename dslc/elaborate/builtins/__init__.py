"""The built-in functions of LANGUAGE.md §7, as Python functions over IR nodes.

`BUILTINS` maps each name to a `Builtin` (the function and its signature);
`call_builtin(name, args, kwargs)` is the elaborator's entry point. The
functions live in two files by family:
  math.py  elementwise, operators, reductions, shape, indexing
  nn.py    softmax, conv, pooling, embedding, dropout, random, losses, grad
"""
from __future__ import annotations

from . import math, nn  # noqa: F401  (registration)
from .core import BUILTINS, Arg, Builtin, call_builtin

__all__ = ["Arg", "BUILTINS", "Builtin", "call_builtin"]
