"""Constant folding: a node whose inputs are all constants is computed once,
at compile time, by the NumPy engine (its primitive's `np` rule), and becomes
a constant:   op(c1, ..., ck) -> const(np_op(c1, ..., ck)).

Not folded: leaves and nodes without inputs (a `fill` stays a fill: folding it
would store the whole tensor in the model), random draws, nodes holding a
sub-graph, and results larger than their largest input and MAX_SIZE (the
model would grow). A rule that fails or disagrees with the node's type leaves
the node alone.

A negation also moves into a one-entry float constant factor: -(c / x) ->
(-c) / x and -(c x) -> (-c) x (exact: IEEE negation flips the sign bit), so
the mean's backward 1/N under a loss's minus is one Div, not a Div and a Neg."""
from __future__ import annotations

import warnings

import numpy as np

from ..ir.graph import subgraphs
from ..ir.node import Node, apply, const
from ..ir.types import NUMPY
from ..ops.registry import get
from .rewrite import rebuild

MAX_SIZE = 4096         # elements a folded constant may have beyond its inputs' size


def _foldable(n: Node, ins) -> bool:
    return (bool(ins) and all(i.op == "const" for i in ins) and not n.op.startswith("random_")
            and not subgraphs(n) and get(n.op).np is not None
            and all(isinstance(d, int) for d in n.shape))


def _value(n: Node, ins) -> np.ndarray | None:
    size = int(np.prod(n.shape)) if n.shape else 1
    if size > max(MAX_SIZE, max(i.attrs["value"].size for i in ins)):
        return None
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            v = np.asarray(get(n.op).np(*[i.attrs["value"] for i in ins], **n.attrs))
    except Exception:  # noqa: BLE001 - a rule that cannot run here is simply not folded
        return None
    if v.shape != tuple(n.shape) or v.dtype != np.dtype(NUMPY[n.dtype]):
        return None
    return v


def _signed_factor(n: Node, ins) -> bool:       # neg(c / x) or neg(c * x), c a one-entry float const
    if n.op != "neg" or ins[0].op not in ("mul", "div"):
        return False
    c = ins[0].inputs[0]
    return c.op == "const" and c.attrs["value"].size == 1 and c.dtype in ("f32", "f64")


def fold(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    def fn(n, ins):
        if _signed_factor(n, ins):
            q = ins[0]
            return apply(q.op, const(-q.inputs[0].attrs["value"], q.inputs[0].dtype), q.inputs[1], loc=n.loc)
        if not _foldable(n, ins):
            return None
        v = _value(n, ins)
        if v is None:
            return None
        return Node("const", (), {"value": v}, n.type, n.loc, n.hint)
    return rebuild(roots, fn)
