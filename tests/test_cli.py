"""The command line as users drive it (INTERFACE.md): exit codes, messages,
files written — and never a traceback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from dslc.cli import main

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "specs/digits.dl")


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dslc", *args], capture_output=True, text=True, cwd=cwd)


def test_check_prints_params(capsys):
    assert main(["check", DIGITS]) == 0
    out = capsys.readouterr().out
    assert "model digits" in out
    for line in ("h1.W", "[64, 128]", "8,192", "logits.b", "total params: 26,122"):
        assert line in out


def test_bad_spec_exit_1_with_caret(tmp_path):
    p = tmp_path / "bad.dl"
    p.write_text("model m {\n    input x: f32[B, 64]\n    y = x @ zeros([128, 10])\n    loss = mean(y)\n}\n")
    r = run("check", str(p))
    assert r.returncode == 1
    assert f"{p}:3:" in r.stderr and "error:" in r.stderr and "^" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_file_is_an_error_not_a_traceback(tmp_path):
    r = run("check", str(tmp_path / "nope.dl"))
    assert r.returncode == 1 and "Traceback" not in r.stderr and "nope.dl" in r.stderr


def test_compile_inference_and_training(tmp_path):
    assert main(["compile", DIGITS, "-o", str(tmp_path / "m.onnx")]) == 0
    assert main(["compile", DIGITS, "--training", "-o", str(tmp_path / "t.onnx")]) == 0
    m = onnx.load(str(tmp_path / "m.onnx"))
    t = onnx.load(str(tmp_path / "t.onnx"))
    onnx.checker.check_model(m, full_check=True)
    onnx.checker.check_model(t, full_check=True)
    man = json.loads({p.key: p.value for p in t.metadata_props}["dslc.manifest"])
    assert [d["name"] for d in man["data"]] == ["x", "y"]
    assert {c["kind"] for c in man["carried"]} == {"param", "slot", "step"}
    # every node's doc_string leads back to the spec line
    docs = [n.doc_string for n in m.graph.node if n.op_type != "Identity" and n.op_type != "Constant"]
    assert docs and all(d.startswith(DIGITS + ":") for d in docs)


def test_unknown_opset_is_a_usage_error(tmp_path, capsys):
    assert main(["compile", DIGITS, "-o", str(tmp_path / "m.onnx"), "--opset", "9"]) == 1
    assert "opset" in capsys.readouterr().err


def test_cuda_absent_exits_1(tmp_path):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    r = run("train", DIGITS, "--device", "cuda", "--epochs", "1", "--out", str(tmp_path / "o"))
    assert r.returncode == 1
    assert "CUDA" in r.stderr and "Traceback" not in r.stderr


def test_train_writes_outputs_and_resumes(tmp_path):
    out = tmp_path / "run"
    assert main(["train", DIGITS, "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    for f in ("model.onnx", "history.csv", "curves.png"):
        assert (out / f).exists(), f
    assert (out / "checkpoint").is_dir()
    assert main(["train", DIGITS, "--epochs", "3", "--out", str(out), "--resume", "--no-progress"]) == 0
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    p = sess.run(["probs"], {"x": np.zeros((2, 64), np.float32)})[0]
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)


def test_fmt_check(tmp_path):
    p = tmp_path / "a.dl"
    p.write_text("const H=3\nmodel m {\n  input x: f32[B, 2]\n  loss = mean(x*H)\n}\n")
    assert main(["fmt", str(p), "--check"]) == 1
    assert main(["fmt", str(p), "-w"]) == 0
    assert main(["fmt", str(p), "--check"]) == 0


def test_graph_dot(tmp_path):
    assert main(["graph", DIGITS, "-o", str(tmp_path / "g.dot")]) == 0
    text = (tmp_path / "g.dot").read_text()
    assert text.startswith("digraph") and "matmul" in text


def test_bad_data_file_one_line_error(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((10, 63), np.float32), y=np.zeros(10, np.int64))
    r = run("train", DIGITS, "--data", str(bad), "--epochs", "1", "--out", str(tmp_path / "o"), "--no-progress")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "x" in r.stderr and "64" in r.stderr and "63" in r.stderr


def test_train_warns_past_cosine_schedule(tmp_path):
    spec = tmp_path / "cos.dl"
    spec.write_text(Path(DIGITS).read_text().split("train digits")[0] +
                    'train digits {\n    data = "digits"\n    optimizer = sgd(lr = 0.1)\n'
                    '    schedule = cosine(3)\n    batch = 512\n    epochs = 2\n}\n')
    r = run("train", str(spec), "--out", str(tmp_path / "run"), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "warning: schedule cosine(3) ends at step 3 but this run takes 8 steps" in r.stderr
