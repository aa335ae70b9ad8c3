"""`import "model.onnx" as net` in specs, and the train settings freeze / lora /
lora_merge (LANGUAGE.md §4, §9); `dslc inspect`."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import dslc
from dslc.cli import main
from dslc.errors import SpecError
from dslc.lower.lora import merge_adapters

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parents[1]


def _spec(tmp_path, text, models=("mlp", "transformer", "lstm", "cnn")):
    for m in models:
        shutil.copy(DATA / f"{m}.onnx", tmp_path / f"{m}.onnx")
    p = tmp_path / "spec.dl"
    p.write_text(text)
    return p


MLP = '''import "mlp.onnx" as net

model m {
    input x: f32[B, 12]
    input y: i64[B]
    logits = net(x)
    h = dense(logits, 3)
    output probs = softmax(h)
    loss = cross_entropy(h, y)
}

train m {
    optimizer = sgd(lr = 0.1)
    batch = 8
    %s
}
'''


def _run(compiled, steps=3, n=8):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    y = rng.integers(0, 3, n)
    t = dslc.Trainer(compiled, progress=False, log=lambda *_: None)
    t.fit({"x": x, "y": y}, epochs=steps)
    return t


def test_import_is_a_layer_whose_forward_is_the_models(tmp_path):
    p = _spec(tmp_path, '''import "lstm.onnx" as rnn

model m {
    input xs: f32[T, B, 6]
    logits, gs = rnn(xs)
    output a = logits
    output b = rnn(xs = xs).gs
    output c = (xs |> rnn()).logits
    output d = (xs |> rnn).gs
}
''')
    c = dslc.compile(dslc.load(p))
    ref = np.load(DATA / "lstm.npz")
    sess = ort.InferenceSession(c.inference.SerializeToString(), providers=["CPUExecutionProvider"])
    a, b, c_, d = sess.run(["a", "b", "c", "d"], {"xs": ref["in_xs"]})
    for got, want in ((a, "logits"), (b, "gs"), (c_, "logits"), (d, "gs")):
        np.testing.assert_allclose(got, ref[f"out_{want}"], atol=1e-5)
    prog = dslc.load(p)
    assert "rnn.onnx__LSTM_187" in prog.models["m"].params       # two calls, one set of params


def test_freeze_trains_only_the_rest(tmp_path):
    p = _spec(tmp_path, MLP % "freeze = [net]")
    prog = dslc.load(p)
    m = prog.models["m"]
    assert set(m.params) == {"h.W", "h.b"}
    assert {k for k, s in m.states.items() if s.attrs.get("frozen")} >= {"net.0.weight", "net.4.bias"}
    from dslc.report import describe_program
    text = describe_program(prog)
    assert "(frozen)" in text and "total params: 18 trained, 565 frozen" in text
    t = _run(dslc.compile(prog))
    init = {i.name: numpy_helper.to_array(i) for i in onnx.load(DATA / "mlp.onnx").graph.initializer}
    vals = t.params()
    for k, v in init.items():
        np.testing.assert_array_equal(vals[f"net.{k}"], v)               # frozen: unchanged
    assert not np.allclose(vals["h.W"], _initial(prog, "h.W"))                # the head trains


def _initial(prog, path):
    from dslc.compile import _values
    return _values(prog.models["m"], prog.trains["m"].seed)[path]


def test_freeze_a_finer_path(tmp_path):
    m = dslc.load(_spec(tmp_path, MLP % 'freeze = ["net.0", "net.2"]')).models["m"]
    assert set(m.params) == {"net.4.weight", "net.4.bias", "h.W", "h.b"}


def test_lora_trains_only_the_adapters_and_the_export_merges_them(tmp_path):
    p = _spec(tmp_path, '''import "transformer.onnx" as net

model enc {
    input ids: i64[3, 6]
    input y: i64[3]
    output logits = net(ids)
    loss = cross_entropy(logits, y)
}

train enc {
    optimizer = adam(lr = 1e-2)
    lora = {net: 4}
    batch = 3
}
''')
    prog = dslc.load(p)
    m = prog.models["enc"]
    assert m.params and all(k.endswith((".lora_down", ".lora_up")) for k in m.params)
    # one adapter pair per weight matrix: D [n, 4], U [4, m]
    mats = {k: v for k, v in onnx_inits("transformer").items() if v.ndim == 2}
    assert len(m.params) == 2 * len(mats)
    for k, v in mats.items():
        assert m.params[f"net.{k}.lora_down"].shape == (v.shape[0], 4)
        assert m.params[f"net.{k}.lora_up"].shape == (4, v.shape[1])
    trained = sum(v.shape[0] * 4 + 4 * v.shape[1] for v in mats.values())
    from dslc.report import describe_program
    assert f"total params: {trained:,} trained" in describe_program(prog)
    # LoRA starts at the original function: U = 0
    c = dslc.compile(prog)
    ref = np.load(DATA / "transformer.npz")
    run = lambda model: ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]) \
        .run(["logits"], {"ids": ref["in_ids"]})[0]
    np.testing.assert_allclose(run(c.inference), ref["out_logits"], atol=1e-5)
    rng = np.random.default_rng(0)
    t = dslc.Trainer(c, progress=False, log=lambda *_: None)
    hist = t.fit({"ids": ref["in_ids"], "y": rng.integers(0, 4, 3)}, epochs=10)
    assert hist[-1]["loss"] < hist[0]["loss"]
    vals = t.params()
    for k, v in onnx_inits("transformer").items():                 # the imported weights never move
        np.testing.assert_array_equal(vals[f"net.{k.replace('::', '__')}"], v)
    exported = t.inference_model()
    merged = merge_adapters(exported)
    onnx.checker.check_model(merged, full_check=True)
    assert {i.name for i in merged.graph.initializer} == {f"net.{k.replace('::', '__')}" for k in onnx_inits("transformer")}
    np.testing.assert_allclose(run(merged), run(exported), atol=1e-5)
    assert np.abs(run(merged) - ref["out_logits"]).max() > 1e-3   # and it did learn something


def onnx_inits(name):
    return {i.name.replace("::", "__"): numpy_helper.to_array(i) for i in onnx.load(DATA / f"{name}.onnx").graph.initializer}


@pytest.mark.parametrize("setting, message", [
    ("freeze = [nett]", "freeze: no instance or param named `nett` (did you mean `net`?)"),
    ("lora = {net: 0}", "positive adapter rank"),
    ("lora = [net]", "lora is a dict"),
    ("lora = {h: 64}", "lora rank 64 exceeds"),
    ("lora_merge = 1", "lora_merge is true or false"),
])
def test_bad_finetune_settings(tmp_path, setting, message):
    with pytest.raises(SpecError) as e:
        dslc.load(_spec(tmp_path, MLP % setting))
    assert message in str(e.value) and "spec.dl:" in str(e.value)


def _tiny(tmp_path, op_type="Hardmax"):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    m = helper.make_model(helper.make_graph([helper.make_node(op_type, ["x"], ["y"], name="hm")], "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 19)])
    onnx.save(m, tmp_path / "tiny.onnx")


@pytest.mark.parametrize("text, message, line", [
    ('import "missing.onnx" as net\n', 'cannot import "missing.onnx": no such file', 1),
    ('const K = 1\nimport "tiny.onnx" as net\n', "ONNX op Hardmax (opset 19; first at node `hm`) has no converter", 2),
    ('import "mlp.onnx" as net\nmodel m {\n    input x: f32[B, 11]\n    output y = net(x)\n}\n',
     "input `x` of `net` must be f32[batch, 12], found f32[B, 11]: dim 1 is 11, not 12", 4),
    ('import "mlp.onnx" as net\nmodel m {\n    input x: i64[B, 12]\n    output y = net(x)\n}\n',
     "input `x` of `net` must be f32[batch, 12], found i64[B, 12]", 4),
    ('import "lstm.onnx" as net\nmodel m {\n    input x: f32[T, B, 6]\n    output y = net(x).logit\n}\n',
     "`net` has no output `logit` (did you mean `logits`?)", 4),
    ('import "mlp.onnx" as net\nmodel m {\n    input x: f32[B, 12]\n    output y = net(x, z = x)\n}\n',
     "`net` has no input `z`", 4),
])
def test_import_errors_point_at_the_spec(tmp_path, capsys, text, message, line):
    _tiny(tmp_path)
    p = _spec(tmp_path, text)
    assert main(["check", str(p)]) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert f"spec.dl:{line}:" in err and "^" in err and "Traceback" not in err


def test_import_prints_back():
    text = (ROOT / "specs" / "finetune.dl").read_text()
    prog = dslc.parse(text, str(ROOT / "specs" / "finetune.dl"))
    assert 'import "data/digits_mlp.onnx" as net' in prog.to_dl()
    from dslc.syntax.fmt import format_source
    assert format_source(text) == text


def test_finetune_spec_freezes_all_but_the_last_layer():
    prog = dslc.load(ROOT / "specs" / "finetune.dl")
    m = prog.models["finetune"]
    assert set(m.params) == {"net.out.weight", "net.out.bias"}


def test_inspect(tmp_path, capsys):
    _tiny(tmp_path)
    assert main(["inspect", str(DATA / "cnn.onnx")]) == 0
    out = capsys.readouterr().out
    assert "inputs:  x: f32[batch, 1, 8, 8]" in out and "outputs: y: f32[batch, 3]" in out
    assert "net.c1.weight" in out and "net.bn.running_mean" in out and "(state)" in out
    assert "every op is supported" in out and "BatchNormalization" in out
    assert main(["inspect", str(tmp_path / "tiny.onnx")]) == 0
    assert "NOT importable: no converter for Hardmax (hm)" in capsys.readouterr().out


def test_dslc_train_merges_lora_adapters_unless_asked_not_to(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(16, 12)).astype(np.float32), y=rng.integers(0, 3, 16))
    originals = {f"net.{k}" for k in onnx_inits("mlp")} | {"h.W", "h.b"}
    for merge, extra in ((True, set()), (False, {"net.0.weight.lora_down", "net.0.weight.lora_up"})):
        text = (MLP % f'lora = {{"net.0": 2}}\n' f"    lora_merge = {'true' if merge else 'false'}").replace(
            "optimizer", 'data = "d.npz"\n    epochs = 2\n    optimizer')
        p = _spec(tmp_path, text, models=("mlp",))
        out = tmp_path / f"run_{merge}"
        assert main(["train", str(p), "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
        exported = onnx.load(out / "model.onnx")
        onnx.checker.check_model(exported, full_check=True)
        assert {i.name for i in exported.graph.initializer} == originals | extra


def test_imported_batch_norm_updates_its_running_statistics_in_training(tmp_path):
    p = _spec(tmp_path, '''import "cnn.onnx" as net

model m {
    input x: f32[B, 1, 8, 8]
    input y: i64[B]
    output logits = net(x)
    loss = cross_entropy(logits, y)
}

train m {
    freeze = [net.c1, net.bn, net.c2]
    optimizer = sgd(lr = 0.1)
    batch = 4
}
''', models=("cnn",))
    c = dslc.compile(dslc.load(p))
    kinds = {e["input"]: e["kind"] for e in c.manifest["carried"]}
    assert kinds["net.bn.running_mean"] == kinds["net.bn.running_var"] == "state"
    x = np.random.default_rng(0).normal(size=(4, 1, 8, 8)).astype(np.float32)
    t = dslc.Trainer(c, progress=False, log=lambda *_: None)
    t.fit({"x": x, "y": np.zeros(4, dtype=np.int64)}, epochs=1)
    init = onnx_inits("cnn")
    rm = t.params()["net.bn.running_mean"]
    # frozen weights; the running statistics still move (they are states, updated in training)
    assert not np.allclose(rm, init["bn.running_mean"])
    np.testing.assert_allclose(t.params()["net.c1.weight"], init["c1.weight"])
    # the exported graph uses the running statistics: same as onnxruntime on the original with them
    exported = t.inference_model()
    orig = onnx.load(DATA / "cnn.onnx")
    for i in orig.graph.initializer:          # the original, holding the trained values
        if f"net.{i.name}" in t.params():
            i.CopyFrom(numpy_helper.from_array(t.params()[f"net.{i.name}"], i.name))
    run = lambda mdl: ort.InferenceSession(mdl.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(run(exported), run(orig), atol=1e-5)
