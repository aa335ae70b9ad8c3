"""Issue 12, files and faults: atomic writes with normal permissions, write
failures as one-line errors naming the path, validated checkpoints, checked
CLI options, Keras-style fit, external data for large models, init dtypes."""
from __future__ import annotations

import errno
import json
import os
import stat

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import dslc
import dslc_runtime.files as files
from dslc.cli import main, parser
from dslc.init import initial_value
from dslc_runtime import CheckpointError, Trainer, load_checkpoint

SPEC = """model tiny {
    input x: f32[B, 3]
    input y: i64[B]
    logits = dense(x, 2)
    loss = cross_entropy(logits, y)
    output p = softmax(logits)
}
train tiny {
    data = "tiny.npz"
    optimizer = sgd(lr = 0.1)
    batch = 4
    epochs = 2
}
"""


@pytest.fixture
def tiny(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", x=rng.normal(size=(10, 3)).astype(np.float32),
             y=rng.integers(0, 2, 10))
    p = tmp_path / "tiny.dl"
    p.write_text(SPEC)
    return p


def _no_space(monkeypatch, after: int = 10):
    """Simulate a full disk: file writes in dslc_runtime.files store `after` bytes, then fail."""
    real = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[:after])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: Full(real(fd, mode)))


def test_fmt_w_on_full_disk_keeps_the_spec(tmp_path, monkeypatch, capsys):
    p = tmp_path / "a.dl"
    before = "const H=3\nmodel m {\n  input x: f32[B, 2]\n  output y = x*H\n}\n"
    p.write_text(before)
    _no_space(monkeypatch)
    assert main(["fmt", str(p), "-w"]) == 1
    assert capsys.readouterr().err.strip() == f"dslc fmt: error: cannot write {p}: No space left on device"
    assert p.read_text() == before and sorted(os.listdir(tmp_path)) == ["a.dl"]   # no temp left
    monkeypatch.undo()
    assert main(["fmt", str(p), "-w"]) == 0 and "x * H" in p.read_text()


