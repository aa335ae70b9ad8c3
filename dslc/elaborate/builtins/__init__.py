"""The built-in functions of LANGUAGE.md §7, as Python functions over IR nodes.

`BUILTINS` maps each name to a `Builtin` (the function and its signature);
`call_builtin(name, args, kwargs)` is the elaborator's entry point. The
functions live in files by family:
  math.py       elementwise, operators, reductions, shape, indexing
  nn.py         softmax, conv, pooling, embedding, dropout, random, losses, grad
  index.py      gather, take_along_axis, scatter_add, x[idx]
  construct.py  arange, eye, diag, diagonal, tril, triu, cumsum
  more.py       erf, gelu, log1p, leaky_relu, elu, silu, var, std, pad, tile, split
  einsum.py     einsum
  linalg.py     cholesky, solve, solve_triangular, inv, det, logdet
"""
from __future__ import annotations

from . import construct, einsum, index, linalg, math, more, nn  # noqa: F401  (registration)
from .core import BUILTINS, Arg, Builtin, call_builtin

__all__ = ["Arg", "BUILTINS", "Builtin", "call_builtin"]
