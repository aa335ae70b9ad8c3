"""Issue 12's fault test: `dslc train` killed with SIGKILL at random points —
some of them inside a checkpoint write, between the temp file and its rename —
and resumed with the same command each time, ends bit-identical to a run that
was never interrupted (params, optimizer slots, step counter, history, model.onnx)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

SPEC = """model k {
    input x: f32[B, 3]
    input y: i64[B]
    h = dense(x, 8, act = tanh)
    d = dropout(h, 0.2)
    logits = dense(d, 3)
    loss = cross_entropy(logits, y)
    metric acc = accuracy(logits, y)
    output probs = softmax(logits)
}
train k {
    data = "k.npz"
    split = 0.8
    optimizer = adam(lr = 1e-2)
    batch = 4
    epochs = 30
    seed = 3
}
"""

# the child: dslc's CLI, with checkpoint writes slowed down and announced on stderr
# (a test-only patch of the runtime's atomic_write, so a kill can land inside one)
CHILD = r"""
import sys, time
import dslc_runtime.files as files
real = files.atomic_write
def slow(path, write):
    def w(f):
        write(f)
        f.flush()
        print("WRITING", path, file=sys.stderr, flush=True)
        time.sleep(0.05)
    return real(path, w)
files.atomic_write = slow
import dslc_runtime.checkpoint as ck
ck.atomic_write = slow
from dslc.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cmd(spec: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", CHILD, "train", str(spec), "--out", str(out), "--resume", "--no-progress"]


def _final(out: Path) -> tuple[dict, list, dict]:
    meta = json.loads((out / "checkpoint" / "checkpoint.json").read_text())
    with np.load(out / "checkpoint" / meta["carried"]) as z:
        carried = {k: z[k] for k in z.files}
    hist = [{k: v for k, v in row.items() if k not in ("time", "examples_per_s")} for row in meta["history"]]
    model = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out / "model.onnx")).graph.initializer}
    return carried, hist, model


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_anywhere_then_resume_is_bit_identical(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "k.npz", x=rng.normal(size=(40, 3)).astype(np.float32), y=rng.integers(0, 3, 40))
    spec = tmp_path / "k.dl"
    spec.write_text(SPEC)
    ref = tmp_path / "ref"
    r = subprocess.run(_cmd(spec, ref), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr

    out = tmp_path / "faulted"
    pick = random.Random(int(os.environ.get("DSLC_FAULT_SEED", "5")))
    kills = {"in_write": 0, "elsewhere": 0}
    for attempt in range(40):
        p = subprocess.Popen(_cmd(spec, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if attempt % 2 == 0:          # kill inside the n-th checkpoint write of this run
            n = pick.randint(1, 8)
            seen = 0
            for line in p.stderr:
                if line.startswith("WRITING") and "checkpoint" in line:
                    seen += 1
                    if seen == n:
                        p.send_signal(signal.SIGKILL)
                        kills["in_write"] += 1
                        break
        else:                          # kill at a random moment
            time.sleep(pick.uniform(0.3, 2.5))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills["elsewhere"] += 1
        rc = p.wait(timeout=300)
        p.stderr.close()
        if rc == 0:
            break
        assert rc == -signal.SIGKILL, rc
    else:
        pytest.fail("the run never finished")
    if rc != 0 or not (out / "model.onnx").exists():
        r = subprocess.run(_cmd(spec, out), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    print("attempts", attempt + 1, kills)
    assert kills["in_write"] >= 3, kills
    a, b = _final(ref), _final(out)
    assert a[0].keys() == b[0].keys()
    for k in a[0]:
        assert np.array_equal(a[0][k], b[0][k]), k       # bit-identical carried values
    assert a[1] == b[1]                                   # same history, epoch by epoch
    for k in a[2]:
        assert np.array_equal(a[2][k], b[2][k]), k
    assert not list(out.rglob("*.tmp"))                   # a later save cleaned what kills left
