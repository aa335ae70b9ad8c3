"""max_pool(conv(x, w) + b) -> a strided conv over the pool's taps (dslc/passes/convpool.py):
values and gradients (x, w, b) are exactly those of the plain graph, through NumPy and
ONNX Runtime, on integer inputs full of ties; the rule leaves alone what it does not fit."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from dslc.autodiff import grad
from dslc.evaluate import evaluate
from dslc.ir import Sym
from dslc.ir.graph import Graph
from dslc.ir.node import apply as P, const
from dslc.ir.types import TensorType
from dslc.lower.driver import lower_function
from dslc.ops.leaves import input_
from dslc.passes import conv_pool
from dslc.passes.convpool import OUT_MAX

CONV = dict(strides=(1, 1), dilations=(1, 1))


def _graph(c=2, o=3, hw=(7, 8), k=(3, 3), pads=((1, 1), (1, 1)), pool=(2, 2), bias=True, **conv):
    """leaves and p = max_pool(conv(x, w) + b)."""
    x = input_("x", TensorType("f32", (2, c) + hw))
    w = input_("w", TensorType("f32", (o, c) + k))
    b = input_("b", TensorType("f32", (o,)))
    z = P("conv", x, w, pads=pads, **{**CONV, **conv})
    if bias:
        z = z + P("reshape", b, shape=(o, 1, 1))
    return ([x, w, b] if bias else [x, w]), P("max_pool", z, kernel=pool, strides=pool)


def _with_grads(p, leaves):
    """{p, dx, dw, db} under a fixed linear loss (the rule runs before differentiation)."""
    wt = const(np.arange(np.prod(p.shape), dtype=np.float32).reshape(p.shape) % 7 - 3.0, "f32")
    grads = grad(P("sum", p * wt, axes=tuple(range(p.type.rank)), keepdims=False), leaves)
    return {"p": p, **{f"d{v.attrs['name']}": g for v, g in zip(leaves, grads)}}


def _feeds(leaves, seed):
    """Integers in [-1, 1]: exact sums (f32: ORT has no f64 Conv), and most pool windows tie."""
    rng = np.random.default_rng(seed)
    return {v.attrs["name"]: rng.integers(-1, 2, size=v.shape).astype(np.float32) for v in leaves}


CASES = {
    "3x3 same, 2x2 pool": {},
    "5x5 valid, 1 channel": dict(c=1, hw=(12, 12), k=(5, 5), pads=((0, 0), (0, 0))),
    "floor remainder": dict(hw=(9, 7)),                               # conv 9 x 7 -> pooled 4 x 3
    "3x3 pool": dict(hw=(9, 9), pool=(3, 3)),
    "2x1 pool, no bias": dict(pool=(2, 1), bias=False),
    "uneven pads": dict(k=(2, 3), pads=((0, 1), (2, 0))),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_values_and_gradients_equal_with_ties(case):
    leaves, p = _graph(**CASES[case])
    (rw, changed) = conv_pool({"p": p})
    assert changed and rw["p"].type == p.type
    roots, rw = _with_grads(p, leaves), _with_grads(rw["p"], leaves)
    ops = [n for n in Graph(rw).order()]
    pool = CASES[case].get("pool", (2, 2))
    assert [n.attrs["strides"] for n in ops if n.op == "conv"][0] == pool
    assert any(n.op == "max_pool" and n.attrs["kernel"] == (pool[0] * pool[1], 1) for n in ops)
    ma, mb = lower_function(roots, leaves), lower_function(rw, leaves)
    sa, sb = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]) for m in (ma, mb))
    for seed in range(3):
        feeds = _feeds(leaves, seed)
        a, b = evaluate(roots, feeds), evaluate(rw, feeds)
        for k in roots:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{case} {k} (NumPy)")
        for k, u, v in zip(roots, sa.run(None, feeds), sb.run(None, feeds)):
            np.testing.assert_array_equal(u, v, err_msg=f"{case} {k} (ORT)")
            np.testing.assert_array_equal(u, a[k], err_msg=f"{case} {k} (ORT vs NumPy)")


def test_what_the_rule_leaves_alone():
    B = Sym.var("B")
    x = input_("x", TensorType("f32", (2, 2, 8, 8)))
    w = input_("w", TensorType("f32", (3, 2, 3, 3)))
    same = ((1, 1), (1, 1))

    def pooled(z, k=(2, 2), s=(2, 2)):
        return {"p": P("max_pool", z, kernel=k, strides=s)}

    wide = input_("wide", TensorType("f32", (OUT_MAX + 1, 2, 3, 3)))
    xs = input_("xs", TensorType("f32", (2, 2, B, 8)))
    shared = P("conv", x, w, pads=same, **CONV)
    for roots in (pooled(P("conv", x, w, pads=same, strides=(2, 2), dilations=(1, 1))),   # strided conv
                  pooled(P("conv", x, w, pads=same, strides=(1, 1), dilations=(2, 2))),   # dilated conv
                  pooled(P("conv", x, w, pads=same, **CONV), (3, 3), (2, 2)),             # overlapping windows
                  pooled(P("conv", x, wide, pads=same, **CONV)),                          # many output channels
                  pooled(P("conv", xs, w, pads=same, **CONV)),                            # symbolic image size
                  {**pooled(shared), "z": shared}):                                      # the conv read elsewhere
        assert conv_pool(roots)[1] is False


def test_lenet_training_graph_takes_the_rule():
    """W2 (bench/specs/w2_lenet.dl): both convs become stride-2 convs over 6 x 6 kernels with
    4 O output channels; the evaluation graph keeps conv + max_pool."""
    from pathlib import Path

    import dslc
    c = dslc.compile(dslc.load(str(Path(__file__).resolve().parent.parent / "bench/specs/w2_lenet.dl")), "w2")
    order = Graph(c.graphs["training"]).order()
    cols = [n for n in order if n.op == "im2col"]
    assert [(n.attrs["kernel"], n.attrs["strides"]) for n in cols] == [((6, 6), (2, 2))] * 2
    assert sorted(n.attrs["kernel"] for n in order if n.op == "max_pool") == [(4, 1), (4, 1)]
    ev = Graph(c.graphs["evaluation"]).order()
    assert [n.attrs["kernel"] for n in ev if n.op == "max_pool"] == [(2, 2), (2, 2)]
