"""Small hand-built graphs that follow the dslc contract (training, evaluation
and inference roles), for tests and demos of the runtime without the compiler.

softmax_regression(): x f32[B, D], y i64[B] -> loss, acc; SGD with momentum,
                      a Polyak average, a state (running mean of x), a step counter.
two_losses():         two losses over separate params, updated by a select input.
diverging():          a graph whose loss becomes NaN at the second step (Log of a negative).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .manifest import write_manifest

F, I = TensorProto.FLOAT, TensorProto.INT64
OPSET = [helper.make_operatorsetid("", 18)]


def _model(nodes, inputs, outputs, inits, manifest, name):
    graph = helper.make_graph(nodes, name, inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=OPSET, ir_version=9, producer_name="dslc_runtime.toy")
    write_manifest(model, manifest)
    onnx.checker.check_model(model, full_check=True)
    return model


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _node(op, ins, outs, doc=None, **attrs):
    n = helper.make_node(op, ins, outs, name=f"{op}_{outs[0]}", **attrs)
    if doc:
        n.doc_string = doc
    return n


def _const(name, value):
    return helper.make_node("Constant", [], [name], name=f"const_{name}",
                            value=numpy_helper.from_array(np.asarray(value), name + "_v"))


def _carried(name, kind, shape, dtype="float32", init="zeros", param=None):
    c = {"input": name, "output": name + ".next", "kind": kind, "dtype": dtype, "shape": list(shape), "init": init}
    if param:
        c["param"] = param
    return c


def _data(d):
    return [{"name": "x", "dtype": "float32", "shape": ["B", d], "batch_axis": 0},
            {"name": "y", "dtype": "int64", "shape": ["B"], "batch_axis": 0}]


def _forward(prefix=""):
    """logits = x @ W + b; loss = cross entropy; acc = mean(argmax(logits) == y)."""
    p = prefix
    return [
        _node("MatMul", ["x", p + "W"], ["xw"], doc="toy.dl:5"),
        _node("Add", ["xw", p + "b"], ["logits"], doc="toy.dl:5"),
        _node("SoftmaxCrossEntropyLoss", ["logits", "y"], ["loss"], doc="toy.dl:8", reduction="mean"),
        _node("ArgMax", ["logits"], ["pred"], axis=1, keepdims=0),
        _node("Equal", ["pred", "y"], ["hit"]),
        _node("Cast", ["hit"], ["hitf"], to=F),
        _node("ReduceMean", ["hitf"], ["acc"], doc="toy.dl:9", keepdims=0),
    ]


def softmax_regression(d: int = 4, k: int = 3, lr: float = 0.5, momentum: float = 0.5,
                       average: float | None = 0.9, seed: int = 0, train: dict | None = None):
    """(training, evaluation, inference) ModelProtos of softmax regression on d features, k classes."""
    rng = np.random.default_rng(seed)
    W0 = (rng.standard_normal((d, k)) * 0.1).astype(np.float32)
    b0 = np.zeros(k, np.float32)
    nodes = _forward() + [
        # dlogits = (softmax(logits) - onehot(y)) / B
        _node("Softmax", ["logits"], ["prob"], axis=-1),
        _const("depth", np.array(k, np.int64)),
        _const("offon", np.array([0.0, 1.0], np.float32)),
        _node("OneHot", ["y", "depth", "offon"], ["onehot"], axis=-1),
        _node("Sub", ["prob", "onehot"], ["diff"]),
        _node("Shape", ["x"], ["xshape"], start=0, end=1),
        _node("Cast", ["xshape"], ["nB"], to=F),
        _node("Div", ["diff", "nB"], ["dlogits"]),
        _node("Transpose", ["x"], ["xT"], perm=[1, 0]),
        _node("MatMul", ["xT", "dlogits"], ["dW"]),
        _const("ax0", np.array([0], np.int64)),
        _node("ReduceSum", ["dlogits", "ax0"], ["db"], keepdims=0),
        # momentum SGD: m' = mu m + g; theta' = theta - lr m'
        _const("mu", np.array(momentum, np.float32)),
        _node("Mul", ["mu", "W.m"], ["muWm"]), _node("Add", ["muWm", "dW"], ["W.m.next"]),
        _node("Mul", ["mu", "b.m"], ["mubm"]), _node("Add", ["mubm", "db"], ["b.m.next"]),
        _node("Mul", ["lr", "W.m.next"], ["stepW"]), _node("Sub", ["W", "stepW"], ["W.next"]),
        _node("Mul", ["lr", "b.m.next"], ["stepb"]), _node("Sub", ["b", "stepb"], ["b.next"]),
        # state: running mean of x, mean' = 0.9 mean + 0.1 mean_batch(x)
        _node("ReduceMean", ["x", "ax0"], ["xmean"], keepdims=0),
        _const("c09", np.array(0.9, np.float32)), _const("c01", np.array(0.1, np.float32)),
        _node("Mul", ["c09", "xmu"], ["xmu_a"]), _node("Mul", ["c01", "xmean"], ["xmu_b"]),
        _node("Add", ["xmu_a", "xmu_b"], ["xmu.next"]),
        _const("one", np.array(1, np.int64)), _node("Add", ["step", "one"], ["step.next"]),
    ]
    carried = [_carried("W", "param", [d, k], init="normal"), _carried("b", "param", [k]),
               _carried("W.m", "slot", [d, k], param="W"), _carried("b.m", "slot", [k], param="b"),
               _carried("xmu", "state", [d]), _carried("step", "step", [], dtype="int64", init="0")]
    inits = {"W": W0, "b": b0, "W.m": np.zeros_like(W0), "b.m": np.zeros_like(b0),
             "xmu": np.zeros(d, np.float32), "step": np.array(0, np.int64)}
    if average is not None:   # Polyak: avg' = a avg + (1 - a) theta'
        nodes += [_const("pa", np.array(average, np.float32)), _const("pb", np.array(1 - average, np.float32))]
        for p in ("W", "b"):
            nodes += [_node("Mul", ["pa", f"{p}.avg"], [f"{p}.avg_a"]),
                      _node("Mul", ["pb", f"{p}.next"], [f"{p}.avg_b"]),
                      _node("Add", [f"{p}.avg_a", f"{p}.avg_b"], [f"{p}.avg.next"])]
            carried.append(_carried(f"{p}.avg", "average", inits[p].shape, param=p))
            inits[f"{p}.avg"] = inits[p].copy()
    shapes = {c["input"]: c["shape"] for c in carried}
    elem = {c["input"]: (I if c["dtype"] == "int64" else F) for c in carried}
    inputs = [_vi("x", F, ["B", d]), _vi("y", I, ["B"])]
    inputs += [_vi(c["input"], elem[c["input"]], shapes[c["input"]]) for c in carried]
    inputs += [_vi("lr", F, [])]
    outputs = [_vi("loss", F, []), _vi("acc", F, [])]
    outputs += [_vi(c["output"], elem[c["input"]], shapes[c["input"]]) for c in carried]
    manifest = {"version": 1, "role": "training", "model": "softmax", "data": _data(d), "carried": carried,
                "hyper": [{"name": "lr", "dtype": "float32", "default": lr}],
                "losses": ["loss"], "metrics": ["acc"], "steps": ["loss"], "select": None,
                "train": train or {"batch": 16, "epochs": 3, "seed": 0, "split": 0.75, "early_stopping": None},
                "spec": None}
    training = _model(nodes, inputs, outputs, inits, manifest, "softmax_train")

    ev_manifest = {"version": 1, "role": "evaluation", "model": "softmax", "data": _data(d),
                   "params": ["W", "b"], "losses": ["loss"], "metrics": ["acc"]}
    evaluation = _model(_forward(), [_vi("x", F, ["B", d]), _vi("y", I, ["B"]), _vi("W", F, [d, k]), _vi("b", F, [k])],
                        [_vi("loss", F, []), _vi("acc", F, [])], {"W": W0, "b": b0}, ev_manifest, "softmax_eval")
    inf_nodes = [_node("MatMul", ["x", "W"], ["xw"]), _node("Add", ["xw", "b"], ["logits"]),
                 _node("Softmax", ["logits"], ["probs"], axis=-1)]
    graph = helper.make_graph(inf_nodes, "softmax", [_vi("x", F, ["B", d])], [_vi("probs", F, ["B", k])],
                              [numpy_helper.from_array(W0, "W"), numpy_helper.from_array(b0, "b")])
    inference = helper.make_model(graph, opset_imports=OPSET, ir_version=9)
    onnx.checker.check_model(inference, full_check=True)
    return training, evaluation, inference


def blobs(n: int = 240, d: int = 4, k: int = 3, seed: int = 0):
    """Separable Gaussian clusters: x f32[n, d], y i64[n]."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 3
    y = rng.integers(0, k, n)
    x = centers[y] + rng.standard_normal((n, d))
    return {"x": x.astype(np.float32), "y": y.astype(np.int64)}


