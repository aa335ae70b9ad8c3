"""Local algebraic rewrites, as a pattern table: (op, test, rewrite) rows.
Gradient graphs are full of multiplications by one and additions of zero."""
from __future__ import annotations

import numpy as np

from ..ir.node import Node, apply as P
from ..ir.registry import broadcast_shapes
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


def _bshape(*shapes):
    try:
        return broadcast_shapes(*shapes)
    except Exception:  # noqa: BLE001 - shapes that do not broadcast: the rule does not apply
        return None


def _scalarish(n: Node) -> bool:          # one entry: rank 0 or all dims 1
    return all(d == 1 for d in n.shape)


def _unexpand_ok(n: Node, e: Node, other: Node) -> bool:
    """In n = e op other (either order) with e = expand(x): broadcasting x with other already gives n's shape."""
    return e.op == "expand" and _bshape(e.inputs[0].shape, other.shape) == n.shape


def _binary(n: Node, a: Node, b: Node) -> Node:
    return P(n.op, a, b, loc=n.loc)


def _expand(x: Node, n: Node) -> Node:
    return P("expand", x, shape=n.shape, loc=n.loc)


BROADCASTING = ("add", "sub", "mul", "div")
RESHAPES = ("reshape", "squeeze", "unsqueeze")      # data order kept: only the shape changes
UNARY = ("neg", "exp", "log", "sqrt", "abs", "sigmoid", "tanh", "relu", "cast")


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
    # reshape(r(x)) -> reshape(x) for r a reshape, squeeze or unsqueeze: none of them moves data
    ("reshape", lambda n, a: a.op in RESHAPES, lambda n, a: P("reshape", a.inputs[0], shape=n.shape, loc=n.loc)),
    ("expand", lambda n, a: a.shape == n.shape, lambda n, a: a),
    # expand(expand(x)) -> expand(x)
    ("expand", lambda n, a: a.op == "expand", lambda n, a: _expand(a.inputs[0], n)),
    # expand(x) of a single value x of rank > 0 -> expand(reshape(x, ())): what it feeds stays a
    # scalar (a [1] constant under Div(1, n) * c trips onnxruntime-web 1.30's DivMulFusion)
    ("expand", lambda n, a: a.rank > 0 and _scalarish(a), lambda n, a: _expand(P("reshape", a, shape=(), loc=n.loc), n)),
    # unsqueeze / reshape of a broadcast single value -> one expand of it
    ("unsqueeze", lambda n, a: a.op == "expand" and _scalarish(a.inputs[0]) and a.inputs[0].rank <= n.rank,
     lambda n, a: _expand(a.inputs[0], n)),
    ("reshape", lambda n, a: a.op == "expand" and _scalarish(a.inputs[0]) and a.inputs[0].rank <= n.rank,
     lambda n, a: _expand(a.inputs[0], n)),
    # transpose(x, p) -> reshape(x) when p moves only size-1 axes (the data order stays)
    ("transpose", lambda n, a: _keeps_order(a.shape, n.attrs["perm"]),
     lambda n, a: P("reshape", a, shape=n.shape, loc=n.loc)),
    # transpose(transpose(x, p), q) -> x when q undoes p
    ("transpose", lambda n, a: a.op == "transpose"
     and list(np.asarray(a.attrs["perm"])[list(n.attrs["perm"])]) == list(range(n.rank)),
     lambda n, a: a.inputs[0]),
]

for _op in BROADCASTING:
    RULES += [
        # x op expand(y) -> x op y (and mirrored) when broadcasting already gives the shape
        (_op, lambda n, a, b: _unexpand_ok(n, b, a), lambda n, a, b: _binary(n, a, b.inputs[0])),
        (_op, lambda n, a, b: _unexpand_ok(n, a, b), lambda n, a, b: _binary(n, a.inputs[0], b)),
        # expand(x) op s -> expand(x op s) for a single value s: the op runs on x's entries only
        (_op, lambda n, a, b: a.op == "expand" and _scalarish(b)
         and _bshape(a.inputs[0].shape, b.shape) == a.inputs[0].shape,
         lambda n, a, b: _expand(_binary(n, a.inputs[0], b), n)),
        (_op, lambda n, a, b: b.op == "expand" and _scalarish(a)
         and _bshape(a.shape, b.inputs[0].shape) == b.inputs[0].shape,
         lambda n, a, b: _expand(_binary(n, a, b.inputs[0]), n)),
    ]


def _bias_through_reshape(n: Node, r: Node, b: Node) -> bool:
    """n = reshape(x) op b with b a bias over the last axis, which the reshape keeps."""
    if r.op != "reshape" or r.rank < 1 or r.inputs[0].rank < 1 or b.rank > 1 or b.dtype != r.dtype:
        return False
    d = r.shape[-1]
    return r.inputs[0].shape[-1] == d and b.shape in ((), (d,), (1,)) and n.shape == r.shape


for _op in BROADCASTING:
    # reshape(x) op b -> reshape(x op b) for a bias b over the last axis that the reshape keeps
    # (x = a @ W: ONNX Runtime then fuses the bias into the GEMM)
    RULES += [
        (_op, lambda n, a, b: _bias_through_reshape(n, a, b),
         lambda n, a, b: P("reshape", _binary(n, a.inputs[0], b), shape=n.shape, loc=n.loc)),
        (_op, lambda n, a, b: _bias_through_reshape(n, b, a),
         lambda n, a, b: P("reshape", _binary(n, a, b.inputs[0]), shape=n.shape, loc=n.loc)),
    ]
for _op in RESHAPES:
    # squeeze(unsqueeze(x)) -> x, and any such pair that gives x's shape back
    RULES.insert(0, (_op, lambda n, a: a.op in RESHAPES and a.inputs[0].shape == n.shape, lambda n, a: a.inputs[0]))
for _op in UNARY:
    # f(expand(x)) -> expand(f(x)): f is elementwise
    RULES.append((_op, lambda n, a: a.op == "expand",
                  lambda n, a: _expand(P(n.op, a.inputs[0], loc=n.loc, **n.attrs), n)))

_BY_OP: dict[str, list] = {}
for _op, _test, _rw in RULES:
    _BY_OP.setdefault(_op, []).append((_test, _rw))


def simplify(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    def fn(n, ins):
        for test, rw in _BY_OP.get(n.op, ()):
            if test(n, *ins):
                r = rw(n, *ins)
                if r.type == n.type:        # every rewrite keeps the value's type
                    return r
        return None
    return rebuild(roots, fn)
