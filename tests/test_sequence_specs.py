"""The recurrent specs (specs/charlm.dl, specs/seqclass.dl): they compile to valid
ONNX, train a few steps with finite losses, the char LM's one inference graph runs
at any length, and `clip = norm(c)` bounds an update whose BPTT gradient explodes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import dslc

SPECS = Path(__file__).resolve().parent.parent / "specs"
DATA = SPECS / "data"

MODELS = [("charlm.dl", "charlm"), ("seqclass.dl", "seqclass"),
          ("seqclass.dl", "seqclass_gru"), ("seqclass.dl", "seqclass_rnn")]


def _quiet(_msg):
    pass


_cache: dict = {}


def compiled(spec: str, model: str):
    if (spec, model) not in _cache:
        _cache[spec, model] = dslc.compile(dslc.load(SPECS / spec), model)
    return _cache[spec, model]


def batch_for(spec: str, n: int = 16, T: int | None = None) -> dict[str, np.ndarray]:
    if spec == "charlm.dl":
        d = np.load(DATA / "chars.npz")
        T = T or d["xs"].shape[0]
        return {"xs": d["xs"][:T, :n], "ys": d["ys"][:T, :n]}
    d = np.load(DATA / "digits_rows.npz")
    return {"xs": d["xs"][:, :n], "y": d["y"][:n]}


@pytest.mark.parametrize("spec,model", MODELS)
def test_graphs_are_valid_onnx(spec, model):
    m = compiled(spec, model)
    for g in (m.inference, m.evaluation, m.training):
        assert g is not None
        onnx.checker.check_model(g, full_check=True)


@pytest.mark.parametrize("spec,model", MODELS)
def test_trains_a_few_steps(spec, model):
    tr = dslc.Trainer(compiled(spec, model), progress=False, log=_quiet)
    b = batch_for(spec, T=16)
    losses = [tr.train_step(b)["loss"] for _ in range(4)]
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0]          # the same batch four times: the loss goes down


def test_data_files_match_the_specs():
    chars, valid = np.load(DATA / "chars.npz"), np.load(DATA / "chars_valid.npz")
    for d in (chars, valid):
        assert d["xs"].dtype == d["ys"].dtype == np.int64 and d["xs"].shape[0] == 64
        assert 0 <= d["xs"].min() and d["xs"].max() < 81
        # ys is xs shifted by one character, window by window
        assert np.array_equal(d["xs"][1:], d["ys"][:-1])
    rows = np.load(DATA / "digits_rows.npz")
    flat = np.load(Path(dslc.__file__).resolve().parent.parent / "runtime" / "datasets" / "digits.npz")
    assert rows["xs"].shape == (8, len(flat["y"]), 8)
    assert np.array_equal(rows["xs"].transpose(1, 0, 2).reshape(-1, 64), flat["x"])
    assert sum(p.stat().st_size for p in DATA.glob("*.npz") if p.stem in ("chars", "chars_valid")) < 3e6


def test_charlm_one_graph_any_length():
    m = compiled("charlm.dl", "charlm")
    dims = [d.dim_param for d in m.inference.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["T", "B"]
    sess = ort.InferenceSession(m.inference.SerializeToString(), providers=["CPUExecutionProvider"])
    stream = np.load(DATA / "chars_valid.npz")["xs"].T.reshape(-1)
    first = None
    for T in (1, 5, 300):
        xs = stream[: 3 * T].reshape(3, T).T.copy()
        p = sess.run(["probs"], {"xs": xs})[0]
        assert p.shape == (T, 3, 81)
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
        if first is None:
            first = p
        else:       # causal: step 1 of a long run is the T = 1 run on its first characters
            np.testing.assert_allclose(p[:1, 0], first[:1, 0], atol=1e-6)


# -- clip = norm(c) through backprop through time ----------------------------------------
# A linear recurrent net h_t = x_t Wx + h_{t-1} (1.5 Wh), Wh orthogonal: every singular
# value of the recurrent matrix is 1.5 > 1, so dL/dh_0 grows like 1.5^T (lecture notes
# §7.2, exploding gradients). Two identical models (same paths, same initial values),
# one trained with clip = norm(1.0).
CLIP_SPEC = """
layer linear_rnn(h: [B, m], x: [B, n]) {
    param Wx: [n, m] ~ glorot_uniform
    param Wh: [m, m] ~ orthogonal
    return x @ Wx + h @ (1.5 * Wh)
}

model rnn_clip {
    input xs: f32[T, B, 4]
    input y: f32[B, 1]
    hs = scan(linear_rnn, xs, zeros([B, 16]))
    loss = mse(dense(hs[-1], 1), y)
}

model rnn_noclip {
    input xs: f32[T, B, 4]
    input y: f32[B, 1]
    hs = scan(linear_rnn, xs, zeros([B, 16]))
    loss = mse(dense(hs[-1], 1), y)
}

train rnn_clip {
    optimizer = sgd(lr = 0.1)
    clip = norm(1.0)
    batch = 8
}

train rnn_noclip {
    optimizer = sgd(lr = 0.1)
    batch = 8
}
"""
LR, C = 0.1, 1.0


def _first_update(model: str, T: int) -> dict[str, np.ndarray]:
    prog = dslc.parse(CLIP_SPEC, filename="<clip>")
    tr = dslc.Trainer(dslc.compile(prog, model), progress=False, log=_quiet)
    rng = np.random.default_rng(0)
    batch = {"xs": (0.5 * rng.normal(size=(T, 8, 4))).astype(np.float32),
             "y": rng.normal(size=(8, 1)).astype(np.float32)}
    before = tr.params()
    loss = tr.train_step(batch)["loss"]
    assert np.isfinite(loss)
    after = tr.params()
    return {k: after[k].astype(np.float64) - before[k].astype(np.float64) for k in before}


def _norm(d: dict) -> float:
    return float(np.sqrt(sum(np.sum(v ** 2) for v in d.values())))


def _flat(d: dict) -> np.ndarray:
    return np.concatenate([d[k].ravel() for k in sorted(d)])


def test_clip_bounds_an_exploding_bptt_update():
    T = 30
    clipped, free = _first_update("rnn_clip", T), _first_update("rnn_noclip", T)
    assert sorted(clipped) == ["dense_0.W", "dense_0.b", "hs.Wh", "hs.Wx"]
    grad_norm = _norm(free) / LR                    # sgd: the update is -lr * g
    assert grad_norm > 1e4 * C                      # exploded through 30 steps of BPTT
    assert _norm(clipped) <= LR * C * (1 + 1e-4)    # clip: ||Δθ|| <= lr * c
    assert _norm(clipped) >= LR * C * (1 - 1e-3)    # ... and the clip was active: = lr * c
    assert _norm(free) > 1e3 * LR * C               # without clip: far larger
    a, b = _flat(clipped), _flat(free)              # same direction: the whole gradient is rescaled
    assert float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.999


def test_clip_leaves_a_short_sequence_alone():
    # With T = 1 there is no recurrence to explode through: the gradient norm is below c
    # and the two models take the same step.
    clipped, free = _first_update("rnn_clip", 1), _first_update("rnn_noclip", 1)
    assert _norm(free) < LR * C
    for k in free:
        np.testing.assert_allclose(clipped[k], free[k], rtol=1e-5, atol=1e-7)
