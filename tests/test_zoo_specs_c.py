"""The specs of issue 13 (text CNN, transformer LM, recursive network, factor analysis,
Gaussian mixture, deep latent Gaussian model): each compiles, every graph passes
onnx.checker's full check, and a few training steps on a slice of its shipped data
give finite losses that go down on a repeated batch."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest

import dslc

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
DATA = SPECS / "data"

MODELS = [("textcnn.dl", None), ("recursive.dl", None), ("dlgm.dl", None), ("gmm.dl", None), ("factor_analysis.dl", None)]


def _batch(trainer, setup_data: str, n: int = 32) -> dict[str, np.ndarray]:
    if setup_data == "digits":
        import dslc_runtime
        path = Path(dslc_runtime.__file__).parent / "datasets" / "digits.npz"
    else:
        path = SPECS / setup_data
    with np.load(path) as z:
        out = {}
        for d in trainer.manifest.data:
            a = z[d.name]
            axis = d.batch_axis if d.batch_axis is not None else 0
            out[d.name] = np.take(a, np.arange(min(n, a.shape[axis])), axis=axis)
        return out


@pytest.mark.parametrize("spec,model", MODELS, ids=lambda v: str(v))
def test_spec_compiles_checks_and_trains(spec, model):
    path = SPECS / spec
    compiled = dslc.compile(dslc.load(str(path)), model)
    for role in ("inference", "training", "evaluation"):
        g = getattr(compiled, role)
        assert g is not None, f"{spec}: no {role} graph"
        onnx.checker.check_model(g, full_check=True)
    tr = dslc.Trainer(compiled, spec_path=str(path), log=lambda s: None, progress=False)
    batch = _batch(tr, compiled.setup.data)
    losses = [tr.train_step(batch)["loss"] for _ in range(4)]
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < losses[0], losses          # the same batch four times: the loss goes down
    assert all(np.isfinite(v).all() for v in tr.params().values())
