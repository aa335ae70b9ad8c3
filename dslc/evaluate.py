"""The NumPy engine: evaluates IR directly with each primitive's `np` rule.

The second engine beside ONNX Runtime — used for constant folding and for
float64 finite-difference checks of gradients. Symbolic dims are bound from
the shapes of the arrays fed to `input` leaves.

A primitive's `np` rule may evaluate a sub-graph (a scan body) by calling
`evaluate` again: the nested call inherits the dtype override and the bound
dims of the evaluation in progress (`context()`), whose `memo` lets the nodes
of one multi-output computation share a single run.
"""
from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

import numpy as np

from .ir import dims as D
from .ir.graph import Graph
from .ir.node import Node
from .ir.types import NUMPY
from .ir.registry import get


@dataclass
class EvalContext:
    """The evaluation in progress: its dtype override, bound dims and a scratch memo."""
    dtype_override: str | None
    env: dict
    memo: dict = field(default_factory=dict)


_ctx: contextvars.ContextVar = contextvars.ContextVar("dslc_eval", default=None)


def context() -> EvalContext | None:
    return _ctx.get()


def bind_dims(node_types: dict, feeds: dict) -> dict:
    """{symbol: int} from matching declared shapes against fed arrays."""
    env: dict = {}
    for name, ty in node_types.items():
        if name not in feeds:
            continue
        for d, v in zip(ty.shape, np.shape(feeds[name])):
            name = D.plain_name(d)
            if name is not None:
                env.setdefault(name, v)
    return env


def _resolve(v, env):
    if isinstance(v, D.Sym):
        return D.evaluate(v, env)
    if isinstance(v, tuple):
        return tuple(_resolve(x, env) for x in v)
    return v


def evaluate(roots: dict[str, Node], feeds: dict[str, np.ndarray], dtype_override: str | None = None,
             order: list[Node] | None = None) -> dict:
    """Values of the roots. `feeds` maps input/param/state names to arrays.
    `dtype_override='f64'` computes every float in float64 (for FD checks).
    `order`: the roots' nodes in topological order, when already known (a loop body)."""
    outer = _ctx.get()
    if order is None:
        order = Graph(roots).order()
    if dtype_override is None and outer is not None:
        dtype_override = outer.dtype_override
    types = {n.attrs["name"]: n.type for n in order if n.op in ("input", "param", "state")}
    env = {**(outer.env if outer is not None else {}), **bind_dims(types, feeds)}
    token = _ctx.set(EvalContext(dtype_override, env))
    try:
        vals = _run(order, feeds, env, dtype_override)
    finally:
        _ctx.reset(token)
    return {k: vals[r.id] for k, r in roots.items()}


def _run(order, feeds, env, dtype_override) -> dict[int, np.ndarray]:
    vals: dict[int, np.ndarray] = {}
    for n in order:
        if n.op in ("input", "param", "state"):
            name = n.attrs["name"]
            if name not in feeds:
                raise KeyError(f"no value fed for {n.op} `{name}`")
            v = np.asarray(feeds[name])
        else:
            attrs = {k: _resolve(v, env) for k, v in n.attrs.items()}
            if dtype_override and "dtype" in attrs and attrs["dtype"] in ("f32", "f64"):
                attrs["dtype"] = dtype_override
            v = np.asarray(get(n.op).np(*[vals[i.id] for i in n.inputs], **attrs))
        if dtype_override and v.dtype.kind == "f":
            v = v.astype(NUMPY[dtype_override])
        vals[n.id] = v
    return vals
