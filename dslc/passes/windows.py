"""Sums of zero-padded windows are concatenations (a pattern table).

The gradient of slicing is padding (ops/shape.py), so the pullback of a tensor
cut into gate blocks, gates = [i | f | o | g], is a sum of padded blocks; one
Concat does it with no zeros written and no adds:

    pad(a, [s, n - e)) + pad(b, [e, n - e'))  ->  pad(concat(a, b), [s, n - e'))   (adjacent along one axis)
    concat(concat(a, b), c)  ->  concat(a, b, c)                                  (same axis)
    pad(x, 0)  ->  x
"""
from __future__ import annotations

from ..ir.node import Node, apply as P
from .rewrite import rebuild
from .scans import find_ops


def _window(n: Node):
    """(axis, start, end) when n = pad(x) along one axis only, else None."""
    if n.op != "pad":
        return None
    axes = [i for i, p in enumerate(n.attrs["pads"]) if tuple(p) != (0, 0)]
    if len(axes) != 1:
        return None
    (a,) = axes
    start, size = n.attrs["pads"][a][0], n.inputs[0].shape[a]
    if not (isinstance(start, int) and isinstance(size, int) and isinstance(n.shape[a], int)):
        return None
    return a, start, start + size


def _adjacent(n, a, b):
    wa, wb = _window(a), _window(b)
    if wa is None or wb is None or wa[0] != wb[0]:
        return None
    if wb[2] == wa[1]:
        a, b, wa, wb = b, a, wb, wa
    if wa[2] != wb[1] or a.shape != n.shape or b.shape != n.shape:
        return None
    axis = wa[0]
    pads = [(0, 0)] * n.rank
    pads[axis] = (wa[1], n.shape[axis] - wb[2])
    both = _flatten(axis, a.inputs[0], b.inputs[0])
    return both if pads[axis] == (0, 0) else P("pad", both, pads=tuple(pads))


def _flatten(axis, *xs):
    parts = []
    for x in xs:
        parts.extend(x.inputs if x.op == "concat" and x.attrs["axis"] == axis else (x,))
    return P("concat", *parts, axis=axis)


RULES = [
    # pad(a) + pad(b), adjacent windows -> pad(concat(a, b))
    ("add", lambda n, a, b: a.op == "pad" and b.op == "pad", _adjacent),
    # concat(concat(a, b), c) -> concat(a, b, c)
    ("concat", lambda n, *xs: any(x.op == "concat" and x.attrs["axis"] == n.attrs["axis"] for x in xs),
     lambda n, *xs: _flatten(n.attrs["axis"], *xs)),
    # pad(x, 0) -> x
    ("pad", lambda n, x: all(tuple(p) == (0, 0) for p in n.attrs["pads"]), lambda n, x: x),
]

_BY_OP: dict[str, list] = {}
for _op, _test, _rw in RULES:
    _BY_OP.setdefault(_op, []).append((_test, _rw))


def windows(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    if not find_ops(roots, ("pad", "concat")):
        return roots, False

    def fn(n, ins):
        for test, rw in _BY_OP.get(n.op, ()):
            if test(n, *ins):
                r = rw(n, *ins)
                if r is not None:
                    return r
        return None
    return rebuild(roots, fn)
