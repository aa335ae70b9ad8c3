"""Built-ins: construction and scans (LANGUAGE.md §7) — `arange eye diag
diagonal tril triu cumsum`. Compositions of the primitives in construct.py."""
from __future__ import annotations

from ..ir.node import ShapeError, apply as P, const
from .builtins_core import builtin, norm_axis, tensor


@builtin("n:int, dtype:dtype='i64'")
def arange(n, dtype="i64"):
    """[0, 1, ..., n-1] (n may be a symbolic dim)"""
    if isinstance(n, int) and n < 0:
        raise ShapeError(f"arange needs a size n >= 0, found {n}")
    if dtype == "bool":
        raise ShapeError("arange needs a number dtype, found bool")
    return P("range", n=n, dtype=dtype)


def _eye_bool(n):
    r = P("range", n=n, dtype="i64")
    return P("eq", P("unsqueeze", r, axes=(1,)), P("unsqueeze", r, axes=(0,)))


@builtin("n:int, dtype:dtype='f32'")
def eye(n, dtype="f32"):
    """the n x n identity matrix"""
    if isinstance(n, int) and n < 0:
        raise ShapeError(f"eye needs a size n >= 0, found {n}")
    e = _eye_bool(n)
    return e if dtype == "bool" else P("cast", e, dtype=dtype)


@builtin("v:tensor")
def diag(v):
    """[..., n] -> [..., n, n] with v on the diagonal: diag(v)[i, j] = v[i] if i == j else 0"""
    v = tensor(v)
    if v.rank < 1:
        raise ShapeError(f"diag needs a vector (rank >= 1), found {v.type}")
    zero = const(False if v.dtype == "bool" else 0, v.dtype)
    return P("where", _eye_bool(v.shape[-1]), P("unsqueeze", v, axes=(v.rank,)), zero)


def _square(a, fname):
    if a.rank < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"{fname} needs square matrices [..., n, n], found {a.type}")


@builtin("A:tensor")
def diagonal(A):
    """[..., n, n] -> [..., n]: the diagonal A[..., i, i]"""
    A = tensor(A)
    _square(A, "diagonal")
    if A.dtype == "bool":
        raise ShapeError(f"diagonal needs a number tensor, found {A.type}")
    picked = P("where", _eye_bool(A.shape[-1]), A, const(0, A.dtype))   # where, not * eye: inf stays off
    return P("sum", picked, axes=(A.rank - 1,), keepdims=False)


def _tri(x, k, upper):
    x = tensor(x)
    if x.rank < 2:
        raise ShapeError(f"{'triu' if upper else 'tril'} needs a matrix (rank >= 2), found {x.type}")
    return P("trilu", x, k=int(k), upper=upper)


@builtin("x:tensor, k:int=0")
def tril(x, k=0):
    """the lower triangle of the last two axes: entries with j - i <= k, zeros elsewhere"""
    return _tri(x, k, False)


@builtin("x:tensor, k:int=0")
def triu(x, k=0):
    """the upper triangle of the last two axes: entries with j - i >= k, zeros elsewhere"""
    return _tri(x, k, True)


@builtin("x:tensor, axis:int, reverse:bool=False")
def cumsum(x, axis, reverse=False):
    """running sums along axis: y_i = x_0 + ... + x_i (reverse: x_i + ... + x_{n-1})"""
    x = tensor(x)
    if x.dtype == "bool":
        raise ShapeError(f"cumsum needs a number tensor, found {x.type} (cast it first)")
    if x.rank < 1:
        raise ShapeError(f"cumsum needs a tensor with an axis, found {x.type}")
    return P("cumsum", x, axis=norm_axis(axis, x.rank, x, "cumsum"), reverse=bool(reverse))


