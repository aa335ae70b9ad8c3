"""Dims and tensor types written in a spec: `[B, (n + 2*p - k) / s + 1]`.

A dim expression is built from ints, names bound to dims (or int consts/args)
and `+ - * /` (`/` is floor division by a known positive int). Types in
`input` statements bind new symbolic names (`B`, `T`) where they first appear;
a layer signature's patterns bind names to the dims of the actual arguments
(`*` matches any leading dims) and must agree with names bound before.
"""
from __future__ import annotations

from ..errors import SpecError, suggest
from ..ir import dims as D
from ..ir.dims import Sym, show, show_shape
from ..ir.types import DTYPES, TensorType
from ..syntax import ast as A
from ..syntax.fmt import type_text
from .values import describe

_OPS = {"+": D.add, "-": D.sub, "*": D.mul}


def is_dim(v) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, Sym)


def check_dtype(t: A.TensorType) -> str:
    if t.dtype not in DTYPES:
        raise SpecError(f"unknown dtype `{t.dtype}`: expected one of {', '.join(DTYPES)}"
                        + suggest(t.dtype, DTYPES), t.dtype_loc or t.loc)
    return t.dtype


def eval_dim(e, scope, free: dict | None = None):
    """The dim an expression denotes. Names not bound in `scope` are looked up
    in `free` (name -> dim), if given; else they are errors."""
    if isinstance(e, A.Num):
        if not e.is_int:
            raise SpecError(f"a dim must be an integer, found {e.text or e.value}", e.loc)
        return e.value
    if isinstance(e, A.Name):
        if free is not None and e.id in free:
            return free[e.id]
        v = scope.lookup(e.id, e.loc)
        if not is_dim(v):
            raise SpecError(f"`{e.id}` is {describe(v)}, not a dim", e.loc)
        return v
    if isinstance(e, A.UnaryOp):
        return D.mul(-1, eval_dim(e.operand, scope, free))
    if isinstance(e, A.BinOp) and e.op in _OPS:
        return _OPS[e.op](eval_dim(e.lhs, scope, free), eval_dim(e.rhs, scope, free))
    if isinstance(e, A.BinOp) and e.op == "/":
        a, b = eval_dim(e.lhs, scope, free), eval_dim(e.rhs, scope, free)
        if not isinstance(b, int) or b <= 0:
            raise SpecError(f"a dim can only be divided by a known positive integer, found {show(b)}",
                            e.op_loc or e.loc)
        return D.floordiv(a, b)
    raise SpecError("a dim must be an integer, a name or arithmetic (+ - * /) of those", e.loc)


def names_in(e) -> list[A.Name]:
    if isinstance(e, A.Name):
        return [e]
    if isinstance(e, A.UnaryOp):
        return names_in(e.operand)
    if isinstance(e, A.BinOp):
        return names_in(e.lhs) + names_in(e.rhs)
    return []


def declared_type(t: A.TensorType, scope, bind_new: bool) -> TensorType:
    """The type of an `input`/`param`/`state`. With bind_new, a plain name not yet
    bound becomes a new symbolic dim, bound in `scope`."""
    dtype = check_dtype(t)
    shape = []
    for d in t.dims:
        if isinstance(d, A.Star):
            raise SpecError("`*` (any leading dims) is only allowed in a layer's argument types", d.loc)
        if bind_new and isinstance(d, A.Name) and not _bound(d.id, scope):
            scope.bind(d.id, Sym.var(d.id), d.loc, kind="dim")
        dim = eval_dim(d, scope)
        if isinstance(dim, int) and dim < 1:
            raise SpecError(f"a dim must be at least 1, found {dim}"
                            + (" (a tensor with a zero-size dim has no elements)" if dim == 0 else ""), d.loc)
        shape.append(dim)
    return TensorType(dtype, tuple(shape))


def _bound(name: str, scope) -> bool:
    try:
        scope.lookup(name, None)
        return True
    except SpecError:
        return False


def match(t: A.TensorType, value, scope, what: str, loc) -> None:
    """Check a tensor argument against its pattern, binding the pattern's new dim names in scope."""
    found = value.type
    dims = list(t.dims)
    star = bool(dims) and isinstance(dims[0], A.Star)
    if any(isinstance(d, A.Star) for d in dims[1:]):
        raise SpecError("`*` may only come first in a shape pattern", t.loc)
    fixed = dims[1:] if star else dims
    rank_ok = found.rank >= len(fixed) if star else found.rank == len(fixed)

    def fail(reason: str):
        raise SpecError(f"{what} expects {type_text(t)}, found {found}: {reason}", loc)

    if t.explicit_dtype and check_dtype(t) != found.dtype:
        fail(f"dtype {found.dtype} != {t.dtype}")
    if not rank_ok:
        need = f"at least {len(fixed)}" if star else str(len(fixed))
        fail(f"rank {found.rank} != {need}")
    actual = found.shape[found.rank - len(fixed):]
    # plain new names bind first; then every dim (arithmetic included) must agree
    for d, a in zip(fixed, actual):
        if isinstance(d, A.Name) and not _bound(d.id, scope):
            scope.bind(d.id, a, d.loc, kind="dim")
    for d, a in zip(fixed, actual):
        unbound = [n.id for n in names_in(d) if not _bound(n.id, scope)]
        if unbound:
            raise SpecError(f"cannot infer the dim `{unbound[0]}` from {type_text(t)}: name it alone "
                            f"in some dim first", d.loc)
        want = eval_dim(d, scope)
        if want != a:
            expected = show_shape(tuple(_show_pattern_dim(x, scope) for x in fixed))
            fail(f"{show(a)} != {show(want)} (expected {'[*, ' + expected[1:] if star else expected})")


def _show_pattern_dim(d, scope):
    try:
        return eval_dim(d, scope)
    except SpecError:
        return Sym.var("?")
