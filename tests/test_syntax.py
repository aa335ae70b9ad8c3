"""Parser: every language example parses; precedence; syntax errors in words at the right place."""
from pathlib import Path

import pytest

from dslc.errors import SpecError, SpecErrors
from dslc.syntax import ast as A
from dslc.syntax import parse

LANG = sorted((Path(__file__).parent / "lang").glob("*.dl"))


@pytest.mark.parametrize("path", LANG, ids=lambda p: p.name)
def test_lang_files_parse(path):
    prog = parse(path.read_text(), str(path))
    assert prog.items
    for it in prog.items:
        assert it.loc.filename == str(path) and it.loc.line >= 1


def test_lang_corpus_is_complete():
    assert {p.stem for p in LANG} >= {"digits", "seq", "gan", "vae", "score", "section8"}


def expr_of(src: str):
    """The expression bound in `model m { e = <src> }`."""
    (model,) = parse(f"model m {{\n    e = {src}\n}}\n").items
    return model.body[0].expr


def n(x):
    return A.Name(x)


def num(v):
    return A.Num(v, isinstance(v, int))


@pytest.mark.parametrize("src, tree", [
    ("a + b * c", A.BinOp("+", n("a"), A.BinOp("*", n("b"), n("c")))),
    ("a - b - c", A.BinOp("-", A.BinOp("-", n("a"), n("b")), n("c"))),
    ("-x ** 2", A.UnaryOp("-", A.BinOp("**", n("x"), num(2)))),
    ("2 ** -1", A.BinOp("**", num(2), A.UnaryOp("-", num(1)))),
    ("a ** b ** c", A.BinOp("**", n("a"), A.BinOp("**", n("b"), n("c")))),
    ("x |> f(1) |> g", A.Pipe(A.Pipe(n("x"), A.Call(n("f"), [num(1)])), n("g"))),
    ("a < b + 1", A.Compare("<", n("a"), A.BinOp("+", n("b"), num(1)))),
    ("x @ W + b", A.BinOp("+", A.BinOp("@", n("x"), n("W")), n("b"))),
    ("a / b @ c", A.BinOp("@", A.BinOp("/", n("a"), n("b")), n("c"))),
    ("x |> f < 2", A.Pipe(n("x"), A.Compare("<", n("f"), num(2)))),
    ("-a.b[0]", A.UnaryOp("-", A.Index(A.Attr(n("a"), "b"), [num(0)]))),
    ("enc.h1.W", A.Attr(A.Attr(n("enc"), "h1"), "W")),
    ("mlp2(x, 32, 1) as D", A.Call(n("mlp2"), [n("x"), num(32), num(1)], [], "D")),
    ("f(x) as D ** 2", A.BinOp("**", A.Call(n("f"), [n("x")], [], "D"), num(2))),
    ("x[:, 0]", A.Index(n("x"), [A.Slice(), num(0)])),
    ("x[::2]", A.Index(n("x"), [A.Slice(None, None, num(2))])),
    ("g[:, m:2*m]", A.Index(n("g"), [A.Slice(), A.Slice(n("m"), A.BinOp("*", num(2), n("m")))])),
    ("xs[-1]", A.Index(n("xs"), [A.UnaryOp("-", num(1))])),
    ("adam(lr = 1e-3)", A.Call(n("adam"), [], [A.Keyword("lr", num(0.001))])),
    ("{D: 2.0}", A.DictLit([(n("D"), num(2.0))])),
    ("[d_loss, g_loss]", A.ListLit([n("d_loss"), n("g_loss")])),
    ('"a\\"b"', A.Str('a"b')),
    ("true", A.Bool(True)),
    ("(a + b) * c", A.BinOp("*", A.BinOp("+", n("a"), n("b")), n("c"))),
    ("0.01 * (1 + 1e-4 * t) ** -0.75",
     A.BinOp("*", num(0.01), A.BinOp("**", A.BinOp("+", num(1), A.BinOp("*", num(1e-4), n("t"))),
                                      A.UnaryOp("-", num(0.75))))),
])
def test_precedence(src, tree):
    assert expr_of(src) == tree


