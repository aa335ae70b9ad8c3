"""max_pool(relu(z)) -> relu(max_pool(z)) and max(relu(z)) -> relu(max(z))
(dslc/passes/pools.py): the rewrites fire in training and evaluation graphs, and
values and gradients are exactly the same, on inputs full of ties and of windows
whose max is <= 0."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort

import dslc
from dslc.autodiff import grad
from dslc.evaluate import evaluate
from dslc.ir.graph import Graph
from dslc.ir.node import apply as P, const
from dslc.ir.types import TensorType
from dslc.lower.driver import lower_function
from dslc.ops.leaves import input_
from dslc.passes import pool_before_relu

ROOT = Path(__file__).resolve().parent.parent


def _graph(kernel=(2, 2), strides=(2, 2)):
    z = input_("z", TensorType("f64", (2, 3, 5, 6)))
    if kernel == "max":                                # max over the last two axes
        p = P("max", P("relu", z), axes=(2, 3), keepdims=False)
        c = const(np.arange(6, dtype=np.float64).reshape(2, 3) - 2.0, "f64")
        (dz,) = grad(P("sum", p * c, axes=(0, 1), keepdims=False), [z])
        return z, {"p": p, "dz": dz}
    c = const(np.arange(2 * 3 * 2 * 3, dtype=np.float64).reshape(2, 3, 2, 3) - 7.0, "f64") if kernel == (2, 2) \
        else None
    p = P("max_pool", P("relu", z), kernel=kernel, strides=strides)
    loss = P("sum", p * (c if c is not None else p), axes=(0, 1, 2, 3), keepdims=False)
    (dz,) = grad(loss, [z])
    return z, {"p": p, "dz": dz}


def _ties(seed=0):
    """Integers in [-2, 2]: many windows tie, many have a max <= 0."""
    return np.random.default_rng(seed).integers(-2, 3, size=(2, 3, 5, 6)).astype(np.float64)


def test_rewrite_golden():
    z = input_("z", TensorType("f32", (1, 1, 4, 4)))
    r, changed = pool_before_relu({"y": P("max_pool", P("relu", z), kernel=(2, 2), strides=(2, 2))})
    assert changed
    assert Graph(r).print(locs=False) == textwrap.dedent("""\
        %z:f32[1,1,4,4] = input
        %0:f32[1,1,2,2] = max_pool %z {kernel=(2, 2), strides=(2, 2)}
        %1:f32[1,1,2,2] = relu %0
        return y = %1""")
    assert pool_before_relu(r)[1] is False                  # a fixed point


def test_values_and_gradients_equal_with_ties():
    for kernel, strides in (((2, 2), (2, 2)), ((3, 3), (2, 2)), ("max", None)):   # disjoint, overlapping, max
        z, roots = _graph(kernel, strides)
        rw, changed = pool_before_relu(roots)
        assert changed
        for seed in range(3):
            x = _ties(seed)
            a, b = evaluate(roots, {"z": x}), evaluate(rw, {"z": x})
            for k in roots:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{kernel} {k} (NumPy)")
            # the same through ONNX Runtime
            ma, mb = lower_function(roots, [z]), lower_function(rw, [z])
            ra, rb = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
                      .run(None, {"z": x}) for m in (ma, mb))
            for k, u, v in zip(roots, ra, rb):
                np.testing.assert_array_equal(u, v, err_msg=f"{kernel} {k} (ORT)")
                np.testing.assert_allclose(u, a[k], rtol=1e-12, err_msg=f"{kernel} {k} (ORT vs NumPy)")


def test_lenet_relu_runs_on_the_pooled_tensor():
    """In W2's training and evaluation graphs each conv's relu reads the max pool
    (in training through the reshape of passes/convpool.py)."""
    c = dslc.compile(dslc.load(str(ROOT / "bench/specs/w2_lenet.dl")), "w2")
    pooled = lambda x: x.op == "max_pool" or (x.op == "reshape" and x.inputs[0].op == "max_pool")   # noqa: E731
    for g in (c.graphs["training"], c.graphs["evaluation"]):
        order = Graph(g).order()
        relus = [n for n in order if n.op == "relu" and pooled(n.inputs[0])]
        assert len(relus) == 2
        assert not any(n.op == "max_pool" and n.inputs[0].op == "relu" for n in order)


def test_textcnn_relu_runs_after_the_max_over_time():
    c = dslc.compile(dslc.load(str(ROOT / "specs/textcnn.dl")))
    order = Graph(c.graphs["training"]).order()
    assert sum(n.op == "relu" and n.inputs[0].op == "max" for n in order) == 3
    assert not any(n.op == "max" and n.inputs[0].op == "relu" for n in order)
