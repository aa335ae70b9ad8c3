"""Built-ins: linear algebra, batched over leading dims (LANGUAGE.md §7) —
`cholesky solve solve_triangular inv det logdet`. Compositions of the
primitives in linalg.py."""
from __future__ import annotations

from ..ir.dims import show
from ..ir.node import ShapeError, apply as P, const
from .builtins_core import builtin, tensor, unify


def _matrix(a, fname):
    a = tensor(a)
    if a.dtype not in ("f32", "f64"):
        raise ShapeError(f"{fname} needs a float matrix, found {a.type}")
    if a.rank < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"{fname} needs square matrices [..., n, n], found {a.type}")
    return a


def _rhs(a, b, fname):
    """B as a matrix [..., n, m] (a vector [n] is a column); the flag says it was a vector."""
    a, b = unify(a, b, what=fname)
    if b.rank == 1:
        if b.shape[0] != a.shape[-1]:
            raise ShapeError(f"{fname} of {a.type} needs a right-hand side of {show(a.shape[-1])} rows, "
                             f"found {b.type}")
        return P("unsqueeze", b, axes=(1,)), True
    if b.rank < 2 or b.shape[-2] != a.shape[-1]:
        raise ShapeError(f"{fname} of {a.type} needs a right-hand side [..., {show(a.shape[-1])}, m] "
                         f"or [{show(a.shape[-1])}], found {b.type}")
    return b, False


def _unvector(x, vec):
    return P("squeeze", x, axes=(x.rank - 1,)) if vec else x


@builtin("A:tensor")
def cholesky(A):
    """L lower triangular with L Lᵀ = A, for symmetric positive definite A (reads A's lower
    triangle; NaN where A is not positive definite)"""
    return P("cholesky", _matrix(A, "cholesky"))


@builtin("A:tensor, B:tensor")
def solve(A, B):
    """X with A X = B (B a matrix [..., n, m] or a vector [n]); partial pivoting; NaN if A is singular"""
    A = _matrix(A, "solve")
    B, vec = _rhs(A, B, "solve")
    return _unvector(P("solve", A, B), vec)


@builtin("L:tensor, B:tensor, lower:bool=True")
def solve_triangular(L, B, lower=True):
    """X with L X = B for triangular L (only its lower, or upper, triangle is read)"""
    L = _matrix(L, "solve_triangular")
    B, vec = _rhs(L, B, "solve_triangular")
    return _unvector(P("trisolve", L, B, lower=bool(lower)), vec)


@builtin("A:tensor")
def inv(A):
    """A⁻¹ = solve(A, I)"""
    A = _matrix(A, "inv")
    n = A.shape[-1]
    r = P("range", n=n, dtype="i64")
    eye = P("cast", P("eq", P("unsqueeze", r, axes=(1,)), P("unsqueeze", r, axes=(0,))), dtype=A.dtype)
    return P("solve", A, eye)


@builtin("A:tensor")
def det(A):
    """the determinant (ONNX Det); its gradient det(A) A⁻ᵀ is NaN where A is singular"""
    return P("det", _matrix(A, "det"))


@builtin("A:tensor")
def logdet(A):
    """log det A = 2 Σ log diag(cholesky(A)), for symmetric positive definite A (NaN otherwise)"""
    A = _matrix(A, "logdet")
    L = P("cholesky", A)
    n = A.shape[-1]
    r = P("range", n=n, dtype="i64")
    on_diag = P("eq", P("unsqueeze", r, axes=(1,)), P("unsqueeze", r, axes=(0,)))
    diag = P("sum", P("where", on_diag, L, const(0, A.dtype)), axes=(L.rank - 1,), keepdims=False)
    return 2.0 * P("sum", P("log", diag), axes=(diag.rank - 1,), keepdims=False)
