"""Max pooling and max reductions before a ReLU instead of after it (a pattern table):

    max_pool(relu(z))  ->  relu(max_pool(z))
    max(relu(z), axes) ->  relu(max(z, axes))        (max over time in a text CNN)

relu is non-decreasing, so max_w relu(z) = relu(max_w z) entry for entry. The
gradients agree too, ties included: where a window's max is positive, both
send g where z attains it (the first argmax for max_pool, an equal share of the
ties for max; relu keeps positive values apart and in order); where it is <= 0,
relu' = 0 on both sides. The ReLU and its backward mask then run on the pooled
tensor (a quarter of the size under 2 x 2 pooling). Run before differentiation
(passes.FORWARD) so the backward is derived from the new form."""
from __future__ import annotations

from ..ir.node import Node, apply as P
from .rewrite import rebuild

RULES = [
    ("max_pool", lambda n, a: a.op == "relu",
     lambda n, a: P("relu", P("max_pool", a.inputs[0], loc=n.loc, **n.attrs), loc=a.loc)),
    ("max", lambda n, a: a.op == "relu",
     lambda n, a: P("relu", P("max", a.inputs[0], loc=n.loc, **n.attrs), loc=a.loc)),
]


def pool_before_relu(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    def fn(n, ins):
        for op, test, rw in RULES:
            if n.op == op and test(n, *ins):
                return rw(n, *ins)
        return None
    return rebuild(roots, fn)
