"""One row per ONNX op form the importer converts (dslc/onnx_import): a one-node
model is imported, compiled and run by onnxruntime against onnxruntime on the
original; float inputs also get the imported graph's gradient checked against
float64 central differences (NumPy engine), so every composition differentiates."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import dslc
from dslc.autodiff import grad
from dslc.evaluate import evaluate
from dslc.ir.node import apply as P, const
from dslc.ir.types import TensorType
from dslc.onnx_import import import_onnx

R = np.random.default_rng(0)


def f(*shape):
    return R.normal(size=shape).astype(np.float32)


def i64(*v):
    return np.asarray(v, dtype=np.int64)


class C:
    """An input given as an initializer (a constant the importer may fold), not a graph input."""

    def __init__(self, value):
        self.value = np.asarray(value)


# (id, op, opset, inputs, attrs, number of outputs)
ROWS = [
    ("add_bcast", "Add", 13, [f(2, 3), f(3)], {}, 1),
    ("sub_const", "Sub", 13, [f(2, 3), C(np.float32(0.5))], {}, 1),
    ("div", "Div", 13, [f(2, 3), np.abs(f(2, 3)) + 1], {}, 1),
    ("pow2", "Pow", 13, [f(2, 3), C(np.float32(2.0))], {}, 1),
    ("pow_general", "Pow", 15, [np.abs(f(2, 3)) + 0.5, C(np.float32(1.7))], {}, 1),
    ("max", "Max", 13, [f(2, 3), f(2, 3)], {}, 1),
    ("min3", "Min", 13, [f(2, 3), f(3), f(1, 3)], {}, 1),
    ("sum3", "Sum", 13, [f(2, 3), f(3), f(2, 1)], {}, 1),
    ("mean2", "Mean", 13, [f(2, 3), f(2, 3)], {}, 1),
    ("prelu", "PRelu", 16, [f(2, 3, 2, 2), f(3, 1, 1)], {}, 1),
    ("selu", "Selu", 13, [f(2, 3)], {}, 1),
    ("softsign", "Softsign", 13, [f(2, 3)], {}, 1),
    ("hard_swish", "HardSwish", 14, [f(2, 3) * 4], {}, 1),
    ("gelu", "Gelu", 20, [f(2, 3)], {}, 1),
    ("gelu_tanh", "Gelu", 20, [f(2, 3)], {"approximate": "tanh"}, 1),
    ("relu", "Relu", 14, [f(2, 3)], {}, 1),
    ("sigmoid", "Sigmoid", 13, [f(2, 3)], {}, 1),
    ("tanh", "Tanh", 13, [f(2, 3)], {}, 1),
    ("exp", "Exp", 13, [f(2, 3)], {}, 1),
    ("log", "Log", 13, [np.abs(f(2, 3)) + 0.5], {}, 1),
    ("sqrt", "Sqrt", 13, [np.abs(f(2, 3)) + 0.5], {}, 1),
    ("neg", "Neg", 13, [f(2, 3)], {}, 1),
    ("reciprocal", "Reciprocal", 13, [np.abs(f(2, 3)) + 0.5], {}, 1),
    ("softplus", "Softplus", 13, [f(2, 3)], {}, 1),
    ("leaky_relu", "LeakyRelu", 16, [f(2, 3)], {"alpha": 0.1}, 1),
    ("elu", "Elu", 13, [f(2, 3)], {"alpha": 0.7}, 1),
    ("hard_sigmoid", "HardSigmoid", 13, [f(2, 3) * 3], {}, 1),
    ("clip", "Clip", 13, [f(2, 3), C(np.float32(-0.5)), C(np.float32(0.5))], {}, 1),
    ("erf", "Erf", 13, [f(2, 3)], {}, 1),
    ("matmul_batched", "MatMul", 13, [f(2, 3, 4), f(4, 5)], {}, 1),
    ("matmul_vec", "MatMul", 13, [f(2, 4), f(4)], {}, 1),
    ("gemm_trans", "Gemm", 13, [f(4, 3), f(5, 4), f(5)], {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, 1),
    ("reduce_mean_attr", "ReduceMean", 13, [f(2, 3, 4)], {"axes": [1], "keepdims": 0}, 1),
    ("reduce_mean_input", "ReduceMean", 18, [f(2, 3, 4), C(i64(-1))], {}, 1),
    ("reduce_sum_input", "ReduceSum", 13, [f(2, 3, 4), C(i64(0, 2))], {"keepdims": 1}, 1),
    ("reduce_max", "ReduceMax", 18, [f(2, 3, 4), C(i64(1))], {}, 1),
    ("reduce_lse", "ReduceLogSumExp", 18, [f(2, 3), C(i64(1))], {"keepdims": 0}, 1),
    ("argmax", "ArgMax", 13, [f(3, 5)], {"axis": 1, "keepdims": 0}, 1),
    ("softmax", "Softmax", 13, [f(2, 5)], {"axis": 1}, 1),
    ("log_softmax", "LogSoftmax", 13, [f(2, 3, 5)], {}, 1),
    ("layer_norm", "LayerNormalization", 17, [f(2, 3, 4), f(3, 4), f(3, 4)], {"axis": 1, "epsilon": 1e-3}, 1),
    ("reshape_infer", "Reshape", 14, [f(2, 3, 4), C(i64(0, -1))], {}, 1),
    ("flatten", "Flatten", 13, [f(2, 3, 4)], {"axis": 2}, 1),
    ("transpose", "Transpose", 13, [f(2, 3, 4)], {"perm": [2, 0, 1]}, 1),
    ("unsqueeze", "Unsqueeze", 13, [f(2, 3), C(i64(-1, 0))], {}, 1),
    ("squeeze", "Squeeze", 13, [f(2, 1, 3), C(i64(1))], {}, 1),
    ("concat", "Concat", 13, [f(2, 3), f(2, 2)], {"axis": -1}, 1),
    ("split_input", "Split", 13, [f(2, 6), C(i64(2, 4))], {"axis": 1}, 2),
    ("split_even", "Split", 18, [f(6, 2)], {"axis": 0, "num_outputs": 3}, 3),
    ("slice_neg_step", "Slice", 13, [f(5, 4), C(i64(-1, 1)), C(i64(-6, 3)), C(i64(0, 1)), C(i64(-2, 1))], {}, 1),
    ("slice_open_end", "Slice", 13, [f(5, 4), C(i64(1)), C(i64(2 ** 62)), C(i64(1))], {}, 1),
    ("gather_axis1", "Gather", 13, [f(3, 5), C(i64(4, 0, -1))], {"axis": 1}, 1),
    ("gather_scalar", "Gather", 13, [f(3, 5), C(np.asarray(-2, dtype=np.int64))], {"axis": 0}, 1),
    ("gather_ids", "Gather", 13, [f(6, 3), i64(1, 5, 5, 0)], {}, 1),
    ("gather_elements", "GatherElements", 13, [f(3, 4), C(np.asarray([[0, -1, 2], [3, 0, -4], [1, 1, 2]]))],
     {"axis": 1}, 1),
    ("gather_elements_ids", "GatherElements", 13, [f(3, 4), np.asarray([[2, 0, 1, 2], [-1, 1, 0, 0]])], {}, 1),
    ("gather_elements_short", "GatherElements", 13, [f(3, 4), C(np.asarray([[0, -1], [1, 2]]))], {"axis": 1}, 1),
    ("scatter_elements_add", "ScatterElements", 18, [f(3, 4), np.asarray([[0, 0, 2], [1, -1, 1]]), f(2, 3)],
     {"axis": 1, "reduction": "add"}, 1),
    ("scatter_elements", "ScatterElements", 13, [f(3, 4), C(np.asarray([[2, 0, 1, 0], [0, 2, -1, 1]])), f(2, 4)],
     {"axis": 0}, 1),
    ("trilu_upper", "Trilu", 14, [f(2, 3, 4)], {}, 1),
    ("trilu_lower_k", "Trilu", 14, [f(4, 3), C(np.asarray(-1, dtype=np.int64))], {"upper": 0}, 1),
    ("trilu_upper_k", "Trilu", 14, [f(3, 5), C(np.asarray(2, dtype=np.int64))], {"upper": 1}, 1),
    ("random_normal", "RandomNormal", 13, [], {"shape": [3, 4], "seed": 5.0, "mean": 1.0, "scale": 2.0}, 1),
    ("random_uniform", "RandomUniform", 13, [], {"shape": [2, 5], "seed": 3.0, "low": -1.0, "high": 3.0}, 1),
    ("random_normal_like", "RandomNormalLike", 13, [f(2, 3)], {"seed": 7.0, "scale": 0.5}, 1),
    ("random_uniform_like", "RandomUniformLike", 13, [f(4, 3)], {"seed": 11.0, "dtype": TensorProto.DOUBLE}, 1),
    ("where", "Where", 16, [np.asarray([[True, False, True]]), f(2, 3), f(2, 3)], {}, 1),
    ("expand", "Expand", 13, [f(3, 1), C(i64(2, 1, 4))], {}, 1),
    ("tile", "Tile", 13, [f(2, 3), C(i64(2, 1))], {}, 1),
    ("cast_double", "Cast", 13, [f(2, 3)], {"to": TensorProto.DOUBLE}, 1),
    ("pad_const", "Pad", 13, [f(2, 3), C(i64(0, 1, 1, 2)), C(np.float32(1.5))], {}, 1),
    ("pad_axes_crop", "Pad", 18, [f(2, 4), C(i64(-1, 2)), None, C(i64(1))], {}, 1),
    ("conv_pads_stride", "Conv", 13, [f(2, 3, 7, 6), f(4, 3, 3, 2), f(4)], {"pads": [1, 0, 2, 1], "strides": [2, 1]}, 1),
    ("conv_same", "Conv", 13, [f(1, 2, 5, 5), f(3, 2, 3, 3)], {"auto_pad": "SAME_UPPER"}, 1),
    ("conv1d_dilated", "Conv", 13, [f(2, 2, 9), f(3, 2, 3)], {"dilations": [2]}, 1),
    ("max_pool_pads", "MaxPool", 13, [f(2, 2, 5, 5)], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, 1),
    ("max_pool_overlap", "MaxPool", 13, [f(1, 2, 6, 6)], {"kernel_shape": [3, 3], "strides": [1, 2]}, 1),
    ("avg_pool_exclude_pad", "AveragePool", 19, [f(2, 2, 5, 5)], {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0]}, 1),
    ("avg_pool_include_pad", "AveragePool", 13, [f(2, 2, 5, 5)], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                                                   "count_include_pad": 1}, 1),
    ("global_avg", "GlobalAveragePool", 13, [f(2, 3, 4, 5)], {}, 1),
    ("global_max", "GlobalMaxPool", 13, [f(2, 3, 4)], {}, 1),
    ("dropout_infer", "Dropout", 13, [f(2, 3), C(np.float32(0.3))], {}, 1),
    ("batch_norm_infer", "BatchNormalization", 15, [f(4, 3, 2), f(3), f(3), C(f(3)), C(np.abs(f(3)) + 0.5)], {}, 1),
    ("rnn_tanh", "RNN", 14, [f(4, 2, 3), f(1, 5, 3) * 0.5, f(1, 5, 5) * 0.5, f(1, 10)], {"hidden_size": 5}, 2),
    ("gru_reset_after", "GRU", 14, [f(3, 2, 3), f(1, 12, 3) * 0.5, f(1, 12, 4) * 0.5, f(1, 24)],
     {"hidden_size": 4, "linear_before_reset": 0}, 2),
    ("lstm_bidirectional", "LSTM", 14, [f(3, 2, 3), f(2, 16, 3) * 0.5, f(2, 16, 4) * 0.5, f(2, 32), None,
                                        f(2, 2, 4), f(2, 2, 4)], {"hidden_size": 4, "direction": "bidirectional"}, 3),
    ("lstm_reverse", "LSTM", 14, [f(2, 3, 3), f(1, 8, 3) * 0.5, f(1, 8, 2) * 0.5],
     {"hidden_size": 2, "direction": "reverse"}, 3),     # (onnxruntime has no layout = 1 LSTM to compare with)
]

ONNX_TYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
             np.dtype(np.bool_): TensorProto.BOOL, np.dtype(np.float64): TensorProto.DOUBLE}


def _model(op, opset, inputs, attrs, n_out, path):
    names, graph_inputs, inits, feeds = [], [], [], {}
    for k, v in enumerate(inputs):
        if v is None:
            names.append("")
            continue
        name = f"in{k}"
        names.append(name)
        if isinstance(v, C):
            inits.append(numpy_helper.from_array(v.value, name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, ONNX_TYPE[v.dtype], list(v.shape)))
            feeds[name] = v
    outs = [f"out{j}" for j in range(n_out)]
    node = helper.make_node(op, names, outs, name=f"{op}_node", **attrs)
    g = helper.make_graph([node], "g", graph_inputs, [helper.make_empty_tensor_value_info(o) for o in outs],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)     # the outputs' types
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    return feeds


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_op_forward_equals_onnxruntime(row, tmp_path):
    _, op, opset, inputs, attrs, n_out = row
    path = tmp_path / "m.onnx"
    feeds = _model(op, opset, inputs, attrs, n_out, path)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    c = dslc.compile(import_onnx(path))
    sess = ort.InferenceSession(c.inference.SerializeToString(), providers=["CPUExecutionProvider"])
    used = {i.name: feeds[i.name] for i in sess.get_inputs()}     # (a *Like draw reads only its input's shape)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, used)))
    for j, r in enumerate(ref):
        g = got[f"out{j}"]
        assert g.shape == r.shape, (g.shape, r.shape)
        np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64), atol=2e-6, rtol=1e-5)


GRAD_ROWS = [r for r in ROWS if r[0] not in ("argmax", "gather_ids", "cast_double", "dropout_infer")
             and not r[0].startswith("random_")]       # (draws: no gradient; seeded, equal to onnxruntime's)


@pytest.mark.parametrize("row", GRAD_ROWS, ids=[r[0] for r in GRAD_ROWS])
def test_op_gradient_matches_finite_differences(row, tmp_path):
    """d/dx sum(c * y) of the imported graph vs float64 central differences (NumPy engine)."""
    _, op, opset, inputs, attrs, n_out = row
    path = tmp_path / "m.onnx"
    feeds = _model(op, opset, inputs, attrs, n_out, path)
    types = {k: TensorType({"f": "f32", "i": "i64", "b": "bool"}[v.dtype.kind], v.shape) for k, v in feeds.items()}
    m = import_onnx(path, types=types)
    from dslc.compile import _values
    vals = {**_values(m, 0), **{m.inputs[k].attrs["name"]: v for k, v in feeds.items()}}
    outs = [v for v in m.outputs.values() if v.dtype in ("f32", "f64")]
    cots = [R.normal(size=[int(d) for d in o.shape]) for o in outs]
    loss = None
    for o, c in zip(outs, cots):
        t = P("sum", const(c.astype(np.float32)) * o, axes=tuple(range(o.rank)), keepdims=False)
        loss = t if loss is None else loss + t
    wrt = [n for n in list(m.inputs.values()) + list(m.params.values()) if n.dtype == "f32"]
    from dslc import passes
    (loss,) = passes.specialize({"loss": loss}, "train")[0].values()          # training mode
    roots = {"loss": loss, **{f"g{i}": g for i, g in enumerate(grad(loss, wrt))}}
    base = {k: np.asarray(v, dtype=np.float64) if np.asarray(v).dtype.kind == "f" else v for k, v in vals.items()}
    got = evaluate(roots, base, dtype_override="f64")
    eps = 1e-6
    for i, n in enumerate(wrt):
        name = n.attrs["name"]
        x = base[name]
        num = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            hi, lo = x.copy(), x.copy()
            hi[idx] += eps
            lo[idx] -= eps
            fp = evaluate({"l": roots["loss"]}, {**base, name: hi}, dtype_override="f64")["l"]
            fm = evaluate({"l": roots["loss"]}, {**base, name: lo}, dtype_override="f64")["l"]
            num[idx] = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(got[f"g{i}"], num, atol=1e-5, rtol=1e-4, err_msg=name)


def test_dropout_is_active_in_training_and_identity_in_the_export(tmp_path):
    """ONNX Dropout(ratio p) trains as PyTorch's: x * mask / (1 - p), mask ~ Bernoulli(1 - p)."""
    path = tmp_path / "m.onnx"
    _model("Dropout", 13, [np.ones((200, 50), np.float32), C(np.float32(0.3))], {}, 1, path)
    m = import_onnx(path)
    from dslc import passes
    from dslc.lower.driver import lower_graph, make_model
    roots, _ = passes.specialize(dict(m.outputs), "train")
    g = lower_graph(roots, list(m.inputs.values()), {}, name="t", base_seed=0)
    y = ort.InferenceSession(make_model(g, {}).SerializeToString(), providers=["CPUExecutionProvider"]) \
        .run(None, {"in0": np.ones((200, 50), np.float32)})[0]
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    c = dslc.compile(m)
    assert not any(n.op_type in ("RandomUniform", "RandomUniformLike", "Dropout") for n in c.inference.graph.node)
