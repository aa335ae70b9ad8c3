"""Built-in: `einsum(spec, a, b, ...)` (LANGUAGE.md §7), NumPy's subscript
language: explicit (`bij,bjk->bik`) or implicit (`ij,jk`: the output is the
letters seen once, sorted), with `...` for broadcast axes. The built-in turns
`...` into letters (broadcasting the operands to one shape) so the einsum
primitive (einsum.py) sees explicit letters only."""
from __future__ import annotations

from ..ir.node import ShapeError, apply as P
from .builtins_core import builtin, unify
from .einsum import _fresh
from .registry import broadcast_shapes

LETTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
MAX_OPERANDS = 8


def _check_subs(spec: str, s: str, what: str):
    if s.count("...") > 1:
        raise ShapeError(f"einsum `{spec}`: {what} `{s}` has more than one `...`")
    bad = set(s.replace("...", "")) - LETTERS
    if bad:
        raise ShapeError(f"einsum `{spec}`: {what} `{s}` has {', '.join(repr(c) for c in sorted(bad))}: "
                         f"subscripts are letters a-z, A-Z and `...`")


def normalize(spec: str, xs: list):
    """(explicit equation without `...`, operands broadcast where `...` needs it)."""
    eq = spec.replace(" ", "")
    if eq.count("->") > 1:
        raise ShapeError(f"einsum `{spec}` has more than one `->`")
    lhs, arrow, rhs = eq.partition("->")
    subs = lhs.split(",")
    if len(subs) != len(xs):
        raise ShapeError(f"einsum `{spec}` has {len(subs)} operand subscripts, found {len(xs)} tensors")
    for k, s in enumerate(subs):
        _check_subs(spec, s, f"operand {k + 1}'s subscripts")
    if arrow:
        _check_subs(spec, rhs, "the output")
    else:                                   # implicit: letters seen once, sorted; `...` first
        counts: dict = {}
        for s in subs:
            for c in s.replace("...", ""):
                counts[c] = counts.get(c, 0) + 1
        rhs = ("..." if any("..." in s for s in subs) else "") + "".join(sorted(c for c, n in counts.items() if n == 1))
    # `...`: the axes an operand has beyond its letters, broadcast across operands
    ell = []
    for k, (s, x) in enumerate(zip(subs, xs)):
        named = len(s.replace("...", ""))
        if "..." not in s:
            ell.append(None)
            continue
        if x.rank < named:
            raise ShapeError(f"einsum subscripts `{s}` name {named} axes, but operand {k + 1} is {x.type}")
        pos = s.index("...")
        ell.append((pos, x.shape[pos:pos + x.rank - named]))
    if "..." in rhs and all(e is None for e in ell):
        raise ShapeError(f"einsum `{spec}`: the output has `...` but no operand does")
    if all(e is None for e in ell):
        return ",".join(subs) + "->" + rhs, xs
    batch = broadcast_shapes(*(e[1] for e in ell if e is not None), what="broadcast the `...` axes of")
    letters = "".join(_fresh(set(eq), len(batch)))
    out_xs, out_subs = [], []
    for s, x, e in zip(subs, xs, ell):
        if e is not None:
            pos, own = e
            if own != batch:                # broadcast this operand's `...` axes to the common ones
                lead = (1,) * (len(batch) - len(own))
                x = P("reshape", x, shape=x.shape[:pos] + lead + own + x.shape[pos + len(own):])
                x = P("expand", x, shape=x.shape[:pos] + batch + x.shape[pos + len(batch):])
            s = s.replace("...", letters)
        out_xs.append(x)
        out_subs.append(s)
    return ",".join(out_subs) + "->" + rhs.replace("...", letters), out_xs


_ops = ", ".join(f"x{i}:tensor=None" for i in range(2, MAX_OPERANDS + 1))


@builtin(f"spec:str, x1:tensor, {_ops}")
def einsum(spec, x1, *rest, **kw):
    """einsum("bij,bjk->bik", a, b): sums of products over lettered axes (up to 8 operands)"""
    xs = [x1] + list(rest) + [kw[f"x{i}"] for i in range(2, MAX_OPERANDS + 1) if kw.get(f"x{i}") is not None]
    xs = [x for x in xs if x is not None]
    xs = unify(*xs, what="einsum")
    for x in xs:
        if x.dtype == "bool":
            raise ShapeError(f"einsum needs number tensors, found {x.type}")
    eq, xs = normalize(spec, xs)
    return P("einsum", *xs, eq=eq)
