"""The built-in functions of LANGUAGE.md §7, as Python functions over IR nodes.

`BUILTINS` maps each name to a `Builtin` (the function and its signature);
`call_builtin(name, args, kwargs)` is the elaborator's entry point. The
functions live in files by family:
  builtins_math.py  elementwise, operators, reductions, shape, indexing
  builtins_index.py gather, take_along_axis, scatter_add, x[idx]
  builtins_construct.py  arange, eye, diag, diagonal, tril, triu, cumsum
  builtins_einsum.py  einsum
  builtins_linalg.py  cholesky solve solve_triangular inv det logdet
  builtins_more.py  erf sin cos log1p gelu leaky_relu elu silu, var std prod, pad tile split
  builtins_nn.py    softmax, conv, pooling, embedding, dropout, random, losses, grad
"""
from __future__ import annotations

from . import builtins_construct, builtins_einsum, builtins_index, builtins_linalg, builtins_math, builtins_more, builtins_nn  # noqa: F401  (registration)
from .builtins_core import BUILTINS, Arg, Builtin, call_builtin

__all__ = ["Arg", "BUILTINS", "Builtin", "call_builtin"]