def two_losses(lr: float = 0.1, steps=("a_loss", "a_loss", "c_loss")):
    """Two scalar params a, c and one data input x f32[B]:
    a_loss = mean((a - x)^2), c_loss = mean((c + x)^2). The select input picks which
    param moves this run; states na, nc count the updates each received."""
    nodes = [
        _node("Sub", ["a", "x"], ["ad"]), _node("Mul", ["ad", "ad"], ["ad2"]),
        _node("ReduceMean", ["ad2"], ["a_loss"], keepdims=0),
        _node("Add", ["c", "x"], ["cd"]), _node("Mul", ["cd", "cd"], ["cd2"]),
        _node("ReduceMean", ["cd2"], ["c_loss"], keepdims=0),
        _const("two", np.array(2.0, np.float32)),
        _node("ReduceMean", ["ad"], ["adm"], keepdims=0), _node("Mul", ["two", "adm"], ["ga"]),
        _node("ReduceMean", ["cd"], ["cdm"], keepdims=0), _node("Mul", ["two", "cdm"], ["gc"]),
        # sel_a = (select == 0), sel_c = 1 - sel_a: only the chosen loss's update applies
        _const("zero", np.array(0, np.int64)), _node("Equal", ["loss_select", "zero"], ["isa"]),
        _node("Cast", ["isa"], ["sel_a"], to=F), _const("onef", np.array(1.0, np.float32)),
        _node("Sub", ["onef", "sel_a"], ["sel_c"]),
        _node("Mul", ["lr", "ga"], ["lga"]), _node("Mul", ["lga", "sel_a"], ["upa"]), _node("Sub", ["a", "upa"], ["a.next"]),
        _node("Mul", ["lr", "gc"], ["lgc"]), _node("Mul", ["lgc", "sel_c"], ["upc"]), _node("Sub", ["c", "upc"], ["c.next"]),
        _node("Add", ["na", "sel_a"], ["na.next"]), _node("Add", ["nc", "sel_c"], ["nc.next"]),
    ]
    carried = [_carried("a", "param", []), _carried("c", "param", []),
               _carried("na", "state", []), _carried("nc", "state", [])]
    inits = {k: np.array(0.0, np.float32) for k in ("a", "c", "na", "nc")}
    inputs = [_vi("x", F, ["B"])] + [_vi(k, F, []) for k in inits] + [_vi("lr", F, []), _vi("loss_select", I, [])]
    outputs = [_vi("a_loss", F, []), _vi("c_loss", F, [])] + [_vi(k + ".next", F, []) for k in inits]
    manifest = {"version": 1, "role": "training", "model": "two", "carried": carried,
                "data": [{"name": "x", "dtype": "float32", "shape": ["B"], "batch_axis": 0}],
                "hyper": [{"name": "lr", "dtype": "float32", "default": lr}],
                "losses": ["a_loss", "c_loss"], "metrics": [], "steps": list(steps),
                "select": {"input": "loss_select", "values": {"a_loss": 0, "c_loss": 1}},
                "train": {"batch": 4, "epochs": 2, "seed": 1}}
    return _model(nodes, inputs, outputs, inits, manifest, "two_losses")


