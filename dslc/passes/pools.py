"""Max pooling before a ReLU instead of after it (a pattern table of one row):

    max_pool(relu(z))  ->  relu(max_pool(z))

relu is non-decreasing, so max_w relu(z) = relu(max_w z) entry for entry. The
gradients agree too, ties included: where a window's max is positive, both
send g to the first argmax of z (relu keeps the order of positive values);
where it is <= 0, relu' = 0 on both sides. The ReLU and its backward mask then
run on the pooled tensor (a quarter of the size under 2 x 2 pooling). Run before
differentiation (passes.FORWARD) so the backward is derived from the new form."""
from __future__ import annotations

from ..ir.node import Node, apply as P
from .rewrite import rebuild

RULES = [
    ("max_pool", lambda n, a: a.op == "relu",
     lambda n, a: P("relu", P("max_pool", a.inputs[0], loc=n.loc, **n.attrs), loc=a.loc)),
]


def pool_before_relu(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    def fn(n, ins):
        for op, test, rw in RULES:
            if n.op == op and test(n, *ins):
                return rw(n, *ins)
        return None
    return rebuild(roots, fn)
