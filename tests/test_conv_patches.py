"""Convolutions in training graphs (issue 11): the weight gradient is a matmul per example
against the input's patches (im2col), and the forward conv reads the same patches
(passes/convs.py); the max-pool gradient compares window taps with the max. The steps
must equal the unoptimized graphs' (ORT Conv forward) to float tolerance."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import dslc
from dslc.ir.graph import Graph
from helpers import run_steps, step_feeds

ROOT = Path(__file__).resolve().parent.parent
SPECS = [("bench/specs/w2_lenet.dl", "w2"), ("specs/cnn.dl", "cnn"), ("specs/textcnn.dl", "textcnn")]


def _steps(m: onnx.ModelProto, n: int = 3) -> list[dict]:
    """n steps on random data: each step's params and losses."""
    man = json.loads(next(p.value for p in m.metadata_props if p.key == "dslc.manifest"))
    keep = {e["input"] for e in man["carried"] if e["kind"] == "param"} | set(man["losses"])
    return [{k: v for k, v in h.items() if k in keep} for h in run_steps(m, step_feeds(m, n, seed=5))]


@pytest.mark.parametrize("path,name", SPECS, ids=[n for _, n in SPECS])
def test_conv_training_step_optimized_equals_unoptimized(path, name):
    prog = dslc.load(str(ROOT / path))
    a, b = (_steps(dslc.compile(prog, name, optimize=o).training) for o in (True, False))
    for k, (x, y) in enumerate(zip(a, b)):
        for key in x:
            np.testing.assert_allclose(x[key], y[key], rtol=1e-4, atol=1e-5, err_msg=f"{name} step {k}: {key}")


def test_forward_conv_reads_the_weight_gradients_patches():
    """Training: each conv's forward is a matmul over the im2col its weight gradient
    needs (one im2col per conv, no ONNX Conv, no MaxPool indices); evaluation keeps Conv."""
    c = dslc.compile(dslc.load(str(ROOT / "bench/specs/w2_lenet.dl")), "w2")
    ops = [n.op for n in Graph(c.graphs["training"]).order()]
    assert ops.count("im2col") == 2 and "conv" not in ops
    # the ONNX Convs left are the im2cols themselves: grouped Convs (group = C) with the
    # constant one-hot kernel E[(c, t), 0, t'] = [t = t'] (ops/nn.py _im2col_onnx); the
    # one-channel input's runs as 3-D over a unit axis. Each conv is followed by 2 x 2
    # pooling, so its patches are those of the 6 x 6, stride-2 conv of passes/convpool.py
    consts = {o: n for n in c.training.graph.node if n.op_type == "Constant" for o in n.output}
    convs = [n for n in c.training.graph.node if n.op_type == "Conv"]
    assert len(convs) == 2
    for conv, ch in zip(convs, (1, 6)):
        e = onnx.numpy_helper.to_array(consts[conv.input[1]].attribute[0].t)
        assert e.shape == (36 * ch, 1) + (1,) * (ch == 1) + (6, 6)
        assert {a.name: a.i for a in conv.attribute}.get("group", 1) == ch
        assert list({a.name: a.ints for a in conv.attribute}["strides"])[-2:] == [2, 2]
        assert np.array_equal(e.reshape(ch, 36, 36), np.broadcast_to(np.eye(36), (ch, 36, 36)))
    assert all(len(n.output) == 1 for n in c.training.graph.node if n.op_type == "MaxPool")
    assert "Conv" in [n.op_type for n in c.evaluation.graph.node]


def test_large_patches_keep_the_swapped_conv():
    """Patches of more than PATCHES_MAX entries per example are not materialized: the weight
    gradient stays a conv with batch and channels swapped."""
    from dslc.autodiff import grad
    from dslc.ir import Sym, TensorType, apply as P
    from dslc.ops.leaves import input_
    from dslc.ops.nn import PATCHES_MAX
    B = Sym.var("B")
    conv = dict(strides=(1, 1), pads=((1, 1), (1, 1)), dilations=(1, 1))
    for c, hw, patches in ((4, 8, True), (64, 32, False)):
        assert (9 * c * hw * hw <= PATCHES_MAX) == patches
        x = input_("x", TensorType("f32", (B, c, hw, hw)))
        w = input_("w", TensorType("f32", (8, c, 3, 3)))
        y = P("conv", x, w, **conv)
        (dw,) = grad(P("sum", y * y, axes=(0, 1, 2, 3), keepdims=False), [w])
        ops = [n.op for n in Graph({"dw": dw}).order()]
        assert ("im2col" in ops) == patches and ops.count("conv") == (1 if patches else 2)   # forward (+ swapped)


def test_im2col_of_an_unknown_channel_count_lowers_as_slices():
    """A symbolic C has no one-hot kernel: the patches are strided slices, reordered to (c, t)."""
    import onnxruntime as ort
    from dslc.ir import Sym, TensorType, apply as P
    from dslc.lower import lower_function
    from dslc.ops.leaves import input_
    from dslc.ops.nn import _im2col_np
    attrs = dict(kernel=(2, 3), strides=(2, 1), pads=((1, 0), (0, 1)), dilations=(1, 2))
    x = input_("x", TensorType("f32", (Sym.var("B"), Sym.var("C"), 5, 6)))
    model = lower_function({"y": P("im2col", x, **attrs)}, [x])
    assert "Conv" not in [n.op_type for n in model.graph.node]
    xv = np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": xv})[0]
    np.testing.assert_array_equal(got, _im2col_np(xv, **attrs))
