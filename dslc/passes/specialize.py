"""Mode specialisation: `training(a, b)` becomes a (training graph) or b (inference)."""
from __future__ import annotations

from ..ir.node import Node
from .rewrite import rebuild


def specialize(roots: dict[str, Node], mode: str) -> tuple[dict[str, Node], bool]:
    assert mode in ("train", "infer")
    pick = 0 if mode == "train" else 1
    return rebuild(roots, lambda n, ins: ins[pick] if n.op == "training" else None)