def test_statements_and_types():
    src = """
layer conv(x: f64[B, c, (n + 2*p - k) / s + 1], k: int, p: float, act = relu, q = 3) {
    param W: [k, 4] ~ normal(0.1)
    state s: [4] ~ zeros; h = x
    return h, s
}

model m {
    input x: f32[]
    input y: foo[B]
    output z = y
    output x
    loss g = a wrt G, D.h1
    loss = a
    metric acc = b
}
"""
    layer, model = parse(src).items
    x, k, p, act, q = layer.args
    assert x.kind == "tensor" and x.type.dtype == "f64"
    assert x.type.dims[2] == A.BinOp("+", A.BinOp("/", A.BinOp("-", A.BinOp(
        "+", n("n"), A.BinOp("*", num(2), n("p"))), n("k")), n("s")), num(1))
    assert (k.kind, p.kind, act.kind, q.kind) == ("int", "float", "fn", "any")
    assert act.default == n("relu") and q.default == num(3)
    kinds = [type(s).__name__ for s in layer.body]
    assert kinds == ["ParamDecl", "StateDecl", "Assign", "Return"]
    assert layer.body[0].init == A.Call(n("normal"), [num(0.1)])
    assert layer.body[3].exprs == [n("h"), n("s")]
    inp, inp2, out, out2, loss, loss2, metric = model.body
    assert inp.type.dims == [] and inp.type.dtype == "f32"
    # a bad dtype is not a syntax error: the AST keeps its text and place
    assert inp2.type.dtype == "foo" and (inp2.type.dtype_loc.line, inp2.type.dtype_loc.col) == (10, 14)
    assert out == A.Output("z", n("y")) and out2 == A.Output("x", None)
    assert loss == A.Loss("g", n("a"), ["G", "D.h1"]) and loss2 == A.Loss(None, n("a"), [])
    assert metric == A.Metric("acc", n("b"))


def test_locations_point_at_first_character():
    (model,) = parse("model m {\n    h = (a + b) * f(c)[0]\n    q, r = g(x)\n}\n", "f.dl").items
    h = model.body[0]
    assert (h.loc.line, h.loc.col) == (2, 5)
    assert (h.expr.loc.line, h.expr.loc.col) == (2, 9)
    assert (h.expr.op_loc.line, h.expr.op_loc.col) == (2, 17)
    assert (h.expr.rhs.loc.line, h.expr.rhs.loc.col) == (2, 19)
    assert [(l.line, l.col) for l in model.body[1].target_locs] == [(3, 5), (3, 8)]
    assert h.loc.source.line(2).startswith("    h =")


def test_doc_strings():
    src = "# header\n\n# first line\n#  second\nconst A = 1\nconst B = 2  # not a doc\n"
    a, b = parse(src).items
    assert a.doc == "first line\n second" and b.doc is None


def test_multiline_brackets_and_semicolons():
    src = "train t {\n    lr_scale = {\n        D: 2.0,\n        G: 1.0,\n    }\n    steps = [a,\n             b]; batch = 3\n}\n"
    (t,) = parse(src).items
    assert [s.name for s in t.settings] == ["lr_scale", "steps", "batch"]


def test_keywords_that_are_not_reserved_in_expressions():
    (m,) = parse("model m {\n    a = scan(step, xs) |> repeat(3, dense(4))\n}\n").items
    assert m.body[0].expr.rhs.func == n("repeat")


