"""ONNX import on real exported models (tests/data, made by make_onnx_models.py;
torch is not needed here): the imported forward equals onnxruntime on the
original, one training step's gradients equal PyTorch's, round trips hold."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import dslc
from dslc import passes
from dslc.autodiff import grad
from dslc.errors import SpecError
from dslc.ir.graph import Graph
from dslc.ir.node import apply as P, const
from dslc.lower.driver import lower_graph, make_model
from dslc.onnx_import import OnnxModel, import_onnx, sanitize

DATA = Path(__file__).parent / "data"
TORCH = ["mlp", "cnn", "lstm", "transformer"]


def _ort(model: onnx.ModelProto, feeds: dict) -> dict:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})))


def _ref(name):
    return dict(np.load(DATA / f"{name}.npz"))


@pytest.mark.parametrize("name", TORCH + ["skl_mlp"])
def test_forward_equals_onnxruntime(name):
    ref = _ref(name)
    m = import_onnx(DATA / f"{name}.onnx")
    Graph(m.graph().roots).lint()
    c = dslc.compile(m)
    onnx.checker.check_model(c.inference, full_check=True)
    feeds = {k[3:]: v for k, v in ref.items() if k.startswith("in_")}
    got = _ort(c.inference, feeds)
    orig = _ort(onnx.load(DATA / f"{name}.onnx"), feeds)
    for k, v in orig.items():
        np.testing.assert_allclose(got[sanitize(k)], v, atol=1e-5, rtol=0, err_msg=k)
        np.testing.assert_allclose(got[sanitize(k)], ref[f"out_{k}"], atol=1e-5, rtol=0, err_msg=k)


def _train_step_grads(name):
    """d/dθ of L = sum_k sum(c_k * output_k) in training mode, run on onnxruntime;
    also the states' new values (batch norm running statistics)."""
    ref = _ref(name)
    from dslc.ir.types import TensorType
    types = {k[3:]: TensorType("i64" if v.dtype.kind == "i" else "f32", v.shape)
             for k, v in ref.items() if k.startswith("in_")}
    m = import_onnx(DATA / f"{name}.onnx", types=types)
    terms = [P("sum", const(ref[f"cot_{k}"]) * v, axes=tuple(range(v.rank)), keepdims=False)
             for k, v in m.outputs.items() if f"cot_{k}" in ref]
    loss = terms[0]
    for t in terms[1:]:
        loss = loss + t
    roots = {"loss": loss, **{f"state:{k}": v for k, v in m.state_updates.items()}}
    roots, _ = passes.specialize(roots, "train")
    paths = list(m.params)
    gs = grad(roots["loss"], [m.params[p] for p in paths])
    roots.update({f"grad:{p}": g for p, g in zip(paths, gs)})
    roots = passes.optimize(roots)
    Graph(roots).lint()
    from dslc.compile import _values
    values = _values(m, 0)
    g = lower_graph(roots, list(m.inputs.values()), values, name=name)
    feeds = {k[3:]: v for k, v in ref.items() if k.startswith("in_")}
    return ref, m, _ort(make_model(g, {}), feeds)


@pytest.mark.parametrize("name", TORCH)
def test_one_training_step_gradients_equal_pytorch(name):
    ref, m, got = _train_step_grads(name)
    onnx_names = {f"net.{sanitize(k[5:])}": k[5:] for k in ref if k.startswith("grad_")}
    assert set(onnx_names) == set(m.params), "every trained initializer has a PyTorch gradient"
    for path, oname in onnx_names.items():
        np.testing.assert_allclose(got[f"grad:{path}"], ref[f"grad_{oname}"], atol=1e-5, rtol=0,
                                   err_msg=path)
    for k in ref:
        if k.startswith("bn_"):               # running statistics after the step, as PyTorch's
            np.testing.assert_allclose(got[f"state:net.{sanitize(k[3:])}"], ref[k], atol=1e-6, err_msg=k)


def test_params_and_states_by_path():
    m = import_onnx(DATA / "cnn.onnx")
    assert "net.bn.running_mean" in m.states and "net.bn.running_var" in m.states
    assert set(m.state_updates) == set(m.states)
    assert "net.c1.weight" in m.params and m.params["net.c1.weight"].shape == (4, 1, 3, 3)
    lstm = import_onnx(DATA / "lstm.onnx", name="rnn")
    assert "rnn.onnx__LSTM_187" in lstm.params                 # `onnx::LSTM_187`, sanitized
    assert [str(d) for d in lstm.inputs["xs"].shape] == ["T", "batch", "6"]   # symbolic dims kept
    assert any(n.op == "scan" for n in lstm.graph().order())   # the LSTM is a scan cell


