"""Benchmark: `dslc train specs/digits.dl` on this machine.

Measures the whole command's wall time and the validation accuracy, checks
that the exported model.onnx run by plain onnxruntime gives the same
accuracy, and trains a peer — scikit-learn's MLPClassifier with the same
architecture, optimizer, batch, epochs and L2 — on the same split, in the
same run, so the figures are ratios against it.

    python bench/digits.py
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    import dslc_runtime
    data = np.load(Path(dslc_runtime.__file__).parent / "datasets" / "digits.npz")
    x, y = data["x"], data["y"]
    n = int(0.8 * len(x))
    xv, yv = x[n:], y[n:]

    out = Path(tempfile.mkdtemp(prefix="dslc-bench-")) / "digits"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "dslc", "train", str(ROOT / "specs/digits.dl"), "--out", str(out),
                        "--no-progress"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        return 1
    last = [l for l in r.stdout.splitlines() if l.startswith("epoch")][-1]

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    probs = sess.run(["probs"], {"x": xv})[0]
    acc_onnx = float((probs.argmax(-1) == yv).mean())

    from sklearn.neural_network import MLPClassifier
    peer = MLPClassifier(hidden_layer_sizes=(128, 128), solver="adam", learning_rate_init=1e-3,
                         batch_size=64, max_iter=30, alpha=1e-4, random_state=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer.fit(x[:n], y[:n])
    peer_time = time.perf_counter() - t0
    acc_peer = float(peer.score(xv, yv))

    print(f"dslc train specs/digits.dl: {wall:.2f} s wall (whole command: import, compile, 30 epochs, export)")
    print(f"  last epoch: {last}")
    print(f"  exported model.onnx in plain onnxruntime: val accuracy {acc_onnx:.4f}")
    print(f"peer sklearn MLPClassifier(128, 128), adam, 30 epochs: fit {peer_time:.2f} s, val accuracy {acc_peer:.4f}")
    print(f"ratio: dslc wall / peer fit = {wall / peer_time:.2f}; accuracy difference {acc_onnx - acc_peer:+.4f}")
    ok = acc_onnx >= 0.97 and wall < 60
    print("PASS" if ok else "FAIL", "(needs >= 0.97 val accuracy in < 60 s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
