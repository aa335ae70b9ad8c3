"""Issue 12, wrong numbers: nothing trains silently on wrong targets or statistics."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import dslc
from dslc_runtime import DataError, Trainer, resolve_data_path

CLS = """
model c {
    input x: DT[B, 4]
    input y: i64[B]
    param W: DT[4, 3] ~ glorot_uniform
    param b: DT[3] ~ zeros
    logits = x @ W + b
    loss = cross_entropy(logits, y)
    metric acc = accuracy(logits, y)
}
train c {
    optimizer = sgd(lr = 0.1)
    batch = 4
    epochs = 1
}
"""


def _trainer(dt="f32"):
    c = dslc.compile(dslc.parse(CLS.replace("DT", dt), "cls.dl"))
    return c, Trainer(c, progress=False, log=lambda *_: None)


def _data(y, dt=np.float32):
    return {"x": np.ones((len(y), 4), dt), "y": np.asarray(y, np.int64)}


@pytest.mark.parametrize("y, bad, where", [([0, 1, -1, 2], -1, "[2]"), ([0, 3, 1, 2], 3, "[1]"),
                                           ([7, 2, 9, 2], 7, "[0]")])
def test_cross_entropy_labels_out_of_range(y, bad, where):
    c, t = _trainer()
    assert c.manifest["data"][1]["classes"] == 3
    msg = f"data array `y` holds the label {bad} at index {where}, outside the valid range [0, 3) of its 3 classes"
    with pytest.raises(DataError) as e:
        t.fit(_data(y), epochs=1)
    assert msg in str(e.value)
    assert t.step == 0                      # nothing trained
    with pytest.raises(DataError) as e:
        t.evaluate(_data(y))
    assert msg in str(e.value)
    t.fit(_data([0, 1, 2, 2]), epochs=1)    # in range: fine
    assert t.step == 1


def test_cross_entropy_f64_logits_runs():
    """f64 logits lower one_hot without ORT's (missing) double OneHot kernel."""
    c, t = _trainer("f64")
    x = np.random.default_rng(0).normal(size=(4, 4))
    y = np.array([0, 1, 2, 1])
    s = ort.InferenceSession(c.evaluation.SerializeToString(), providers=["CPUExecutionProvider"])
    loss, = s.run(["loss"], {"x": x, "y": y})
    W, b = t.params()["W"], t.params()["b"]
    z = x @ W + b
    ref = np.mean(np.log(np.exp(z).sum(-1)) - z[np.arange(4), y])
    assert loss.dtype == np.float64 and abs(loss - ref) < 1e-12
    hist = t.fit(_data(y, np.float64), epochs=1)
    assert np.isfinite(hist[0]["loss"])


BN = """
model bn {
    input x: f32[B, 3]
    h = batch_norm(x, momentum = 0.25)
    loss = mean(h ** 2)
    output o = h
}
train bn {
    optimizer = sgd(lr = 0.1)
    batch = 5
    epochs = 1
}
"""

BN2 = """
model bn {
    input x: f32[B, 2, 3, 3]
    h = batch_norm2d(x, momentum = 0.25)
    loss = mean(h ** 2)
    output o = h
}
train bn {
    optimizer = sgd(lr = 0.1)
    batch = 4
    epochs = 1
}
"""


def test_batch_norm_running_var_is_unbiased():
    """torch.nn.BatchNorm1d: running_var = (1 - m) running_var + m * var(x, unbiased=True)."""
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(5, 3)).astype(np.float32)
    t = Trainer(dslc.compile(dslc.parse(BN, "bn.dl")), progress=False, log=lambda *_: None)
    t.fit({"x": x}, epochs=1)
    st = t.params()
    m = 0.25
    np.testing.assert_allclose(st["h.running_var"], (1 - m) * 1.0 + m * x.var(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(st["h.running_mean"], m * x.mean(0), rtol=1e-5, atol=1e-6)


def test_batch_norm2d_running_var_is_unbiased():
    x = np.random.default_rng(2).normal(1.0, 2.0, size=(4, 2, 3, 3)).astype(np.float32)
    t = Trainer(dslc.compile(dslc.parse(BN2, "bn2.dl")), progress=False, log=lambda *_: None)
    t.fit({"x": x}, epochs=1)
    m = 0.25
    np.testing.assert_allclose(t.params()["h.running_var"], (1 - m) + m * x.var(axis=(0, 2, 3), ddof=1),
                               rtol=1e-5)


def test_missing_data_file_is_an_error(tmp_path):
    spec = tmp_path / "s.dl"
    with pytest.raises(DataError) as e:
        resolve_data_path("nonexistent_dir/digits.npz", str(spec))
    assert "data file 'nonexistent_dir/digits.npz' not found" in str(e.value)
    assert 'to use the built-in data set write data = "digits"' in str(e.value)
