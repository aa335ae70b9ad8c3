"""Small hand-built models for back-end tests (no .dl front end needed)."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort

from dslc.ir import Sym, TensorType, apply as P
from dslc.ir.model import Loss, Model
from dslc.ops.leaves import input_, param

B = Sym.var("B")


def quadratic_model(shape=(2, 2), scale=(1.0, 10.0)):
    """loss = 0.5 * sum(h * (θ - x)²) with h a fixed diagonal curvature: ill-conditioned."""
    th = param("theta", TensorType("f32", shape), ("constant", 1.0))
    x = input_("x", TensorType("f32", (B,) + shape))
    h = np.broadcast_to(np.linspace(scale[0], scale[1], shape[-1]), shape).astype(np.float32)
    from dslc.ir.node import const
    d = th - P("mean", x, axes=(0,), keepdims=False)
    loss = 0.5 * P("sum", const(h) * d * d, axes=tuple(range(len(shape))), keepdims=False)
    return Model("quad", inputs={"x": x}, params={"theta": th}, losses={"loss": Loss("loss", loss)}), h


def run_steps(training, feeds_per_step, hyper=None):
    """A plain ONNX Runtime loop driven only by the manifest: returns per-step carried dicts."""
    man = json.loads(next(p.value for p in training.metadata_props if p.key == "dslc.manifest"))
    so = ort.SessionOptions()
    so.log_severity_level = 3          # errors only (not ORT's initializer-as-input warnings)
    sess = ort.InferenceSession(training.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inits = {i.name: i for i in training.graph.initializer}
    from onnx import numpy_helper
    carried = {c["input"]: numpy_helper.to_array(inits[c["input"]]) for c in man["carried"]}
    hyper_vals = {h["name"]: np.asarray(h["default"], dtype=h["dtype"]) for h in man["hyper"]}
    hyper_vals.update({k: np.asarray(v, dtype=np.float32) for k, v in (hyper or {}).items()})
    history = []
    for feeds in feeds_per_step:
        outs = [c["output"] for c in man["carried"]] + man["losses"] + man["metrics"]
        res = sess.run(outs, {**feeds, **carried, **hyper_vals})
        vals = dict(zip(outs, res))
        carried = {c["input"]: vals[c["output"]] for c in man["carried"]}
        history.append({**carried, **{k: float(vals[k]) for k in man["losses"] + man["metrics"]}})
    return history


def step_feeds(training, n, seed=0, dims=None, default_dim=4, int_high=None):
    """n steps of random data for a training graph, shaped by its manifest: symbolic
    dims from `dims` (else default_dim), int64 inputs below their class count (or int_high)."""
    man = json.loads(next(p.value for p in training.metadata_props if p.key == "dslc.manifest"))
    rng, out = np.random.default_rng(seed), []
    for _ in range(n):
        feeds = {}
        for d in man["data"]:
            shape = [s if isinstance(s, int) else (dims or {}).get(s, default_dim) for s in d["shape"]]
            high = int_high or d.get("classes") or 2
            feeds[d["name"]] = (rng.integers(0, high, shape) if d["dtype"] == "int64"
                                else rng.standard_normal(shape)).astype(d["dtype"])
        out.append(feeds)
    return out
