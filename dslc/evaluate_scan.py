"""The NumPy rule of `scan` (ops/scan.py): the step body evaluated T times by
the NumPy engine; one loop per group of scan nodes sharing a body and inputs."""
from __future__ import annotations

import numpy as np

from .evaluate import context, evaluate
from .ops.scan import SCAN, Body, split


def scan_np(*arrays, body, index, reverse):
    ctx = context()
    memo = ctx.memo if ctx is not None else {}
    key = ("scan", id(body), reverse, tuple(id(a) for a in arrays))
    if key not in memo:                      # keep the arrays: their ids stay unique while memoised
        memo[key] = (arrays, _run(body, arrays, reverse))
    return memo[key][1][index]


def _run(body: Body, arrays, reverse) -> list[np.ndarray]:
    inits, seqs, caps = split(body, arrays)
    T = seqs[0].shape[0]
    if T == 0:
        raise ValueError("scan over an empty sequence")
    fixed = {p.attrs["name"]: v for p, v in zip(body.consts, caps)}
    roots, order = body.roots(), body.order()
    carries = list(inits)
    ys: list[list] = [[None] * T for _ in body.ys]
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        feeds = dict(fixed)
        feeds.update({p.attrs["name"]: v for p, v in zip(body.carries, carries)})
        feeds.update({p.attrs["name"]: s[t] for p, s in zip(body.xs, seqs)})
        out = evaluate(roots, feeds, order=order)
        carries = [out[f"carry{j}"] for j in range(len(carries))]
        for m, y in enumerate(ys):
            y[t] = out[f"y{m}"]
    return carries + [np.stack(y) for y in ys]


SCAN.np = scan_np
