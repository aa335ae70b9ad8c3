"""dslc.builder: every LANGUAGE.md example rebuilt in Python gives the same IR
as the parsed text; to_dl() of a built program parses back to the same IR;
builder errors name the user's own file and line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dslc
from dslc import builder as dl

LANG = Path(__file__).resolve().parent / "lang"


def ir(prog) -> dict[str, str]:
    return {name: m.graph().print(locs=False) for name, m in prog.models.items()}


def params(prog):
    return {name: {p: tuple(n.shape) for p, n in m.params.items()} for name, m in prog.models.items()}


def build_digits():
    prog = dl.Program()
    H = prog.const("H", 128)

    @prog.layer
    def dense(L, x: "[*, n]", m: int, act=dl.identity):
        L.W = dl.param("[n, m]", dl.glorot_uniform)
        L.b = dl.param("[m]", dl.zeros)
        return act(x @ L.W + L.b)

    with prog.model("digits") as m:
        m.x = dl.input("f32[B, 64]")
        m.y = dl.input("i64[B]")
        m.h1 = dense(m.x, H, act=dl.relu)
        m.h2 = dense(m.h1, H, act=dl.relu)
        m.logits = dense(m.h2, 10)
        m.output("probs", dl.softmax(m.logits))
        m.loss(dl.cross_entropy(m.logits, m.y))
        m.metric("acc", dl.accuracy(m.logits, m.y))
    prog.train("digits", data="data/digits.npz", split=0.8, optimizer=dl.adam(lr=1e-3), batch=64,
               epochs=30, weight_decay=1e-4, seed=0)
    return prog


def build_seq():
    prog = dl.Program()

    @prog.layer
    def lstm_step(L, h: "[B, m]", c: "[B, m]", x: "[B, n]"):
        m = L.m
        L.gates = dl.concat([x, h], axis=-1) | dl.dense(4 * m)
        L.i = dl.sigmoid(L.gates[:, 0:m])
        L.f = dl.sigmoid(L.gates[:, m:2 * m])
        L.o = dl.sigmoid(L.gates[:, 2 * m:3 * m])
        L.g = dl.tanh(L.gates[:, 3 * m:4 * m])
        L.c2 = L.f * c + L.i * L.g
        return L.o * dl.tanh(L.c2), L.c2

    with prog.model("seq") as m:
        m.xs = dl.input("f32[T, B, 16]")
        m.y = dl.input("i64[B]")
        m["hs", "cs"] = dl.scan(lstm_step, m.xs, dl.zeros([m.B, 64]), dl.zeros([m.B, 64]))
        m.logits = dl.dense(m.hs[-1], 4)
        m.loss(dl.cross_entropy(m.logits, m.y))
    return prog


def _mlp2(prog):
    @prog.layer
    def mlp2(L, x: "[B, n]", h: int, out: int):
        L.hid = dl.dense(x, h, act=dl.relu)
        return dl.dense(L.hid, out)
    return mlp2


def build_gan():
    prog = dl.Program()
    mlp2 = _mlp2(prog)
    with prog.model("gan") as m:
        m.x = dl.input("f32[B, 2]")
        m.z = dl.normal([m.B, 4])
        m.fake = mlp2(m.z, 32, 2).named("G")
        m.real_score = mlp2(m.x, 32, 1).named("D")
        m.fake_score = mlp2(m.fake, 32, 1).named("D")
        m.loss(dl.bce_logits(m.real_score, dl.ones([m.B, 1])) + dl.bce_logits(m.fake_score, dl.zeros([m.B, 1])),
               name="d_loss", wrt=["D"])
        m.loss(dl.bce_logits(m.fake_score, dl.ones([m.B, 1])), name="g_loss", wrt=["G"])
        m.output("sample", m.fake)
    prog.train("gan", data="ring.npz", optimizer=dl.adam(lr=2e-4, beta1=0.5), steps=[dl.d_loss, dl.g_loss],
               batch=128, epochs=20)
    return prog


def build_vae():
    prog = dl.Program()

    @prog.layer
    def encoder(L, x: "[B, n]", h: int, k: int):
        L.hid = dl.dense(x, h, act=dl.relu)
        return dl.dense(L.hid, k), dl.dense(L.hid, k)

    with prog.model("vae") as m:
        m.x = dl.input("f32[B, 64]")
        m["mu", "logvar"] = encoder(m.x, 128, 8)
        m.z = m.mu + dl.exp(0.5 * m.logvar) * dl.normal([m.B, 8])
        m.recon = m.z | dl.dense(128, act=dl.relu) | dl.dense(64)
        m.output("code", m.mu)
        m.loss(dl.mean(dl.sum(dl.bce_logits(m.recon, m.x, reduce="none"), axis=-1))
               + dl.mean(dl.sum(dl.kl_normal(m.mu, m.logvar, reduce="none"), axis=-1)))
    return prog


def build_score():
    prog = dl.Program()
    with prog.model("score") as m:
        m.x = dl.input("f32[B, 2]")
        m.energy = dl.sum(m.x | dl.dense(64, act=dl.softplus) | dl.dense(1))
        m.psi = -dl.grad(m.energy, m.x)
        m.div = dl.grad(dl.sum(m.psi[:, 0]), m.x)[:, 0] + dl.grad(dl.sum(m.psi[:, 1]), m.x)[:, 1]
        m.loss(dl.mean(m.div + 0.5 * dl.sum(m.psi ** 2, axis=-1)))
    return prog


EXAMPLES = {"digits": build_digits, "seq": build_seq, "gan": build_gan, "vae": build_vae, "score": build_score}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_builder_gives_the_parsed_ir(name):
    parsed = dslc.load(str(LANG / f"{name}.dl"))
    built = EXAMPLES[name]().build()
    assert params(built) == params(parsed)
    assert ir(built) == ir(parsed)
    for m in built.models.values():
        m.graph().lint()


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_to_dl_round_trips(name):
    b = EXAMPLES[name]()
    again = dslc.parse(b.to_dl(), f"{name}-built.dl")
    assert ir(again) == ir(b.build())


def test_builder_shape_error_names_this_file_and_line():
    prog = dl.Program()
    with pytest.raises(dslc.SpecError) as err:
        with prog.model("bad") as m:
            m.x = dl.input("f32[B, 64]")
            m.y = m.x @ dl.zeros([128, 10])              # the offending line
            m.loss(dl.mean(m.y))
    e = err.value
    assert e.filename == __file__
    import inspect
    src = inspect.getsource(test_builder_shape_error_names_this_file_and_line).splitlines()
    offset = next(i for i, l in enumerate(src) if "the offending line" in l)
    assert e.line == test_builder_shape_error_names_this_file_and_line.__code__.co_firstlineno + offset
    assert "64" in e.message and "128" in e.message
    assert "the offending line" in e.format()


def test_built_digits_trains():
    c = dslc.compile(build_digits().build())
    t = dslc.Trainer(c, progress=False, log=lambda *a: None)
    rng = np.random.default_rng(0)
    x = rng.random((256, 64)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    h = t.fit({"x": x, "y": y}, epochs=3)
    assert h[-1]["loss"] < h[0]["loss"]


def test_documentation_example_runs():
    """The worked example of docs/builder.md runs as written."""
    text = (Path(__file__).resolve().parent.parent / "docs/builder.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/builder.md", "exec"), {"__name__": "docs_example"})
