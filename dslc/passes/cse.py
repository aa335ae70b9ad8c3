"""Common-subexpression elimination: one node per (op, inputs, attrs).
Random draws carry a unique uid, so they are never merged."""
from __future__ import annotations

from ..ir.node import Node
from .rewrite import rebuild


def cse(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    seen: dict = {}
    merged = False

    def fn(n, ins):
        nonlocal merged
        cand = n.with_inputs(ins)
        k = cand.key() if cand.op not in ("input", "param", "state") else (cand.op, cand.attrs["name"])
        if k in seen:
            merged = True
            return seen[k]
        seen[k] = cand
        return cand

    out, _ = rebuild(roots, fn)
    return out, merged
