"""einsum (nn family): a sum of products over letter-labelled axes, lowered
to ONNX Einsum. The IR form is explicit and has no ellipsis (`ij,jk->ik`):
the built-in expands `...` into letters and broadcasts operands first, so the
rule below only sees axes whose letters name one size everywhere.

Gradient: y = einsum(s_1, ..., s_n -> o) is linear in each x_k, so
  x̄_k = einsum(o, s_1, ..(skip k).., s_n -> s_k)(ȳ, x_1, ..., x_n),
with two repairs: letters found only in s_k (summed in x_k alone) are
broadcast back, and a letter repeated in s_k (a diagonal, `ii->i`) puts
the cotangent on the diagonal through identity factors δ_{ii'}.
"""
from __future__ import annotations

import numpy as np

from ..ir.dims import show
from ..ir.node import ShapeError, apply as P
from .registry import primitive


def parse(eq: str) -> tuple[list[str], str]:
    lhs, rhs = eq.split("->")
    return lhs.split(","), rhs


def letter_dims(subs: list[str], types) -> dict:
    """letter -> dim, checking ranks and that a letter names one size."""
    dims: dict = {}
    for k, (s, t) in enumerate(zip(subs, types)):
        if len(s) != t.rank:
            raise ShapeError(f"einsum subscripts `{s}` name {len(s)} axes, but operand {k + 1} is {t}")
        for c, d in zip(s, t.shape):
            if c in dims and dims[c] != d:
                raise ShapeError(f"einsum letter `{c}` is {show(dims[c])} in one place and {show(d)} in "
                                 f"operand {k + 1} ({t})")
            dims.setdefault(c, d)
    return dims


def _einsum_shape(types, eq):
    subs, out = parse(eq)
    if len(subs) != len(types):
        raise ShapeError(f"einsum `{eq}` has {len(subs)} operand subscripts, found {len(types)} tensors")
    if len({t.dtype for t in types}) > 1:
        raise ShapeError("einsum operands must have one dtype, found " + ", ".join(str(t) for t in types))
    dims = letter_dims(subs, types)
    if len(set(out)) != len(out):
        raise ShapeError(f"einsum `{eq}`: the output repeats a letter")
    for c in out:
        if c not in dims:
            raise ShapeError(f"einsum `{eq}`: output letter `{c}` is in no operand")
    return types[0].with_shape(tuple(dims[c] for c in out))


def _unique(s: str) -> str:
    return "".join(dict.fromkeys(s))


def _fresh(used: set, n: int) -> list[str]:
    pool = [c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used]
    if len(pool) < n:
        raise ShapeError("einsum needs more than 52 distinct letters")
    used.update(pool[:n])
    return pool[:n]


def _eye(n, dtype):
    r = P("range", n=n, dtype="i64")
    return P("cast", P("eq", P("unsqueeze", r, axes=(1,)), P("unsqueeze", r, axes=(0,))), dtype=dtype)


def _einsum_vjp(g, out, *xs, eq):
    subs, o = parse(eq)
    dims = letter_dims(subs, [x.type for x in xs])
    grads = []
    for k, sk in enumerate(subs):
        if xs[k].dtype not in ("f32", "f64"):
            grads.append(None)
            continue
        others = [(s, x) for j, (s, x) in enumerate(zip(subs, xs)) if j != k]
        seen = set(o).union(*(set(s) for s, _ in others))
        uk = _unique(sk)
        have = "".join(c for c in uk if c in seen)
        terms = [(o, g)] + others
        if len(terms) == 1 and terms[0][0] == have:
            gk = g
        else:
            gk = P("einsum", *(x for _, x in terms), eq=",".join(s for s, _ in terms) + "->" + have)
        if have != uk:                      # letters summed in x_k alone: broadcast back
            axes = tuple(i for i, c in enumerate(uk) if c not in seen)
            gk = P("expand", P("unsqueeze", gk, axes=axes), shape=tuple(dims[c] for c in uk))
        if uk != sk:                        # repeated letters: onto the diagonal, δ_{aa'}
            used = set(eq)
            renamed, deltas = [], []
            first = set()
            for c in sk:
                if c in first:
                    (c2,) = _fresh(used, 1)
                    deltas.append((c + c2, _eye(dims[c], g.dtype)))
                    renamed.append(c2)
                else:
                    first.add(c)
                    renamed.append(c)
            target = "".join(renamed)
            gk = P("einsum", gk, *(e for _, e in deltas),
                   eq=",".join([uk] + [s for s, _ in deltas]) + "->" + target)
        grads.append(gk)
    return tuple(grads)


primitive("einsum", "nn", _einsum_shape, vjp=_einsum_vjp,
          onnx=lambda b, *xs, eq: b.Einsum(*xs, equation=eq),
          np=lambda *xs, eq: np.asarray(np.einsum(eq, *xs), dtype=xs[0].dtype))
