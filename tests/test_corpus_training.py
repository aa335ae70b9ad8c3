"""Every spec's training step: the optimized graph (all passes, the fast lowerings of
issue 11) takes the same steps as the unoptimized one, in ONNX Runtime. The
inference-side counterpart is test_compile_corpus.test_passes_keep_numbers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dslc
from helpers import run_steps, step_feeds

ROOT = Path(__file__).resolve().parent.parent
# bench/specs too: W2's LeNet is the spec whose training graph takes passes/convpool.py's rule
CASES = [(p, name) for p in sorted((ROOT / "specs").glob("*.dl")) + sorted((ROOT / "bench" / "specs").glob("*.dl"))
         for name, model in dslc.load(str(p)).models.items()
         if model.losses and name in dslc.load(str(p)).trains]


@pytest.mark.parametrize("path,name", CASES, ids=[f"{p.relative_to(ROOT).parent}/{p.stem}:{n}" for p, n in CASES])
def test_optimized_training_step_equals_unoptimized(path, name):
    prog = dslc.load(str(path))
    runs = []
    for optimized in (True, False):
        m = dslc.compile(prog, name, optimize=optimized).training
        runs.append(run_steps(m, step_feeds(m, 3, seed=3, default_dim=4)))
    for step, (a, b) in enumerate(zip(*runs)):
        assert a.keys() == b.keys()
        for k in a:
            # atol 5e-5: Adam's first steps take lr g / (|g| + eps), so where |g| is near eps
            # the float reassociation of the gradient moves a param by a fraction of lr
            # (charlm: one of 15,552 weights by 1.7e-5 at lr 3e-3)
            np.testing.assert_allclose(a[k], b[k], rtol=2e-4, atol=5e-5, err_msg=f"step {step + 1}: {k}")
