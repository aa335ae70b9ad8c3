"""Constant folding (dslc/passes/fold.py): golden printouts, what is left alone,
and the same numbers on the corpus (optimized with and without folding)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import dslc
from dslc import passes
from dslc.evaluate import evaluate
from dslc.ir.graph import Graph
from dslc.ir.node import apply as P, const
from dslc.ir.types import TensorType
from dslc.ops.leaves import input_
from dslc.passes.fold import MAX_SIZE, fold

ROOT = Path(__file__).resolve().parent.parent


def _x():
    return input_("x", TensorType("f32", (2, 3)))


def test_folds_constant_subtrees_golden():
    x = _x()
    y = x * (const(2.0) * const(3.0)) + P("neg", P("reshape", const([1.0, 2.0, 3.0]), shape=(1, 3)))
    r, changed = fold({"y": y})
    assert changed
    assert Graph(r).print(locs=False) == textwrap.dedent("""\
        %x:f32[2,3] = input
        %0:f32[] = const {value=6.0}
        %1:f32[2,3] = mul %x %0
        %2:f32[1,3] = const {value=<float32[1, 3]>}
        %3:f32[2,3] = add %1 %2
        return y = %3""")
    Graph(r).lint()
    np.testing.assert_array_equal(r["y"].inputs[1].attrs["value"], [[-1.0, -2.0, -3.0]])
    assert fold(r) == (r, False)                      # a fixed point


def test_leaves_fills_random_and_growth_alone():
    x = _x()
    big = P("expand", const(1.0), shape=(MAX_SIZE + 1,))       # would store 4097 floats
    fill = P("fill", value=0.0, shape=(2, 3), dtype="f32")
    noise = P("random_normal", shape=(2, 3), dtype="f32", uid=1) if "random_normal" in _ops() else None
    roots = {"a": x + fill, "b": big}
    if noise is not None:
        roots["c"] = noise
    r, changed = fold(roots)
    assert not changed
    assert all(r[k] is v for k, v in roots.items())


def _ops():
    from dslc.ops.registry import REGISTRY
    return REGISTRY


def test_integer_and_bool_constants_fold():
    c = P("cast", P("gt", const([1.0, -1.0]), const(0.0)), dtype="i64") + const(3, "i64")
    r, _ = fold({"c": c})
    assert r["c"].op == "const"
    np.testing.assert_array_equal(r["c"].attrs["value"], [4, 3])
    assert r["c"].attrs["value"].dtype == np.int64


SPECS = sorted((ROOT / "specs").glob("*.dl")) + sorted((ROOT / "bench" / "specs").glob("*.dl"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_folding_keeps_the_numbers(path):
    prog = dslc.load(str(path))
    rng = np.random.default_rng(0)
    for name in prog.models:
        c = dslc.compile(prog, name, optimize=False)
        for role, roots in c.graphs.items():
            plain = passes.optimize(roots, passes=(passes.simplify, passes.cse))
            folded = passes.optimize(roots)
            Graph(folded).lint()
            order = Graph(plain).order()
            if any(n.op.startswith("random_") for n in order):
                continue
            feeds = {}
            for n in order:
                if n.op in ("input", "param", "state"):
                    shape = [d if isinstance(d, int) else 3 for d in n.shape]
                    if n.dtype == "i64":
                        feeds[n.attrs["name"]] = rng.integers(0, 2, size=shape).astype(np.int64)
                    elif n.dtype == "bool":
                        feeds[n.attrs["name"]] = rng.random(shape) > 0.5
                    else:
                        feeds[n.attrs["name"]] = rng.random(shape).astype(np.float32)
            try:
                want = evaluate(plain, feeds)
            except Exception:  # noqa: BLE001 - a graph the NumPy engine cannot feed this way
                continue
            got = evaluate(folded, feeds)
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=f"{name}/{role}/{k}")


def test_transpose_of_unit_axes_becomes_reshape():
    from dslc.ir import Sym
    from dslc.passes.simplify import simplify
    x = input_("x", TensorType("f32", (Sym.var("B"), 1, 4, 4)))
    t = P("transpose", x, perm=(1, 0, 2, 3))           # [1, B, 4, 4]: the same data order
    u = P("transpose", x, perm=(0, 2, 1, 3))           # [B, 4, 1, 4]: also a reshape
    v = P("transpose", x, perm=(0, 1, 3, 2))           # a real transpose stays
    r, changed = simplify({"t": t, "u": u, "v": v})
    assert changed and r["t"].op == "reshape" and r["u"].op == "reshape" and r["v"].op == "transpose"
    assert r["t"].type == t.type and r["u"].type == u.type
    rng = np.random.default_rng(0)
    feeds = {"x": rng.random((3, 1, 4, 4)).astype(np.float32)}
    want, got = evaluate({"t": t, "u": u}, feeds), evaluate({"t": r["t"], "u": r["u"]}, feeds)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_broadcast_single_values_stay_single_golden():
    """The cross-entropy backward's chain expand -> div -> neg -> unsqueeze -> expand -> mul
    becomes scalar arithmetic and one broadcasting multiply."""
    from dslc.ir import Sym
    from dslc.passes.simplify import simplify
    B = Sym.var("B")
    oh = input_("oh", TensorType("f32", (B, 10)))
    n = input_("n", TensorType("f32", ()))
    g = P("expand", const(1.0), shape=(B,)) / n
    h = P("expand", P("unsqueeze", -g, axes=(1,)), shape=(B, 10)) * oh
    r = passes.optimize({"h": h}, passes=(simplify,))
    text = Graph(r).print(locs=False)
    assert "unsqueeze" not in text and text.count("expand") == 0, text
    feeds = {"oh": np.random.default_rng(0).random((3, 10)).astype(np.float32), "n": np.float32(3.0)}
    np.testing.assert_array_equal(evaluate(r, feeds)["h"], evaluate({"h": h}, feeds)["h"])


def test_bias_moves_inside_a_reshape_that_keeps_its_axis():
    """reshape(a @ W) + b -> reshape(a @ W + b) (the hoisted LSTM projection: ORT fuses the
    bias into the GEMM); a bias of higher rank stays outside."""
    from dslc.ir import Sym
    from dslc.passes.simplify import simplify
    B = Sym.var("B")
    shapes = {"a": (B, 4), "w": (4, 6), "b": (6,), "c": (1, 1, 1)}
    a, w, b, c = (input_(k, TensorType("f32", s)) for k, s in shapes.items())
    y = P("reshape", a @ w, shape=(B, 1, 6))
    r, changed = simplify({"y": y + b, "z": y + c})
    assert changed and r["y"].op == "reshape" and r["y"].inputs[0].op == "add" and r["z"].op == "add"
    rng = np.random.default_rng(0)
    feeds = {k: rng.random([2 if d == B else d for d in s]).astype(np.float32) for k, s in shapes.items()}
    want, got = evaluate({"y": y + b, "z": y + c}, feeds), evaluate(r, feeds)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_negation_moves_into_a_constant_factor():
    """-(c / n) -> (-c) / n and -(c x) -> (-c) x (the mean's backward 1/N under the loss's
    minus: one Neg fewer); a negation of a non-constant quotient stays."""
    n, x = input_("n", TensorType("f32", ())), _x()
    ys = {"q": P("neg", const(1.0) / n), "p": P("neg", const(2.5) * x), "k": P("neg", x / n)}
    r, changed = fold(ys)
    assert changed and r["q"].op == "div" and r["p"].op == "mul" and r["k"].op == "neg"
    assert float(r["q"].inputs[0].attrs["value"]) == -1.0 and float(r["p"].inputs[0].attrs["value"]) == -2.5
    feeds = {"n": np.float32(3.0), "x": np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)}
    want, got = evaluate(ys, feeds), evaluate(r, feeds)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_reshape_chains_collapse():
    """squeeze(unsqueeze(x)) -> x (hs[-1] read off the final carry), and any pair that gives
    x's shape back; reshape(reshape(x)) -> reshape(x); an unsqueeze of a reshape to a new
    shape stays."""
    from dslc.ir import Sym
    from dslc.passes.simplify import simplify
    B = Sym.var("B")
    x = input_("x", TensorType("f32", (B, 6)))
    ys = {"same": P("squeeze", P("unsqueeze", x, axes=(0,)), axes=(0,)),
          "twice": P("reshape", P("reshape", x, shape=(B, 2, 3)), shape=(B, 3, 2)),
          "other": P("squeeze", P("reshape", x, shape=(B, 1, 6)), axes=(1,)),
          "kept": P("squeeze", P("reshape", x, shape=(B, 6, 1)), axes=(2,)),
          "new": P("unsqueeze", P("reshape", x, shape=(B, 2, 3)), axes=(1,))}
    r, changed = simplify(ys)
    assert changed and r["same"] is x and r["other"] is x and r["kept"] is x
    assert r["twice"].op == "reshape" and r["twice"].inputs[0] is x
    assert r["new"].op == "unsqueeze" and r["new"].inputs[0].op == "reshape"
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)}
    want, got = evaluate(ys, feeds), evaluate(r, feeds)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_a_broadcast_single_value_becomes_a_scalar():
    """expand(x) of a one-entry x of rank > 0 broadcasts a rank-0 x: the values it feeds
    (a mean's backward 1/N) stay scalars rather than [1] tensors."""
    from dslc.ir import Sym
    n, x = input_("n", TensorType("f32", ())), input_("x", TensorType("f32", (Sym.var("B"),)))
    y = x * (P("expand", const([1.0]), shape=x.shape) / n)        # spread(1) / N, as mean's vjp
    r = passes.optimize({"y": y})
    text = Graph(r).print(locs=False)
    assert "f32[1]" not in text, text
    feeds = {"n": np.float32(4.0), "x": np.arange(3, dtype=np.float32)}
    np.testing.assert_array_equal(evaluate(r, feeds)["y"], evaluate({"y": y}, feeds)["y"])
