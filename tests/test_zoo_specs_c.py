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

MODELS = [("textcnn.dl", None), ("recursive.dl", None), ("dlgm.dl", None), ("gmm.dl", None), ("factor_analysis.dl", None),
          ("charlm_transformer.dl", None)]


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


def test_transformer_lm_is_causal_at_any_length():
    """One inference graph for every T (the causal mask and the position codes are built
    for the T fed), and position t's distribution depends on characters 0..t only."""
    import onnxruntime as ort
    m = dslc.compile(dslc.load(str(SPECS / "charlm_transformer.dl")))
    assert [d.dim_param for d in m.inference.graph.input[0].type.tensor_type.shape.dim] == ["T", "B"]
    sess = ort.InferenceSession(m.inference.SerializeToString(), providers=["CPUExecutionProvider"])
    stream = np.load(DATA / "chars_valid.npz")["xs"].T.reshape(-1)
    for T in (1, 5, 70):
        xs = stream[: 2 * T].reshape(2, T).T.copy()
        p = sess.run(["probs"], {"xs": xs})[0]
        assert p.shape == (T, 2, 81)
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
        if T > 1:
            t = T // 2
            changed = xs.copy()
            changed[t + 1:] = (changed[t + 1:] + 7) % 81             # the future, rewritten
            q = sess.run(["probs"], {"xs": changed})[0]
            np.testing.assert_allclose(q[:t + 1], p[:t + 1], atol=1e-5)
            assert np.abs(q[t + 1:] - p[t + 1:]).max() > 1e-3        # ... and it is read
