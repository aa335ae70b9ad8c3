"""Local algebraic rewrites, as a pattern table: (op, test, rewrite) rows.
Gradient graphs are full of multiplications by one and additions of zero."""
from __future__ import annotations

import numpy as np

from ..ir.node import Node, apply as P
from .rewrite import rebuild


def _const(n: Node, v: float) -> bool:
    return n.op == "const" and n.attrs["value"].size == 1 and float(n.attrs["value"].reshape(())) == v \
        or n.op == "fill" and n.attrs["value"] == v


def _keeps_order(shape, perm) -> bool:
    """perm reorders only axes of size 1: the other axes (symbolic ones too) stay in order."""
    big = [p for p in perm if shape[p] != 1]
    return big == sorted(big) and list(perm) != list(range(len(perm)))


def _same(a: Node, b: Node) -> bool:      # replacing b by a keeps the type
    return a.type == b.type


RULES = [
    # x * 1 -> x ; 1 * x -> x
    ("mul", lambda n, a, b: _const(b, 1.0) and _same(a, n), lambda n, a, b: a),
    ("mul", lambda n, a, b: _const(a, 1.0) and _same(b, n), lambda n, a, b: b),
    # x + 0 -> x ; 0 + x -> x ; x - 0 -> x
    ("add", lambda n, a, b: _const(b, 0.0) and _same(a, n), lambda n, a, b: a),
    ("add", lambda n, a, b: _const(a, 0.0) and _same(b, n), lambda n, a, b: b),
    ("sub", lambda n, a, b: _const(b, 0.0) and _same(a, n), lambda n, a, b: a),
    # x / 1 -> x
    ("div", lambda n, a, b: _const(b, 1.0) and _same(a, n), lambda n, a, b: a),
    # --x -> x
    ("neg", lambda n, a: a.op == "neg", lambda n, a: a.inputs[0]),
    # reshape / expand to the same shape -> x
    ("reshape", lambda n, a: a.shape == n.shape, lambda n, a: a),
    ("expand", lambda n, a: a.shape == n.shape, lambda n, a: a),
    # transpose(x, p) -> reshape(x) when p moves only size-1 axes (the data order stays)
    ("transpose", lambda n, a: _keeps_order(a.shape, n.attrs["perm"]),
     lambda n, a: P("reshape", a, shape=n.shape, loc=n.loc)),
    # transpose(transpose(x, p), q) -> x when q undoes p
    ("transpose", lambda n, a: a.op == "transpose"
     and list(np.asarray(a.attrs["perm"])[list(n.attrs["perm"])]) == list(range(n.rank)),
     lambda n, a: a.inputs[0]),
]

_BY_OP: dict[str, list] = {}
for _op, _test, _rw in RULES:
    _BY_OP.setdefault(_op, []).append((_test, _rw))


def simplify(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    def fn(n, ins):
        for test, rw in _BY_OP.get(n.op, ()):
            if test(n, *ins):
                return rw(n, *ins)
        return None
    return rebuild(roots, fn)
