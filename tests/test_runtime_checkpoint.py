"""Checkpoints: exact resume, crash safety, outputs of a run, export."""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import dslc_runtime.checkpoint as ckpt
import dslc
from dslc_runtime import CheckpointError, RuntimeFailure, Trainer, load_dataset, toy


def quiet(*a, **k):
    pass


def make(**kw):
    tr, ev, inf = toy.softmax_regression()
    return Trainer(tr, ev, inf, progress=False, log=quiet, **kw)


def test_resume_is_bit_identical(tmp_path):
    data = toy.blobs()
    full = make()
    full.fit(data, epochs=4, out_dir=tmp_path / "full")

    part = make()
    part.fit(data, epochs=2, out_dir=tmp_path / "part")          # stopped after 2 epochs
    resumed = make()                                              # a fresh process, in effect
    hist = resumed.fit(data, epochs=4, out_dir=tmp_path / "part", resume=True)

    a, b = full.carried_values(), resumed.carried_values()
    assert a.keys() == b.keys()
    for k in a:   # params, slots, averages, state and step counter
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert resumed.step == full.step and resumed.epoch == 4
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert [h["loss"] for h in hist] == [h["loss"] for h in full.history]


def test_outputs_of_a_run(tmp_path):
    t = make()
    t.fit(toy.blobs(), epochs=2, out_dir=tmp_path)
    for name in ("model.onnx", "history.csv", "history.jsonl", "curves.png", "checkpoint/checkpoint.json"):
        assert (tmp_path / name).is_file(), name
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch,loss,acc,val_loss,val_acc")
    meta = json.loads((tmp_path / "checkpoint/checkpoint.json").read_text())
    assert meta["epoch"] == 2 and meta["step"] == t.step
    carried = np.load(tmp_path / "checkpoint" / meta["carried"], allow_pickle=False)
    assert set(carried.files) == set(t.carried_values())


def test_crash_while_writing_keeps_previous_checkpoint(tmp_path, monkeypatch):
    t = make()
    t.fit(toy.blobs(), epochs=1)
    t.save(tmp_path)
    saved = t.carried_values()
    t.fit(toy.blobs(), epochs=2)

    real_savez = np.savez

    def crash(f, **arrays):   # write part of the file, then die
        real_savez(f, **arrays)
        f.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.np, "savez", crash)
    with pytest.raises(RuntimeFailure, match="cannot write .*carried-s.*npz: disk full"):
        t.save(tmp_path)
    monkeypatch.undo()
    assert not list(tmp_path.glob("*.tmp"))           # the temp file was cleaned up

    fresh = make()
    fresh.load(tmp_path)
    assert fresh.epoch == 1
    for k, v in saved.items():
        np.testing.assert_array_equal(fresh.carried_values()[k], v)


def test_crash_between_npz_and_json(tmp_path, monkeypatch):
    """New npz on disk but the JSON (the commit record) not replaced: the old one still loads."""
    t = make()
    t.fit(toy.blobs(), epochs=1)
    t.save(tmp_path)
    t.fit(toy.blobs(), epochs=2)
    real = ckpt.atomic_write

    def fail_on_json(path, write):
        if path.name == ckpt.META:
            raise KeyboardInterrupt
        real(path, write)

    monkeypatch.setattr(ckpt, "atomic_write", fail_on_json)
    with pytest.raises(KeyboardInterrupt):
        t.save(tmp_path)
    monkeypatch.undo()
    fresh = make()
    fresh.load(tmp_path)
    assert fresh.epoch == 1


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        make().load(tmp_path)
    ckpt.save_checkpoint(tmp_path, {"W": np.zeros((4, 3), np.float32)}, {"step": 0, "epoch": 0})
    with pytest.raises(CheckpointError, match="no value for `b`"):
        make().load(tmp_path)


def test_export_uses_trained_weights(tmp_path):
    t = make()
    data = toy.blobs()
    t.fit(data, epochs=3)
    path = t.export(tmp_path / "model.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    probs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": data["x"]})[0]
    # export uses the Polyak averages in place of the params
    p = t.params(averaged=True)
    logits = data["x"] @ p["W"] + p["b"]
    ref = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, ref / ref.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert not np.array_equal(p["W"], t.params()["W"])     # the average differs from the raw param
    assert (probs.argmax(1) == data["y"]).mean() > 0.9


def test_evaluation_uses_averages():
    tr, ev, inf = toy.softmax_regression(average=0.5)
    t = Trainer(tr, ev, inf, progress=False, log=quiet)
    data = toy.blobs()
    t.fit(data, epochs=2)
    p = t.params(averaged=True)
    logits = data["x"] @ p["W"] + p["b"]
    acc = float((logits.argmax(1) == data["y"]).mean())
    assert t.evaluate(data)["acc"] == pytest.approx(acc)


def test_a_checkpoint_with_one_slot_per_param_loads_into_packed_slots(tmp_path):
    """Checkpoints of graphs from before slots were packed (`h1.W.m`, one per param)
    resume into the packed slot (`opt.m`) with the same values."""
    c = dslc.compile(dslc.load(os.path.join(os.path.dirname(__file__), "..", "specs", "digits.dl")))
    t = Trainer(c, progress=False, log=quiet, batch=64)
    data = {k: v[:256] for k, v in load_dataset("digits", t.manifest.data).arrays.items()}
    t.fit(data, epochs=1, out_dir=tmp_path / "run")
    packed = [ci for ci in t.manifest.carried if ci.kind == "slot" and ci.params]
    assert packed, "digits' Adam slots are packed"
    values, meta, best = ckpt.load_checkpoint(tmp_path / "run" / "checkpoint")
    old = {k: v for k, v in values.items() if k not in {ci.input for ci in packed}}
    for ci in packed:                       # split the packed slot into the old per-param files
        suffix, pos = ci.input.rsplit(".", 1)[-1], 0
        for p in ci.params:
            n = values[p].size
            old[f"{p}.{suffix}"] = values[ci.input][pos:pos + n].reshape(values[p].shape)
            pos += n
    ckpt.save_checkpoint(tmp_path / "old", old, meta, None)
    again = Trainer(c, progress=False, log=quiet, batch=64)
    again.load(tmp_path / "old")
    for k, v in t.carried_values().items():
        np.testing.assert_array_equal(again.carried_values()[k], v, err_msg=k)
