"""Checks that keep wrong things from passing silently, shared by `dslc check`
and compile: what the runtime must verify in the data (class-label ranges),
and what would make a valid-looking spec fail later (params that cannot be
stored or initialised)."""
from __future__ import annotations

from .ir.graph import Graph
from .ir.node import Node


def label_classes(roots: dict[str, Node]) -> dict[str, int]:
    """Data inputs used directly as class indices (one_hot / cross_entropy
    labels): input name -> number of classes K, so the runtime can refuse a
    label outside [0, K) instead of training on an all-zero target."""
    out: dict[str, int] = {}
    for n in Graph(roots).order():
        if n.op == "one_hot" and n.inputs[0].op == "input":
            name = n.inputs[0].attrs["name"]
            out[name] = min(out.get(name, n.attrs["depth"]), n.attrs["depth"])
    return out
