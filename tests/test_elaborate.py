"""Elaboration of the LANGUAGE.md examples and the standard layers: exact
param paths and shapes, instance naming, state updates, train blocks, and the
to_dl() round trip."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from dslc import api
from dslc.errors import SpecError
from dslc.ir.dims import show_shape
from dslc.ir.node import Node

LANG = Path(__file__).parent / "lang"
SPECS = sorted(LANG.glob("*.dl")) + sorted((LANG.parent.parent / "specs").glob("*.dl"))


def shapes(model) -> dict:
    return {k: f"{v.dtype}{show_shape(v.shape)}" for k, v in model.params.items()}


def lint_all(prog):
    for m in prog.models.values():
        m.graph().lint()


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_lang_specs_elaborate_and_lint(path):
    prog = api.load(path)
    assert prog.models
    lint_all(prog)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_to_dl_round_trip_gives_the_same_ir(path):
    a = api.load(path)
    b = api.parse(a.to_dl(), filename=str(path))        # the full path: imports are relative to it
    assert list(a.models) == list(b.models)
    for name in a.models:
        pa, pb = a.models[name].graph().print(), b.models[name].graph().print()
        strip = lambda s: [re.sub(r"uid=\d+|scan\d+", "#", l.split("#")[0].rstrip())   # noqa: E731
                           for l in s.splitlines()]
        assert strip(pa) == strip(pb)
        assert shapes(a.models[name]) == shapes(b.models[name])


EXPECTED = {
    "digits": {
        "h1.W": "f32[64, 128]", "h1.b": "f32[128]", "h2.W": "f32[128, 128]", "h2.b": "f32[128]",
        "logits.W": "f32[128, 10]", "logits.b": "f32[10]"},
    "gan": {
        "G.hid.W": "f32[4, 32]", "G.hid.b": "f32[32]", "G.dense_0.W": "f32[32, 2]", "G.dense_0.b": "f32[2]",
        "D.hid.W": "f32[2, 32]", "D.hid.b": "f32[32]", "D.dense_0.W": "f32[32, 1]", "D.dense_0.b": "f32[1]"},
    "vae": {
        "mu.hid.W": "f32[64, 128]", "mu.hid.b": "f32[128]", "mu.dense_0.W": "f32[128, 8]",
        "mu.dense_0.b": "f32[8]", "mu.dense_1.W": "f32[128, 8]", "mu.dense_1.b": "f32[8]",
        "dense_0.W": "f32[8, 128]", "dense_0.b": "f32[128]", "recon.W": "f32[128, 64]", "recon.b": "f32[64]"},
    "seq": {"hs.gates.W": "f32[80, 256]", "hs.gates.b": "f32[256]", "logits.W": "f32[64, 4]",
            "logits.b": "f32[4]"},
    "score": {"dense_0.W": "f32[2, 64]", "dense_0.b": "f32[64]", "dense_1.W": "f32[64, 1]",
              "dense_1.b": "f32[1]"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exact_param_paths(name):
    prog = api.load(LANG / "section8.dl") if name != "digits" else api.load(LANG / "digits.dl")
    assert shapes(prog.models[name]) == EXPECTED[name]
    if (LANG / f"{name}.dl").exists():
        assert shapes(api.load(LANG / f"{name}.dl").model(name)) == EXPECTED[name]


def test_digits_model_and_train_block():
    prog = api.load(LANG / "digits.dl")
    m = prog.model()
    assert list(m.inputs) == ["x", "y"] and list(m.outputs) == ["probs"]
    assert list(m.losses) == ["loss"] and list(m.metrics) == ["acc"]
    assert m.params["h1.W"].attrs["init"] == ("glorot_uniform",)
    t = prog.trains["digits"]
    assert (t.data, t.split, t.batch, t.epochs, t.seed, t.weight_decay) == ("data/digits.npz", 0.8, 64, 30, 0, 1e-4)
    assert t.optimizer.kind == "adam" and t.optimizer.args == {"lr": 1e-3}


def test_gan_losses_and_steps():
    prog = api.load(LANG / "gan.dl")
    m = prog.model("gan")
    assert m.losses["d_loss"].wrt == ["D"] and m.losses["g_loss"].wrt == ["G"]
    assert m.params_of(m.losses["d_loss"]) == [p for p in m.params if p.startswith("D.")]
    t = prog.trains["gan"]
    assert t.steps == ["d_loss", "g_loss"] and t.optimizer.args == {"lr": 2e-4, "beta1": 0.5}


NAMING = """
layer enc(x: [B, n], k: int) {
    h1 = dense(x, k)
    return h1
}
model m {
    input x: f32[B, 6]
    e = enc(x, 3)
    a = relu(dense(x, 2))
    b = dense(x, 2) + dense(x, 2)
    c = x |> repeat(2, dense(6, act = tanh)) |> dense(5)
    d = x |> repeat(2, dense(6))
    s1 = dense(x, 4) as shared
    s2 = dense(x, 4) as shared
    back = e @ transpose(e.h1.W)
    output o = back
    output o2 = s1 + s2
}
"""


def test_instance_naming_rules():
    m = api.parse(NAMING).model()
    assert list(m.params) == [
        "e.h1.W", "e.h1.b", "dense_0.W", "dense_0.b", "dense_1.W", "dense_1.b", "dense_2.W", "dense_2.b",
        "repeat_0.0.W", "repeat_0.0.b", "repeat_0.1.W", "repeat_0.1.b", "c.W", "c.b",
        "d.0.W", "d.0.b", "d.1.W", "d.1.b", "shared.W", "shared.b"]
    m.graph().lint()


def test_as_sharing_needs_the_same_shapes():
    text = """model m {
    input x: f32[B, 6]
    s1 = dense(x, 4) as sh
    s2 = dense(x, 5) as sh
}
"""
    with pytest.raises(SpecError) as e:
        api.parse(text)
    assert e.value.line == 3 or "shared instance" in e.value.message


STD = """
model m {
    input x: f32[B, 3, 8, 8]
    input s: f32[B, 2, 10]
    input v: f32[B, 6]
    input ids: i64[B, 5]
    input seq: f32[7, B, 6]
    input y: i64[B]
    c = conv2d(x, 4, 3, act = relu)
    c2 = conv2d(c, 4, 3, stride = 2, padding = "valid")
    bn = batch_norm2d(c2)
    d = conv1d(s, 3, 3)
    mo = maxout(v, 5, 3)
    e = embedding(ids, 100, 6)
    ln = layer_norm(e)
    bv = batch_norm(v)
    r = scan(rnn_cell, seq, zeros([B, 8]))
    hs, cs = scan(lstm_cell, seq, zeros([B, 8]), zeros([B, 8]))
    g = scan(gru_cell, seq, zeros([B, 8]))
    loss = cross_entropy(dense(v, 3), y) + mean(bn) + mean(d) + mean(mo) + mean(ln) + mean(bv) + mean(r) + mean(hs) + mean(g)
}
"""


def test_standard_layers():
    m = api.parse(STD).model()
    m.graph().lint()
    sh = shapes(m)
    assert sh["c.W"] == "f32[4, 3, 3, 3]" and sh["c2.W"] == "f32[4, 4, 3, 3]"
    assert sh["d.W"] == "f32[3, 2, 3]" and sh["mo.W"] == "f32[6, 15]" and sh["e.table"] == "f32[100, 6]"
    assert sh["hs.W"] == "f32[14, 32]" and sh["g.Wzr"] == "f32[14, 16]" and sh["r.Wh"] == "f32[8, 8]"
    assert list(m.states) == ["bn.running_mean", "bn.running_var", "bv.running_mean", "bv.running_var"]
    assert set(m.state_updates) == set(m.states)
    assert m.states["bv.running_var"].attrs["init"] == ("ones",)
    ops = {n.op for n in m.graph().order()}
    assert "training" in ops


def test_update_statement_and_training_switch():
    text = """layer counter(x: [B, n]) {
    state total: [n] ~ zeros
    update total = total + sum(x, axis = 0)
    return training(x, x * 0.0 + total)
}
model m {
    input x: f32[B, 3]
    output y = counter(x)
}
"""
    m = api.parse(text).model()
    assert list(m.state_updates) == ["y.total"]
    m.graph().lint()


def test_train_settings():
    text = """model m {
    input x: f32[B, 4]
    h = dense(x, 2)
    loss = mean(h)
    metric mx = max(h)
}
train m {
    data = "d.npz"
    valid = "v.npz"
    optimizer = sgd(lr = 0.01 * (1 + 1e-4 * t) ** -0.75, momentum = 0.9, nesterov = true)
    schedule = step(100, 0.5)
    clip = norm(5)
    average = polyak(0.99)
    early_stopping = patience(4, val_mx)
    l1 = 1e-5
    lr_scale = {h: 2.0}
}
"""
    t = api.parse(text).trains["m"]
    lr = t.optimizer.args["lr"]
    assert callable(lr) and t.optimizer.args["nesterov"] is True and t.optimizer.args["momentum"] == 0.9
    from dslc.ir.types import TensorType
    from dslc.ops.leaves import input_
    node = lr(input_("t", TensorType("f32", ())))
    assert isinstance(node, Node) and node.shape == ()
    assert t.schedule == ("step", 100, 0.5) and t.clip == 5.0 and t.average == 0.99
    assert t.early_stopping == (4, "val_mx") and t.l1 == 1e-5 and t.lr_scale == {"h": 2.0}
    assert t.valid == "v.npz" and t.data == "d.npz"


def test_schedules_and_polyak_default():
    base = "model m {\n    input x: f32[B, 4]\n    loss = mean(dense(x, 1))\n}\ntrain m {\n    %s\n}\n"
    for text, field, want in [("schedule = cosine(1000)", "schedule", ("cosine", 1000)),
                              ("schedule = constant", "schedule", ("constant",)),
                              ("schedule = warmup(10)", "schedule", ("warmup", 10)),
                              ("schedule = inverse_power(0.5)", "schedule", ("inverse_power", 0.5)),
                              ("average = polyak()", "average", "linear"),
                              ("split = 0.9", "split", 0.9)]:
        assert getattr(api.parse(base % text).trains["m"], field) == want
    assert callable(api.parse(base % "schedule = 1 / (1 + 0.01 * t)").trains["m"].schedule)


def test_dims_as_numbers_and_symbolic_index():
    text = """layer halves(h: [B, m]) {
    return h[:, 0:m / 2] * (2 * m), h[:, m / 2:m]
}
model m {
    input xs: f32[T, B, 8]
    a, b = halves(xs[-1])
    output o = a + b + zeros([B, 4])
}
"""
    m = api.parse(text).model()
    assert m.outputs["o"].shape[1] == 4
    m.graph().lint()


def test_load_unreadable_file_has_no_location(tmp_path):
    with pytest.raises(SpecError) as e:
        api.load(tmp_path / "missing.dl")
    assert e.value.loc is None and "cannot read" in e.value.message


def test_internal_errors_become_spec_errors(monkeypatch):
    from dslc.elaborate import program
    monkeypatch.setattr(program, "_model", lambda *a: 1 / 0)
    with pytest.raises(SpecError, match="internal error"):
        api.parse("model m {\n    input x: f32[B, 2]\n}\n")


def test_several_errors_are_collected():
    from dslc.errors import SpecErrors
    text = "model m {\n    input x: f32[B, 2]\n    a = relu(q)\n    b = relu(a)\n    c = sigmoidd(x)\n}\n"
    with pytest.raises(SpecErrors) as e:
        api.parse(text)
    assert [(x.line, x.column) for x in e.value.errors] == [(3, 14), (5, 9)]


def test_update_statement_prints_back():
    text = ("layer c(x: [B, n]) {\n    state s: [n] ~ zeros\n    update s = s + mean(x, axis = 0)\n"
            "    return x\n}\nmodel m {\n    input x: f32[B, 2]\n    output y = c(x)\n}\n")
    prog = api.parse(text)
    assert "    update s = s + mean(x, axis = 0)\n" in prog.to_dl()
    assert list(api.parse(prog.to_dl()).model().state_updates) == ["y.s"]


def test_as_named_instance_params_can_be_read():
    """`y = lin(x) as net` then `net.W` reads the shared instance's param."""
    from dslc import parse
    p = parse("layer lin(x: [B, n]) {\n    param W: [n, 3] ~ zeros\n    return x @ W\n}\n"
              "model m {\n    input x: f32[B, 2]\n    y = lin(x) as net\n    output w = net.W\n"
              "    loss = mean(y)\n}\n", "t.dl")
    m = p.models["m"]
    assert m.outputs["w"] is m.params["net.W"]