def test_sanitize():
    assert sanitize("onnx::MatMul_345") == "onnx__MatMul_345"
    assert sanitize("enc.layers.0.norm1.weight") == "enc.layers.0.norm1.weight"
    assert sanitize("/enc/Add:0") == "_enc_Add_0"


def test_round_trip_of_a_dslc_inference_graph(tmp_path):
    """A dslc inference graph imported back computes the same outputs."""
    prog = dslc.parse(Path("specs/digits.dl").read_text(), "digits.dl")
    c = dslc.compile(prog)
    path = tmp_path / "digits.onnx"
    onnx.save(c.inference, path)
    back = dslc.compile(import_onnx(path))
    x = np.random.default_rng(0).normal(size=(9, 64)).astype(np.float32)
    a, b = _ort(c.inference, {"x": x}), _ort(back.inference, {"x": x})
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-6)


SPECS = sorted(Path(__file__).parents[1].glob("specs/*.dl"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_inference_graph_imports_back(spec, tmp_path):
    """Each model's inference graph (scans included, as ONNX Scan) imported back computes the same.
    Draws in an inference graph (dlgm's sample) are ONNX Runtime's, seeded by the op's `seed`
    attribute; the import keeps the seed, so they compare equal too."""
    prog = dslc.load(spec)
    rng = np.random.default_rng(0)
    for name in prog.models:
        c = dslc.compile(prog, name)
        if c.inference is None:
            continue
        path = tmp_path / f"{name}.onnx"
        onnx.save(c.inference, path)
        back = import_onnx(path)
        Graph(back.graph().roots).lint()
        again = dslc.compile(back).inference
        feeds = {}
        for i in c.inference.graph.input:
            t = i.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else 3 for d in t.shape.dim]
            feeds[i.name] = (rng.integers(0, 2, shape) if t.elem_type == onnx.TensorProto.INT64
                             else rng.normal(size=shape).astype(np.float32))
        a, b = _ort(c.inference, feeds), _ort(again, feeds)
        assert set(a) == set(b)
        for k in a:
            np.testing.assert_allclose(b[k], a[k], atol=1e-5, rtol=1e-5, err_msg=f"{name}: {k}")


def test_reexport_equals_original_and_imports_again(tmp_path):
    """Imported, re-exported, imported again: the outputs stay the original's."""
    ref = _ref("transformer")
    once = dslc.compile(import_onnx(DATA / "transformer.onnx")).inference
    onnx.save(once, tmp_path / "once.onnx")
    twice = dslc.compile(import_onnx(tmp_path / "once.onnx")).inference
    out = _ort(twice, {"ids": ref["in_ids"]})
    np.testing.assert_allclose(out["logits"], ref["out_logits"], atol=1e-5)


def _save(nodes, inputs, outputs, path, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return m


def test_scan_body_reads_outer_scope_values(tmp_path):
    """h_t = tanh(x_t (W/2) + h_{t-1} U + b): W/2 is computed outside the body and U is an outer
    initializer, both read by name (not Scan inputs); b is the body's own initializer."""
    from onnx import TensorProto as TP, numpy_helper as nh
    rng = np.random.default_rng(1)
    W, U, b = (rng.normal(size=s).astype(np.float32) for s in ((3, 2), (2, 2), (2,)))
    body = helper.make_graph(
        [helper.make_node("MatMul", ["x_t", "W2"], ["xw"]), helper.make_node("MatMul", ["h", "U"], ["hu"]),
         helper.make_node("Add", ["xw", "hu"], ["z"]), helper.make_node("Add", ["z", "b"], ["zb"]),
         helper.make_node("Tanh", ["zb"], ["h_new"]), helper.make_node("Identity", ["h_new"], ["y"])],
        "body", [helper.make_tensor_value_info("h", TP.FLOAT, ["B", 2]),
                 helper.make_tensor_value_info("x_t", TP.FLOAT, ["B", 3])],
        [helper.make_tensor_value_info("h_new", TP.FLOAT, ["B", 2]),
         helper.make_tensor_value_info("y", TP.FLOAT, ["B", 2])], initializer=[nh.from_array(b, "b")])
    nodes = [helper.make_node("Constant", [], ["half"], value=nh.from_array(np.float32(0.5))),
             helper.make_node("Mul", ["W", "half"], ["W2"]),
             helper.make_node("Scan", ["h0", "xs"], ["hT", "ys"], body=body, num_scan_inputs=1)]
    m = _save(nodes, [helper.make_tensor_value_info("h0", TP.FLOAT, ["B", 2]),
                      helper.make_tensor_value_info("xs", TP.FLOAT, ["T", "B", 3])],
              [helper.make_tensor_value_info("hT", TP.FLOAT, ["B", 2]),
               helper.make_tensor_value_info("ys", TP.FLOAT, ["T", "B", 2])],
              tmp_path / "scan.onnx", [nh.from_array(W, "W"), nh.from_array(U, "U")])
    back = import_onnx(tmp_path / "scan.onnx")
    assert set(back.params) == {"net.W", "net.U"}
    feeds = {"h0": rng.normal(size=(4, 2)).astype(np.float32), "xs": rng.normal(size=(5, 4, 3)).astype(np.float32)}
    a, b_ = _ort(m, feeds), _ort(dslc.compile(back).inference, feeds)
    for k in a:
        np.testing.assert_allclose(b_[k], a[k], atol=1e-5, rtol=0, err_msg=k)


def test_range_over_symbolic_lengths(tmp_path):
    """Range(start, limit, delta) with T = x.shape[0] symbolic: n = max(ceil((limit - start) / delta), 0)."""
    from onnx import TensorProto as TP, numpy_helper as nh
    c = {"zero": 0, "one": 1, "two": 2, "minus1": -1}
    nodes = [helper.make_node("Constant", [], [k], value=nh.from_array(np.asarray(v, np.int64))) for k, v in c.items()]
    nodes += [helper.make_node("Shape", ["x"], ["sh"]), helper.make_node("Gather", ["sh", "zero"], ["t"]),
              helper.make_node("Div", ["t", "two"], ["half"]),
              helper.make_node("Range", ["zero", "t", "one"], ["r_t"]),             # 0..T-1
              helper.make_node("Range", ["zero", "half", "one"], ["r_half"]),       # 0..T/2-1
              helper.make_node("Range", ["one", "t", "two"], ["r_odd"]),            # 1, 3, .. < T
              helper.make_node("Range", ["t", "zero", "minus1"], ["r_down"])]       # T, T-1, .., 1
    outs = ["r_t", "r_half", "r_odd", "r_down"]
    m = _save(nodes, [helper.make_tensor_value_info("x", TP.FLOAT, ["T", 3])],
              [helper.make_tensor_value_info(o, TP.INT64, [f"n_{o}"]) for o in outs], tmp_path / "range.onnx")
    again = dslc.compile(import_onnx(tmp_path / "range.onnx")).inference
    for T in (7, 8):
        x = np.zeros((T, 3), np.float32)
        a, b = _ort(m, {"x": x}), _ort(again, {"x": x})
        for k in outs:
            np.testing.assert_array_equal(b[k], a[k], err_msg=f"{k}, T = {T}")


def _tiny(op_type, tmp_path, opset=17, **attrs):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    node = helper.make_node(op_type, ["x"], ["y"], name="the_node", **attrs)
    m = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / "tiny.onnx"
    onnx.save(m, path)
    return path


def test_unsupported_op_is_named_with_node_and_opset(tmp_path):
    path = _tiny("Hardmax", tmp_path, opset=19)
    with pytest.raises(SpecError) as e:
        import_onnx(path)
    msg = e.value.message
    assert "Hardmax" in msg and "the_node" in msg and "opset 19" in msg
    assert OnnxModel.load(path).unsupported() == [("Hardmax", "the_node")]


def test_unsupported_op_inside_a_scan_body_is_named(tmp_path):
    from onnx import TensorProto as TP

    def vi(name, *shape):
        return helper.make_tensor_value_info(name, TP.FLOAT, list(shape))
    body = helper.make_graph([helper.make_node("Hardmax", ["x_t"], ["h_new"], name="inner_node"),
                              helper.make_node("Identity", ["h_new"], ["y"])],
                             "body", [vi("h", 2, 3), vi("x_t", 2, 3)], [vi("h_new", 2, 3), vi("y", 2, 3)])
    _save([helper.make_node("Scan", ["h0", "xs"], ["hT", "ys"], name="the_scan", body=body, num_scan_inputs=1)],
          [vi("h0", 2, 3), vi("xs", 4, 2, 3)], [vi("hT", 2, 3), vi("ys", 4, 2, 3)], tmp_path / "m.onnx")
    with pytest.raises(SpecError) as e:
        import_onnx(tmp_path / "m.onnx")
    msg = e.value.message
    assert "Hardmax" in msg and "inner_node" in msg and "the_scan" in msg and "opset 17" in msg
    assert OnnxModel.load(tmp_path / "m.onnx").unsupported() == [("Hardmax", "inner_node")]


def test_unsupported_attribute_is_an_error_not_a_crash(tmp_path):
    path = _tiny("Pad", tmp_path, opset=10, mode="reflect", pads=[0, 1, 0, 1])
    with pytest.raises(SpecError, match='Pad mode "reflect"'):
        import_onnx(path)


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(SpecError, match="cannot read ONNX model"):
        import_onnx(bad)