def test_compile_on_full_disk(tiny, tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.onnx"
    _no_space(monkeypatch)
    assert main(["compile", str(tiny), "-o", str(out)]) == 1
    assert capsys.readouterr().err.strip() == f"dslc compile: error: cannot write {out}: No space left on device"
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_train_on_full_disk(tiny, tmp_path, monkeypatch, capsys):
    _no_space(monkeypatch)
    out = tmp_path / "run"
    assert main(["train", str(tiny), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dslc train: error: cannot write {out}/checkpoint/carried-")
    assert err[0].endswith(": No space left on device")
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_files_get_normal_permissions(tiny, tmp_path, umask):
    old = os.umask(umask)
    try:
        out = tmp_path / "run"
        assert main(["compile", str(tiny), "-o", str(tmp_path / "m.onnx")]) == 0
        assert main(["fmt", str(tiny), "-w"]) == 0
        assert main(["train", str(tiny), "--out", str(out), "--no-progress"]) == 0
    finally:
        os.umask(old)
    written = [tmp_path / "m.onnx", tiny, out / "model.onnx", out / "history.csv", out / "history.jsonl",
               out / "curves.png", out / "checkpoint" / "checkpoint.json",
               *(out / "checkpoint").glob("carried-*.npz")]
    for f in written:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


def test_out_path_is_a_file_or_read_only(tiny, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["train", str(tiny), "--out", str(f), "--no-progress"]) == 1
    assert capsys.readouterr().err.strip() == f"dslc train: error: cannot write into {f}: it is a file, not a folder"
    assert main(["compile", str(tiny), "-o", str(f / "m.onnx")]) == 1
    assert capsys.readouterr().err.strip() == f"dslc compile: error: cannot write into {f}: it is a file, not a folder"
    if os.access("/sys", os.W_OK) and not os.path.ismount("/sys"):
        pytest.skip("no read-only folder here")
    assert main(["compile", str(tiny), "-o", "/sys/m.onnx"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dslc compile: error: cannot write /sys/m.onnx: ") and "\n" not in err


# -- checkpoints ---------------------------------------------------------------------
def _run(tiny, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(tiny), "--out", str(out), "--no-progress"]) == 0
    return out / "checkpoint"


def _edit(ck, fn):
    meta = json.loads((ck / "checkpoint.json").read_text())
    fn(meta)
    (ck / "checkpoint.json").write_text(json.dumps(meta))


CORRUPT = [
    ("format", lambda m: m.update(format=2), "format 2 is not supported (expected 1)"),
    ("epoch_text", lambda m: m.update(epoch="2"), "`epoch` should be a non-negative integer, found '2'"),
    ("step_negative", lambda m: m.update(step=-1), "`step` should be a non-negative integer, found -1"),
    ("step_vs_epoch", lambda m: m.update(step=5), "step 5 does not match epoch 2 at 3 steps per epoch (expected step 6)"),
    ("epoch_vs_history", lambda m: m.update(epoch=1, step=3), "`history` has 2 rows for 1 epochs"),
    ("escape", lambda m: m.update(carried="../../tiny.npz"),
     "`carried` should name an .npz file inside the checkpoint folder, found '../../tiny.npz'"),
    ("absolute", lambda m: m.update(carried="/etc/passwd"), "found '/etc/passwd'"),
    ("missing_file", lambda m: m.update(carried="carried-s000000099.npz"),
     "`carried` names 'carried-s000000099.npz', which is not in the checkpoint folder"),
    ("history_row", lambda m: m["history"][0].update(loss="x"), "`history` row 1 is malformed"),
    ("stopped_early", lambda m: m.update(stopped_early="no"), "`stopped_early` should be true or false"),
    ("best_metric", lambda m: m.update(best_metric={"metric": "loss", "value": 1.0, "epoch": 9, "step": 1}, best=m["carried"]),
     "`best_metric` is malformed"),
    ("round_pos", lambda m: m.update(round_pos=1.5), "`round_pos` should be a non-negative integer, found 1.5"),
    ("list", lambda m: (m.clear()), "format None is not supported"),
]


@pytest.mark.parametrize("name, edit, message", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_corrupted_checkpoint_is_refused(tiny, tmp_path, capsys, name, edit, message):
    ck = _run(tiny, tmp_path)
    _edit(ck, edit)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(ck)
    assert message in str(e.value)
    capsys.readouterr()
    assert main(["train", str(tiny), "--out", str(ck.parent), "--resume", "--epochs", "3", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dslc train: error: checkpoint ") and message in err and "\n" not in err


def test_checkpoint_not_json_and_step_counter(tiny, tmp_path, capsys):
    ck = _run(tiny, tmp_path)
    (ck / "checkpoint.json").write_bytes(b"{\xff")
    with pytest.raises(CheckpointError, match="is unreadable"):
        load_checkpoint(ck)
    ck = _run(tiny, tmp_path / "b")
    meta = json.loads((ck / "checkpoint.json").read_text())
    arrays = dict(np.load(ck / meta["carried"]))
    arrays["step"] = np.array(7, np.int64)
    np.savez(ck / meta["carried"], **arrays)
    assert main(["train", str(tiny), "--out", str(ck.parent), "--resume", "--epochs", "3", "--no-progress"]) == 1
    assert "the carried step counter `step` is 7 but checkpoint.json records step 6" in capsys.readouterr().err


# -- CLI options ---------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "argument --epochs: expected a positive integer, found 0"),
    (["--epochs", "-3"], "argument --epochs: expected a positive integer, found -3"),
    (["--batch", "0"], "argument --batch: expected a positive integer, found 0"),
    (["--epochs", "two"], "argument --epochs: expected a positive integer, found 'two'"),
])
def test_cli_options_validated(tiny, args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", str(tiny), *args])
    assert e.value.code == 1 and message in capsys.readouterr().err


def test_resume_says_what_it_does(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(tiny), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert f"--resume: no checkpoint in {out}/checkpoint; starting from the beginning" in capsys.readouterr().err
    assert main(["train", str(tiny), "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert ("--resume: the checkpoint in " f"{out}/checkpoint has already done 2 epochs, and 2 were asked for; "
            "nothing to train") in capsys.readouterr().out
    assert main(["train", str(tiny), "--out", str(out), "--resume", "--epochs", "3", "--no-progress"]) == 0
    assert load_checkpoint(out / "checkpoint")[1]["epoch"] == 3


def test_version_and_help_on_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("dslc ")
    import argparse

    def walk(p, where):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    yield from walk(sub, f"{where} {name}")
            else:
                yield where, a
    missing = [(w, a.dest) for w, a in walk(parser(), "dslc") if not a.help]
    assert not missing


# -- Trainer.fit: Keras semantics ----------------------------------------------------
def test_fit_twice_trains_n_more(tiny):
    c = dslc.compile(dslc.load(tiny))
    t = Trainer(c, spec_path=str(tiny), progress=False, log=lambda *_: None)
    t.fit(epochs=2)
    assert (t.epoch, t.step) == (2, 6)
    hist = t.fit(epochs=2)
    assert (t.epoch, t.step) == (4, 12) and [r["epoch"] for r in hist] == [1, 2, 3, 4]
    with pytest.raises(Exception, match="epochs should be a positive integer, found 0"):
        t.fit(epochs=0)


# -- large models: external data ----------------------------------------------------
def test_large_models_use_external_data(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(files, "EXTERNAL_DATA_BYTES", 16)     # stands in for 2 GB
    out = tmp_path / "m.onnx"
    assert main(["compile", str(tiny), "-o", str(out)]) == 0
    data = list(tmp_path.glob("m.onnx.*.data"))
    assert len(data) == 1
    m = onnx.load(str(out), load_external_data=False)
    ext = {t.name for t in m.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
    assert "logits.W" in ext
    assert main(["compile", str(tiny), "-o", str(out)]) == 0          # a second save replaces the data
    assert len(list(tmp_path.glob("m.onnx.*.data"))) == 1
    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    p = s.run(["p"], {"x": np.zeros((2, 3), np.float32)})[0]
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-6)
    run = tmp_path / "run"                                           # the runtime loads and writes them too
    assert main(["train", str(tiny), "--out", str(run), "--no-progress"]) == 0
    assert list(run.glob("model.onnx.*.data"))
    ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])


# -- initial values in the param's dtype ---------------------------------------------
def test_initial_values_drawn_in_param_dtype():
    import zlib
    for dtype, npt in (("f32", np.float32), ("f64", np.float64)):
        v = initial_value(("uniform", -0.5, 0.5), (3, 4), dtype, 7, "h.W")
        rng = np.random.default_rng([7, zlib.crc32(b"h.W")])
        want = npt(-0.5) + npt(1.0) * rng.random((3, 4), dtype=npt)
        assert v.dtype == npt and np.array_equal(v, want)
        n = initial_value(("normal", 0.1), (1000,), dtype, 7, "h.W")
        rng = np.random.default_rng([7, zlib.crc32(b"h.W")])
        assert n.dtype == npt and np.array_equal(n, rng.standard_normal((1000,), dtype=npt) * npt(0.1))
        assert abs(n.std() - 0.1) < 0.01
