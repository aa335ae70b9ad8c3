"""The NaN/Inf guard and early stopping."""
import numpy as np
import pytest

from dslc_runtime import Trainer, TrainingDiverged, toy


def quiet(*a, **k):
    pass


def test_nan_guard_names_step_loss_and_node():
    t = Trainer(toy.diverging(lr=10.0), progress=False, log=quiet)
    with pytest.raises(TrainingDiverged) as e:
        t.fit({"x": np.ones(16, np.float32)}, epochs=1)
    err = e.value
    msg = str(err)
    assert err.step == 2 and err.loss == "loss"
    assert "step 2" in msg and "loss `loss` is nan" in msg
    assert "Log node" in msg and "toy.dl:7" in msg
    assert err.node["op_type"] == "Log" and err.node["doc_string"] == "toy.dl:7"
    assert t.step == 1            # the failing step did not advance the state
    assert float(t.carried_values()["w"]) == pytest.approx(-9.0)


def test_nan_guard_quiet_when_finite():
    t = Trainer(toy.diverging(lr=0.01), progress=False, log=quiet)
    t.fit({"x": np.ones(16, np.float32)}, epochs=1)
    assert t.step == 4


def test_early_stopping_stops_and_keeps_best(tmp_path):
    tr, ev, inf = toy.softmax_regression(lr=0.5)
    rule = {"patience": 2, "metric": "loss", "mode": "min"}
    logs = []
    t = Trainer(tr, ev, inf, progress=False, log=logs.append, early_stopping=rule)
    data = toy.blobs()
    # make validation improvement impossible after the first epoch: validate on noise labels
    rng = np.random.default_rng(1)
    valid = {"x": rng.standard_normal((60, 4)).astype(np.float32) * 5, "y": rng.integers(0, 3, 60)}
    hist = t.fit(data, epochs=50, valid=valid, out_dir=tmp_path)
    assert len(hist) < 50 and t.stopped_early
    best = min(h["val_loss"] for h in hist)
    best_epoch = next(h["epoch"] for h in hist if h["val_loss"] == best)
    assert len(hist) == best_epoch + 2                                 # patience 2
    assert t.evaluate(valid)["loss"] == pytest.approx(best, rel=1e-5)  # best values restored
    assert any("early stopping" in line for line in logs)
    # resuming a stopped run does nothing more and keeps the best
    again = Trainer(tr, ev, inf, progress=False, log=quiet, early_stopping=rule)
    again.fit(data, epochs=50, valid=valid, out_dir=tmp_path, resume=True)
    assert len(again.history) == len(hist)
    assert again.evaluate(valid)["loss"] == pytest.approx(best, rel=1e-5)