def diverging(lr: float = 10.0):
    """loss = mean(log(w * x)) with w = 1 at first; the update w' = w - lr / w makes
    w negative, so the second step takes the log of negatives (node doc `toy.dl:7`)."""
    nodes = [
        _node("Mul", ["w", "x"], ["wx"], doc="toy.dl:6"),
        _node("Log", ["wx"], ["logwx"], doc="toy.dl:7"),
        _node("ReduceMean", ["logwx"], ["loss"], doc="toy.dl:8", keepdims=0),
        _node("Reciprocal", ["w"], ["g"]), _node("Mul", ["lr", "g"], ["up"]), _node("Sub", ["w", "up"], ["w.next"]),
    ]
    manifest = {"version": 1, "role": "training", "model": "diverging",
                "data": [{"name": "x", "dtype": "float32", "shape": ["B"], "batch_axis": 0}],
                "carried": [_carried("w", "param", [], init="ones")],
                "hyper": [{"name": "lr", "dtype": "float32", "default": lr}],
                "losses": ["loss"], "metrics": [], "train": {"batch": 4, "epochs": 1, "seed": 0}}
    return _model(nodes, [_vi("x", F, ["B"]), _vi("w", F, []), _vi("lr", F, [])],
                  [_vi("loss", F, []), _vi("w.next", F, [])], {"w": np.array(1.0, np.float32)},
                  manifest, "diverging")
