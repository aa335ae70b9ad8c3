"""A plain ONNX Runtime loop — no dslc code in the loop, only the manifest —
makes the digits MLP's loss fall (issue: training graph for anyone's loop)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import dslc
import dslc_runtime
from helpers import run_steps

ROOT = Path(__file__).resolve().parent.parent


def test_plain_ort_loop_trains_digits():
    c = dslc.compile(dslc.load(str(ROOT / "specs/digits.dl")))
    training = c.training
    del c                                       # from here on: the ONNX model alone
    data = np.load(Path(dslc_runtime.__file__).parent / "datasets" / "digits.npz")
    x, y = data["x"], data["y"]
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(3):
        perm = rng.permutation(len(x))
        batches += [{"x": x[perm[i:i + 64]], "y": y[perm[i:i + 64]]} for i in range(0, len(x) - 63, 64)]
    hist = run_steps(training, batches)
    first = np.mean([h["loss"] for h in hist[:10]])
    last = np.mean([h["loss"] for h in hist[-10:]])
    assert last < 0.3 * first, (first, last)
    assert np.mean([h["acc"] for h in hist[-10:]]) > 0.9
