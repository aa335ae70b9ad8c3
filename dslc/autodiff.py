"""Reverse-mode symbolic differentiation on the IR.

The whole engine: order the nodes, walk them backwards, call each
primitive's vjp rule, un-broadcast, accumulate fan-out. Rules build IR from
differentiable primitives, so the result can be differentiated again.
"""
from __future__ import annotations

from .errors import SpecError
from .ir.graph import Graph
from .ir.node import Node, apply as P, at, const
from .ir.registry import get
from .ops.shape import sum_to


def vjp(outputs: list[Node], seeds: list[Node], wrt: list[Node]) -> list[Node | None]:
    """sum_k seeds_k . d outputs_k / d wrt, for each wrt node (None where no path)."""
    g = Graph({str(i): o for i, o in enumerate(outputs)})
    order = g.order()
    # only nodes on a path wrt -> output need a gradient: one forward sweep
    # in topological order marks everything that depends on a wrt node
    live = {w.id for w in wrt}
    for n in order:
        if n.id not in live and any(i.id in live for i in n.inputs):
            live.add(n.id)
    grads: dict[int, Node] = {}
    for o, s in zip(outputs, seeds):
        if o.id in live:
            _accumulate(grads, o, s)
    for n in reversed(order):
        if n.id not in grads or n.id not in live or not n.inputs:
            continue
        prim = get(n.op)
        if prim.vjp is None:
            raise SpecError(f"cannot differentiate through `{n.op}`", n.loc)
        with at(n.loc):
            parts = prim.vjp(grads[n.id], n, *n.inputs, **n.attrs)
            assert len(parts) == len(n.inputs), f"{n.op}: vjp gave {len(parts)} grads for {len(n.inputs)} inputs"
            for x, gx in zip(n.inputs, parts):
                if gx is None or x.id not in live:
                    continue
                if gx.shape != x.shape:
                    gx = sum_to(gx, x.shape)            # un-broadcast
                _accumulate(grads, x, gx)
    return [grads.get(w.id) for w in wrt]


def _accumulate(grads: dict, x: Node, gx: Node) -> None:
    assert gx.shape == x.shape, f"gradient {gx.type} for {x.type}"
    grads[x.id] = grads[x.id] + gx if x.id in grads else gx     # fan-out: gradients add


def grad(f: Node, wrt: list[Node], loc=None) -> list[Node]:
    """d f / d x for scalar f and each x in wrt (zeros where f does not depend on x)."""
    if f.shape != ():
        raise SpecError(f"grad needs a scalar function, found {f.type}; reduce it first (e.g. with sum)",
                        loc or f.loc)
    if f.dtype not in ("f32", "f64"):
        raise SpecError(f"grad needs a float function, found {f.type}", loc or f.loc)
    with at(loc or f.loc):
        gs = vjp([f], [const(1.0, f.dtype)], wrt)
        return [g if g is not None else zeros_like(x) for g, x in zip(gs, wrt)]


def zeros_like(x: Node) -> Node:
    return P("fill", value=0.0, shape=x.shape, dtype=x.dtype)
