"""The one graph-rebuilding loop every pass uses."""
from __future__ import annotations

from ..ir.graph import Graph, Subgraph, subgraphs
from ..ir.node import Node


def rebuild(roots: dict[str, Node], fn) -> tuple[dict[str, Node], bool]:
    """Walk the nodes in order; `fn(node, new_inputs)` returns a replacement
    node or None (keep the node, re-made over its new inputs if they changed).
    Returns (new roots, changed).

    Sub-graph attributes (scan bodies) are rebuilt with the same `fn` first, once
    per sub-graph object, so nodes sharing a body keep sharing the new one."""
    memo: dict[int, Node] = {}
    bodies: dict[int, object] = {}
    changed = False
    for old in Graph(roots).order():
        n = _with_rebuilt_subgraphs(old, fn, bodies) if subgraphs(old) else old
        ins = tuple(memo[i.id] for i in old.inputs)
        r = fn(n, ins)
        if r is None:
            r = n.with_inputs(ins)
        if r is not old:
            changed = True
        memo[old.id] = r
    return {k: memo[v.id] for k, v in roots.items()}, changed


def _with_rebuilt_subgraphs(n: Node, fn, bodies: dict) -> Node:
    """n itself, or n over the same inputs with its sub-graphs rebuilt by fn."""
    attrs = dict(n.attrs)
    for k, v in n.attrs.items():
        if isinstance(v, Subgraph):
            if id(v) not in bodies:
                bodies[id(v)] = (v, v.rebuild(lambda r: rebuild(r, fn)[0]))   # keep v alive: ids stay unique
            attrs[k] = bodies[id(v)][1]
    if all(attrs[k] is n.attrs[k] for k in attrs):
        return n
    return Node(n.op, n.inputs, attrs, n.type, n.loc, n.hint)