def test_consts_in_train_settings():
    from dslc import parse
    p = parse("const WD = 1e-4\nconst E = 7\nmodel m {\n    input x: f32[B, 2]\n    loss = mean(dense(x, 1))\n}\n"
              "train m {\n    optimizer = sgd(lr = WD * 10)\n    weight_decay = WD\n    epochs = E\n"
              "    schedule = cosine(E)\n}\n", "t.dl")
    t = p.trains["m"]
    assert (t.weight_decay, t.epochs, t.schedule, t.optimizer.args["lr"]) == (1e-4, 7, ("cosine", 7), 1e-3)


def test_no_follow_on_error_after_a_failed_output():
    from dslc import SpecError, parse
    text = ("layer lin(x: [B, n], m: int) {\n    param W: [n, m] ~ zeros\n    return x @ W\n}\n"
            "model m {\n    input x: f32[B, 4]\n    h = lin(x, 4 / 3)\n    output f = h\n    g = h\n"
            "    loss = mean(f) + mean(g)\n}\n")
    with pytest.raises(SpecError) as err:
        parse(text, "t.dl")
    errors = getattr(err.value, "errors", [err.value])
    assert len(errors) == 1 and errors[0].line == 7


def test_conv_biases_are_vectors():
    """So that weight decay (rank >= 2) leaves them alone."""
    from dslc import parse
    p = parse("model m {\n    input x: f32[B, 1, 8, 8]\n    h = conv2d(x, 2, 3)\n"
              "    g = conv1d(x[:, 0], 3, 3)\n    loss = mean(h) + mean(g)\n}\n", "t.dl")
    assert {k: v.shape for k, v in p.models["m"].params.items() if k.endswith(".b")} == {"h.b": (2,), "g.b": (3,)}


def test_standard_recurrent_cells_scan():
    from dslc import parse
    p = parse("model m {\n    input xs: f32[T, B, 3]\n    a = scan(rnn_cell, xs, zeros([B, 4]))\n"
              "    b, bc = scan(lstm_cell, xs, zeros([B, 4]), zeros([B, 4]))\n"
              "    c, cc = scan(lstm_peephole_cell, xs, zeros([B, 4]), zeros([B, 4]))\n"
              "    d = scan(gru_cell, xs, zeros([B, 4]))\n"
              "    loss = mean(a) + mean(b) + mean(c) + mean(d)\n}\n", "t.dl")
    shapes = {k: v.shape for k, v in p.models["m"].params.items()}
    assert shapes["c.W"] == (11, 12) and shapes["c.Wc"] == (7, 4) and shapes["b.W"] == (7, 16)
    import dslc
    c = dslc.compile(p)
    assert c.evaluation is not None
