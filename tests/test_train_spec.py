"""Training specs end to end through dslc.Trainer: the NaN guard on a spec
built to diverge names the spec line; a run with dropout stopped and resumed
is bit-identical to an uninterrupted one (counter-based random draws)."""
from __future__ import annotations

import numpy as np
import pytest

import dslc
from dslc_runtime import TrainingDiverged

DIVERGE = """\
model boom {
    input x: f32[B, 4]
    input y: f32[B, 1]
    pred = dense(x, 1)
    loss = mse(pred, y)
}

train boom {
    optimizer = sgd(lr = 1e6)
    batch = 8
    epochs = 5
}
"""

DROPOUT = """\
model drop {
    input x: f32[B, 8]
    input y: i64[B]
    h = dense(x, 16, act = relu)
    logits = dense(dropout(h, 0.3), 3)
    loss = cross_entropy(logits, y)
}

train drop {
    optimizer = sgd(lr = 0.1, momentum = 0.9)
    batch = 16
    seed = 3
}
"""


def _data(seed=0, n=64, d=4, classes=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    if classes:
        return {"x": x, "y": rng.integers(0, classes, n).astype(np.int64)}
    return {"x": x, "y": (x.sum(1, keepdims=True) * 3).astype(np.float32)}


def test_nan_guard_names_the_spec_line():
    c = dslc.compile(dslc.parse(DIVERGE, "boom.dl"))
    t = dslc.Trainer(c, progress=False, log=lambda *a: None)
    with pytest.raises(TrainingDiverged) as err:
        t.fit(_data())
    msg = str(err.value)
    assert "boom.dl:5" in msg and "loss" in msg and "step" in msg


def test_dropout_resume_is_bit_identical(tmp_path):
    c = dslc.compile(dslc.parse(DROPOUT, "drop.dl"))
    data = _data(1, 96, 8, classes=3)
    quiet = dict(progress=False, log=lambda *a: None)
    a = dslc.Trainer(c, **quiet)
    a.fit(data, epochs=4)
    b = dslc.Trainer(c, **quiet)
    b.fit(data, epochs=2, out_dir=str(tmp_path))
    r = dslc.Trainer(c, **quiet)
    r.fit(data, epochs=4, out_dir=str(tmp_path), resume=True)
    pa, pr = a.params(), r.params()
    assert pa.keys() == pr.keys()
    for k in pa:
        assert np.array_equal(pa[k], pr[k]), k