# (snippet, line, col, message substring)
ERRORS = [
    ("model m {\n    h = dense(x, H\n    y = 2\n}\n", 2, 14, "`(` is never closed"),
    ("model m {\n    h = dense(x, H))\n}\n", 2, 20, "found `)`"),
    ("model m {\n    h = f(x) $ 2\n}\n", 2, 14, "unexpected character `$`"),
    ("model m {\n    h = ?\n}\n", 2, 9, "unexpected character `?`"),
    ("const A = 1\nmodel digits {\n    h = 1\n", 2, 14,
     "expected `}` to close the block of model `digits` opened at line 2"),
    ('train t {\n    data = "abc\n}\n', 2, 12, "unterminated string"),
    ("train t {\n    batch 64\n}\n", 2, 11, "expected `=`, found `64`"),
    ("model m {\n    input x\n}\n", 2, 12, "expected `:`, found end of line"),
    ("layer f(x) {\n    return\n}\n", 2, 11, "expected an expression, found end of line"),
    ("model m {\n    input x: f32[B,\n}\n", 2, 17, "`[` is never closed"),
    ("model m {\n    h = )\n}\n", 2, 9, "expected an expression, found `)`"),
    ("model m {\n    h = 1 +\n}\n", 2, 12, "expected an expression, found end of line"),
    ("x = 1\n", 1, 1, "expected an item (`const`, `layer`, `model` or `train`)"),
    ("const A = 1 +", 1, 14, "found end of file"),
    ("layer f(x: [*, n], m: integer) {\n    return x\n}\n", 1, 23, "did you mean `int`?"),
    ("model m {\n    x = y as Q\n}\n", 2, 14, "must follow a call"),
    ("model m {\n    x = f(a = 1, b)\n}\n", 2, 18, "positional argument cannot follow"),
    ("model m {\n    x = f(a = 1, a = 2)\n}\n", 2, 18, "given twice"),
    ("model m {\n    x = y[1:2:3:4]\n}\n", 2, 16, "found `:`"),
    ("model m {\n    param W: [n] zeros\n}\n", 2, 18, "expected `~`"),
    ("model m {\n    loss g = a wrt\n}\n", 2, 19, "expected a name, found end of line"),
    ("model m {\n    h1 h2 = 3\n}\n", 2, 8, "expected `,` or `=`, found `h2`"),
    ("model m {\n    x = 1\n}\n}\n", 4, 1, "found `}`"),
    ("layer f(x {\n    return x\n}\n", 1, 11, "expected `:`, `,`, `=` or `)`, found `{`"),
    ("model m {\n    h = a < b < c\n}\n", 2, 15, "found `<`"),
]


@pytest.mark.parametrize("src, line, col, msg", ERRORS, ids=[e[3][:30] for e in ERRORS])
def test_syntax_errors(src, line, col, msg):
    with pytest.raises(SpecError) as info:
        parse(src, "bad.dl")
    e = info.value
    assert (e.filename, e.line, e.column) == ("bad.dl", line, col), e.format()
    assert msg in e.message, e.format()
    assert e.format().startswith(f"bad.dl:{line}:{col}: error: ")


def test_two_errors_in_one_file_are_both_reported():
    src = "model m {\n    h = )\n    ok = 1\n    q = f(x,, 2)\n}\n\ntrain m {\n    batch 64\n}\n"
    with pytest.raises(SpecErrors) as info:
        parse(src, "two.dl")
    got = [(e.line, e.column) for e in info.value.errors]
    assert got == [(2, 9), (4, 13), (8, 11)]
    assert info.value.format().count("error:") == 3


def test_broken_statement_does_not_hide_later_items():
    src = "model a {\n    input x: f32[B\n}\nmodel b {\n    y = = 1\n}\n"
    with pytest.raises(SpecErrors) as info:
        parse(src)
    assert [e.line for e in info.value.errors] == [2, 5]


def test_no_python_exception_escapes_for_odd_text():
    for src in ["", "\n\n", "# only a comment", "(" * 5000, "model m {" + "(" * 3000 + "}",
                "\x00", "é", "model m {\n\tx = 1\r\n}\r\n", "const A = " + "-" * 5000 + "1"]:
        try:
            parse(src)
        except SpecError:
            pass
