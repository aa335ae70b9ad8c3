"""Formatter: canonical, idempotent, meaning-preserving, comment-keeping."""
from pathlib import Path

import pytest

from dslc.syntax import ast as A
from dslc.syntax import format_program, format_source, parse, to_dl

LANG = sorted((Path(__file__).parent / "lang").glob("*.dl")) + sorted((Path(__file__).parent.parent / "specs").glob("*.dl"))

TRICKY = [
    "const A = (1 + 2) * 3 - -4 ** 2 ** -1\n",
    "const B = (a - b) - (c - d) / (e * f) @ g\n",
    "const C = ((-x) ** 2 + (a ** b) ** c)\n",
    "const D = x |> (y |> z) |> f(1, k = 2)\n",
    "const E = (a < b) < c\n",
    "const F = (f(x) as D)(y) + (g(1) as Q).W + (h(2) as R)[0]\n",
    "const G = x[:, ::2, 1:, :3, a:b:c, -1]\n",
    'const H = {D: 2.0, G: [1, 2, "s\\"q"], "k": true}\n',
    "const I = 0.01 * (1 + 1e-4 * t) ** -0.75\n",
    "const J = (x |> f) + 1\n",
    "const K = f()[0].a.b(c = (d |> e))\n",
    "layer l(x: [*, (n + 2*p - k) / s + 1], m: int, p: float, act = relu, q = 3) {\n"
    "    return x\n}\n",
    "model m {\n    a, b = f(x) ; c = 1\n    input x: i64[]\n    state s: [n] ~ constant(0.5)\n}\n",
    "model e {\n}\n",
    "const A = f(1,\n  2)  # c\n# doc B\nconst B = 1  # b\n",
    # comments everywhere
    "# top\n\n\n# doc of A\nconst A = 1  # trailing\n# doc of m\n# line 2\nmodel m {  # header\n"
    "    # about x\n    x = f(1,  # inside\n          2)\n\n\n    y = 2  # why\n    # last\n}  # end\n\n# tail\n",
    "train t {\n    data = \"d.npz\"   # file\n\n    optimizer = sgd(lr = 0.01 * (1 + 1e-4 * t) ** -0.75,\n"
    "                    momentum = 0.9)\n    lr_scale = {\n        D: 2.0,\n    }\n}\n",
]


def cases():
    return [pytest.param(p.read_text(), id=p.name) for p in LANG] + \
           [pytest.param(t, id=f"tricky{i}") for i, t in enumerate(TRICKY)]


@pytest.mark.parametrize("text", cases())
def test_idempotent(text):
    once = format_source(text)
    assert format_source(once) == once


@pytest.mark.parametrize("text", cases())
def test_same_meaning(text):
    assert parse(format_source(text)) == parse(text)


@pytest.mark.parametrize("text", cases())
def test_comments_kept(text):
    out = format_source(text)
    for c in parse(text).comments:
        body = c.text.lstrip("#").strip()
        assert body in out, body


def test_digits_canonical_layout():
    text = (Path(__file__).parent / "lang" / "digits.dl").read_text()
    out = format_source(text)
    assert "    h1 = dense(x, H, act = relu)\n" in out
    assert "    optimizer = adam(lr = 1e-3)\n" in out          # numbers as written
    assert '    data = "data/digits.npz"  # arrays named like the inputs: x, y\n' in out
    assert "}\n\nmodel digits {\n" in out                    # blank line between items
    assert "    input y: i64[B]\n\n    h1" in out             # blank lines inside blocks kept
    assert out.startswith("# digits.dl")


def test_minimal_parentheses():
    assert format_source("const A = ((a + (b * c)))\n") == "const A = a + b * c\n"
    assert format_source("const A = (a + b) * c\n") == "const A = (a + b) * c\n"
    assert format_source("const A = -(x ** 2)\n") == "const A = -x ** 2\n"
    assert format_source("const A = (-x) ** 2\n") == "const A = (-x) ** 2\n"
    assert format_source("const A = a - (b - c)\n") == "const A = a - (b - c)\n"
    assert format_source("const A = (x |> f) |> g\n") == "const A = x |> f |> g\n"
    assert format_source("const A = (mlp2(x) as D)\n") == "const A = mlp2(x) as D\n"


def test_doc_comments_stay_docs():
    text = "#doc\nconst A = 1\n"
    out = format_source(text)
    assert out == "# doc\nconst A = 1\n"
    assert parse(out).items[0].doc == "doc"


def test_built_program_prints_without_locations():
    prog = A.Program([
        A.Const("H", A.Num(128, True)),
        A.Model("m", [A.Input("x", A.TensorType("f32", [A.Name("B"), A.Num(4, True)])),
                      A.Assign(["y"], A.Call(A.Name("dense"), [A.Name("x"), A.Name("H")],
                                             [A.Keyword("act", A.Name("relu"))])),
                      A.Loss(None, A.BinOp("**", A.UnaryOp("-", A.Name("y")), A.Num(0.5, False)))]),
    ])
    text = to_dl(prog)
    assert text == format_program(prog)
    assert "    y = dense(x, H, act = relu)\n" in text
    assert "    loss = (-y) ** 0.5\n" in text
    assert parse(text) == prog
