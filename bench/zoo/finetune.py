"""Zoo entry for ONNX import (issue 16): a classifier trained elsewhere (PyTorch,
exported to ONNX) fine-tuned by dslc on a shifted task with all but its last
layer frozen. Both figures are measured by onnxruntime on the validation split
(`split = 0.8`): the original .onnx file as shipped, and dslc's trained export."""
from __future__ import annotations

import numpy as np

from bench.zoo import Entry, Result
from bench.zoo.supervised import SPECS, infer, train


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(-1) == y).mean())


def finetune() -> Result:
    import onnxruntime as ort
    d = np.load(SPECS / "data" / "digits_shifted.npz")
    n = int(0.8 * len(d["x"]))
    xv, yv = d["x"][n:], d["y"][n:]
    sess = ort.InferenceSession(str(SPECS / "data" / "digits_mlp.onnx"), providers=["CPUExecutionProvider"])
    before = _accuracy(sess.run(None, {"x": xv})[0], yv)
    t = train("finetune.dl", "finetune")
    after = _accuracy(infer(t, {"x": xv}, "probs"), yv)
    return Result(f"val acc {after:.4f} after fine-tuning the last layer (650 of 8,970 params)",
                  f"the imported model as trained elsewhere: {before:.4f}",
                  after >= 0.75 and after - before >= 0.5)


ENTRIES = [
    Entry("finetune", "finetune.dl",
          "an ONNX model from PyTorch, hidden layers frozen, adapts to shifted digits", finetune),
]
