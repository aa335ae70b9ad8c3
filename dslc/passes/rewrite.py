"""The one graph-rebuilding loop every pass uses."""
from __future__ import annotations

from ..ir.graph import Graph
from ..ir.node import Node


def rebuild(roots: dict[str, Node], fn) -> tuple[dict[str, Node], bool]:
    """Walk the nodes in order; `fn(node, new_inputs)` returns a replacement
    node or None (keep the node, re-made over its new inputs if they changed).
    Returns (new roots, changed)."""
    memo: dict[int, Node] = {}
    changed = False
    for n in Graph(roots).order():
        ins = tuple(memo[i.id] for i in n.inputs)
        r = fn(n, ins)
        if r is None:
            if all(a is b for a, b in zip(ins, n.inputs)):
                r = n
            else:
                r = Node(n.op, ins, n.attrs, n.type, n.loc, n.hint)
        if r is not n:
            changed = True
        memo[n.id] = r
    return {k: memo[v.id] for k, v in roots.items()}, changed
