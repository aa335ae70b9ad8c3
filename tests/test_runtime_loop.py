"""The IOBinding step loop, sessions and devices."""
import numpy as np
import onnxruntime as ort
import pytest

from dslc_runtime import DeviceError, Trainer, make_session, read_manifest, toy
from dslc_runtime.errors import ManifestError
from dslc_runtime.manifest import write_manifest


def quiet(*a, **k):
    pass


def test_softmax_regression_loss_falls():
    tr, ev, inf = toy.softmax_regression()
    t = Trainer(tr, ev, inf, progress=False, log=quiet)
    hist = t.fit(toy.blobs(), epochs=6)
    assert [h["epoch"] for h in hist] == list(range(1, 7))
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"]
    assert hist[-1]["val_acc"] > 0.9
    assert {"loss", "acc", "val_loss", "val_acc", "time"} <= set(hist[0])
    assert int(t.carried_values()["step"]) == t.step == 6 * 12   # 180 train rows / batch 16


def test_iobinding_matches_plain_run():
    """Swapping OrtValues through IOBinding gives exactly what feeding numpy arrays does."""
    tr, _, _ = toy.softmax_regression()
    m = read_manifest(tr)
    data = toy.blobs(64)
    t = Trainer(tr, progress=False, log=quiet, seed=3)
    sess = make_session(tr)
    values = t.carried_values()
    for i in range(4):
        batch = {k: v[i * 16:(i + 1) * 16] for k, v in data.items()}
        got = t.train_step(batch)
        feeds = dict(batch, lr=np.array(0.5, np.float32), **values)
        names = ["loss"] + [c.output for c in m.carried]
        outs = dict(zip(names, sess.run(names, feeds)))
        assert got["loss"] == float(outs["loss"])
        values = {c.input: outs[c.output] for c in m.carried}
        for name, v in t.carried_values().items():
            np.testing.assert_array_equal(v, values[name])


def test_cuda_unavailable_raises_device_error():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    tr, _, _ = toy.softmax_regression()
    with pytest.raises(DeviceError, match=r"CUDA was requested .*available: .*pip install -e '\.\[gpu\]'"):
        Trainer(tr, device="cuda")
    with pytest.raises(DeviceError):
        make_session(tr, device="cuda:0")
    assert issubclass(DeviceError, RuntimeError)


def test_unknown_device():
    tr, _, _ = toy.softmax_regression()
    with pytest.raises(DeviceError, match="unknown device"):
        make_session(tr, device="tpu")


def test_threads_setting():
    tr, _, _ = toy.softmax_regression()
    s = make_session(tr, threads=1)
    assert s.get_session_options().intra_op_num_threads == 1


def test_manifest_errors_are_clear():
    tr, _, _ = toy.softmax_regression()
    write_manifest(tr, {"version": 1, "role": "training", "data": [], "losses": ["nope"]})
    with pytest.raises(ManifestError, match="loss/metric `nope` is not a graph output"):
        read_manifest(tr)
    tr.ClearField("metadata_props")
    with pytest.raises(ManifestError, match="no `dslc.manifest` metadata"):
        read_manifest(tr)
    tr2, _, _ = toy.softmax_regression()
    import json
    obj = json.loads(tr2.metadata_props[0].value)
    obj["carried"][0]["kind"] = "weight"
    write_manifest(tr2, obj)
    with pytest.raises(ManifestError, match="kind 'weight'"):
        read_manifest(tr2)


def test_multi_loss_select_cycles():
    tr = toy.two_losses(steps=["a_loss", "a_loss", "c_loss"])
    t = Trainer(tr, progress=False, log=quiet)
    x = np.linspace(1, 2, 20).astype(np.float32)   # batch 4: 5 runs per epoch
    hist = t.fit({"x": x}, epochs=3)               # 15 runs: a,a,c repeated -> 10 a, 5 c
    v = t.carried_values()
    assert (float(v["na"]), float(v["nc"])) == (10.0, 5.0)
    assert v["a"] > 0.5 and v["c"] < -0.2           # a -> mean(x), c -> -mean(x)
    assert {"a_loss", "c_loss"} <= set(hist[0])
    # round position carries across epochs: 5 runs/epoch, so epoch 2 starts at position 2
    t2 = Trainer(tr, progress=False, log=quiet)
    t2.fit({"x": x}, epochs=1)
    assert t2.round_pos == 5 % 3


def test_hyper_override_and_unknown_setting():
    tr, _, _ = toy.softmax_regression()
    t = Trainer(tr, progress=False, log=quiet, hyper={"lr": 0.0})
    before = t.params()["W"].copy()
    t.fit(toy.blobs(), epochs=1)
    np.testing.assert_array_equal(t.params()["W"], before)
    with pytest.raises(TypeError, match="unknown setting"):
        Trainer(tr, bogus=1)


def test_compiled_object_and_train_block_data():
    """A compiled-model object (.training/.evaluation/.inference) and the train block's
    own data (a built-in data set's name) are enough."""
    import types
    tr, ev, inf = toy.softmax_regression(d=64, k=10, lr=0.1, train={
        "data": "digits", "split": 0.8, "batch": 64, "epochs": 1, "seed": 0})
    logs = []
    t = Trainer(types.SimpleNamespace(training=tr, evaluation=ev, inference=inf), progress=False, log=logs.append)
    hist = t.fit()
    assert t.step == 23 and hist[0]["val_acc"] > 0.5       # 1437 training rows / 64


def test_validation_without_evaluation_graph():
    tr, _, _ = toy.softmax_regression()
    t = Trainer(tr, progress=False, log=quiet)         # train block: split 0.75
    hist = t.fit(toy.blobs(), epochs=2)
    assert "val_loss" in hist[-1] and "val_acc" in hist[-1]
    assert t.step == 2 * 12                              # evaluation ran no updates
