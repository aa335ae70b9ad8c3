"""Recurrence: `scan` with backprop through time (RNN, LSTM, GRU steps built in IR).

Checks: gradients vs float64 finite differences and vs the unrolled graph;
second derivatives; one ONNX graph for every sequence length (T = 1, 5, 300)
agreeing with the NumPy engine; graph size independent of T; training."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import dslc
from dslc.autodiff import grad
from dslc.errors import SpecError
from dslc.evaluate import evaluate
from dslc.ir import Sym, TensorType, apply as P, const
from dslc.ir.graph import Graph
from dslc.lower import lower_function
from dslc.ops.leaves import input_, param
from dslc.ops.random import random
from dslc.ops.scan import scan
from dslc.ops.shape import slice_axis
from dslc.passes import optimize
from dslc.passes.unroll import unroll
from helpers import run_steps, step_feeds

B, T = Sym.var("B"), Sym.var("T")
F32 = "f32"


def ty(*shape, dtype=F32):
    return TensorType(dtype, tuple(shape))


def dense(x, n_in, n_out, name):
    """A layer called inside the step: makes its own params (shared across time)."""
    W = param(f"{name}.W", ty(n_in, n_out), ("glorot_uniform",))
    b = param(f"{name}.b", ty(n_out), ("zeros",))
    return x @ W + b


def last(hs):
    """hs[-1] for a possibly symbolic length."""
    t = hs.shape[0]
    return P("squeeze", slice_axis(hs, 0, t - 1, t), axes=(0,))


def zeros(*shape):
    return P("fill", value=0.0, shape=tuple(shape), dtype=F32)


# -- the three cells -------------------------------------------------------------
def rnn(xs, h0, n, m, name="rnn"):
    """h' = tanh(x_t Wx + h Wh + b), params made outside the step (captured)."""
    Wx, Wh, b = param(f"{name}.Wx", ty(n, m)), param(f"{name}.Wh", ty(m, m)), param(f"{name}.b", ty(m))
    (hs,) = scan(lambda c, x: [P("tanh", x @ Wx + c[0] @ Wh + b)], xs, [h0])
    return hs


def lstm(xs, h0, c0, n, m, name="lstm"):
    """LANGUAGE.md §8: gates = dense(concat([x, h])), sliced into i, f, o, g."""
    def step(carries, x):
        h, c = carries
        gates = dense(P("concat", x, h, axis=1), n + m, 4 * m, name)
        i = P("sigmoid", slice_axis(gates, 1, 0, m))
        f = P("sigmoid", slice_axis(gates, 1, m, 2 * m))
        o = P("sigmoid", slice_axis(gates, 1, 2 * m, 3 * m))
        g = P("tanh", slice_axis(gates, 1, 3 * m, 4 * m))
        c2 = f * c + i * g
        return [o * P("tanh", c2), c2]
    return scan(step, xs, [h0, c0])


def gru(xs, h0, n, m, name="gru"):
    """z, r = σ(W [h, x]);  h~ = tanh(W [r h, x]);  h' = (1 - z) h + z h~."""
    def step(carries, x):
        (h,) = carries
        z = P("sigmoid", dense(P("concat", h, x, axis=1), m + n, m, f"{name}.z"))
        r = P("sigmoid", dense(P("concat", h, x, axis=1), m + n, m, f"{name}.r"))
        ht = P("tanh", dense(P("concat", r * h, x, axis=1), m + n, m, f"{name}.h"))
        return [(1.0 - z) * h + z * ht]
    return scan(step, xs, [h0])


def params_of(roots):
    return {n.attrs["name"]: n for n in Graph(roots).order() if n.op in ("param", "input")}


def random_feeds(leaves, dims, rng, scale=0.5):
    out = {}
    for name, n in leaves.items():
        shape = tuple(d if isinstance(d, int) else dims[str(d)] for d in n.shape)
        out[name] = (scale * rng.standard_normal(shape)).astype(np.float32)
    return out


def fd_grad(f_roots, feeds, name, idx, eps=1e-6):
    def at(v):
        fd = dict(feeds)
        a = np.array(fd[name], dtype=np.float64)
        a[idx] = v
        fd[name] = a
        return float(evaluate(f_roots, fd, dtype_override="f64")["f"])
    x = float(np.asarray(feeds[name], dtype=np.float64)[idx])
    return (at(x + eps) - at(x - eps)) / (2 * eps)


def check_grads(loss, wrt, feeds, samples=6, seed=0):
    """Scan gradients vs central differences in float64, and vs the unrolled graph."""
    rng = np.random.default_rng(seed)
    gs = grad(loss, wrt)
    roots = {"f": loss, **{w.attrs["name"]: g for w, g in zip(wrt, gs)}}
    Graph(roots).lint()
    got = evaluate(roots, feeds, dtype_override="f64")
    for w in wrt:
        nm = w.attrs["name"]
        shape = np.shape(feeds[nm])
        for _ in range(samples):
            idx = tuple(int(rng.integers(s)) for s in shape)
            fd = fd_grad({"f": loss}, feeds, nm, idx)
            assert got[nm][idx] == pytest.approx(fd, rel=1e-5, abs=1e-7), (nm, idx)
    # the unrolled graph differentiates to the same numbers
    (uloss,) = unroll({"f": loss})[0].values()
    assert all(n.op != "scan" for n in Graph({"f": uloss}).order())
    ugs = grad(uloss, wrt)
    uroots = {w.attrs["name"]: g for w, g in zip(wrt, ugs)}
    uval = evaluate(uroots, feeds, dtype_override="f64")
    for nm, v in uval.items():
        np.testing.assert_allclose(got[nm], v, rtol=1e-10, atol=1e-12)
    return got


# -- gradients ---------------------------------------------------------------------------
def test_rnn_grads_match_fd_and_unrolled():
    n, m, t = 3, 4, 5
    xs, h0 = input_("xs", ty(t, B, n)), input_("h0", ty(B, m))
    hs = rnn(xs, h0, n, m)
    R = const(np.random.default_rng(1).standard_normal((t, 1, m)))
    loss = P("sum", hs * R, axes=(0, 1, 2), keepdims=False) \
        + P("sum", last(hs) * last(hs), axes=(0, 1), keepdims=False)       # every step, and hs[-1]
    leaves = params_of({"f": loss})
    feeds = random_feeds(leaves, {"B": 2}, np.random.default_rng(0))
    check_grads(loss, [leaves[k] for k in ("rnn.Wx", "rnn.Wh", "rnn.b", "xs", "h0")], feeds)


def test_lstm_grads_two_carries_symbolic_length():
    n, m = 3, 4
    xs, h0, c0 = input_("xs", ty(T, B, n)), input_("h0", ty(B, m)), input_("c0", ty(B, m))
    hs, cs = lstm(xs, h0, c0, n, m)
    assert hs.shape == (T, B, m) and cs.shape == (T, B, m)
    loss = P("sum", last(hs) * last(cs), axes=(0, 1), keepdims=False) \
        + P("sum", slice_axis(hs, 0, 1, 3) ** const(2.0), axes=(0, 1, 2), keepdims=False)   # hs[1:3]
    leaves = params_of({"f": loss})
    feeds = random_feeds(leaves, {"B": 2, "T": 4}, np.random.default_rng(2))
    wrt = [leaves[k] for k in ("lstm.W", "lstm.b", "xs", "h0", "c0")]
    gs = grad(loss, wrt)
    roots = {"f": loss, **{w.attrs["name"]: g for w, g in zip(wrt, gs)}}
    got = evaluate(roots, feeds, dtype_override="f64")
    rng = np.random.default_rng(3)
    for w in wrt:
        nm = w.attrs["name"]
        for _ in range(6):
            idx = tuple(int(rng.integers(s)) for s in np.shape(feeds[nm]))
            assert got[nm][idx] == pytest.approx(fd_grad({"f": loss}, feeds, nm, idx), rel=1e-5, abs=1e-7)


def test_lstm_grads_match_unrolled():
    n, m, t = 3, 4, 4
    xs = input_("xs", ty(t, B, n))
    hs, cs = lstm(xs, zeros(B, m), zeros(B, m), n, m)
    loss = P("sum", P("tanh", hs) * cs, axes=(0, 1, 2), keepdims=False)
    leaves = params_of({"f": loss})
    feeds = random_feeds(leaves, {"B": 2}, np.random.default_rng(4))
    check_grads(loss, [leaves[k] for k in ("lstm.W", "lstm.b", "xs")], feeds, samples=4)


def test_gru_grads_match_fd_and_unrolled():
    n, m, t = 2, 3, 4
    xs, h0 = input_("xs", ty(t, B, n)), input_("h0", ty(B, m))
    (hs,) = gru(xs, h0, n, m)
    loss = P("sum", last(hs) * const(np.arange(m, dtype=np.float32)), axes=(0, 1), keepdims=False)
    leaves = params_of({"f": loss})
    feeds = random_feeds(leaves, {"B": 2}, np.random.default_rng(5))
    check_grads(loss, [leaves[k] for k in ("gru.z.W", "gru.r.W", "gru.h.W", "gru.h.b", "xs", "h0")],
                feeds, samples=4)


def test_second_derivative_through_scan():
    """d/dWx <V, dL/dWh>: the backward scan is differentiated again (a reverse-of-reverse scan)."""
    n, m, t = 2, 3, 3
    xs, h0 = input_("xs", ty(t, B, n)), input_("h0", ty(B, m))
    hs = rnn(xs, h0, n, m)
    L = P("sum", hs * hs, axes=(0, 1, 2), keepdims=False)
    leaves = params_of({"f": L})
    (gWh,) = grad(L, [leaves["rnn.Wh"]])
    V = const(np.random.default_rng(6).standard_normal((m, m)))
    h = P("sum", gWh * V, axes=(0, 1), keepdims=False)
    feeds = random_feeds(leaves, {"B": 2}, np.random.default_rng(7))
    check_grads(h, [leaves["rnn.Wx"], leaves["rnn.Wh"], leaves["xs"], leaves["h0"]], feeds, samples=4)


def test_stacked_layers_scan_inside_a_layer():
    """A layer that runs a scan, applied twice: the second scans the first's hs."""
    n, m, t = 2, 3, 3
    xs = input_("xs", ty(t, B, n))
    h1 = rnn(xs, zeros(B, m), n, m, name="l1")
    h2 = rnn(h1, zeros(B, m), m, m, name="l2")
    loss = P("sum", last(h2), axes=(0, 1), keepdims=False)
    leaves = params_of({"f": loss})
    feeds = random_feeds(leaves, {"B": 2}, np.random.default_rng(8))
    check_grads(loss, [leaves[k] for k in ("l1.Wx", "l1.Wh", "l2.Wx", "xs")], feeds, samples=3)


# -- the IR: printing, passes, options, errors --------------------------------------------
def test_body_prints_lints_and_survives_passes():
    n, m = 3, 4
    xs, h0 = input_("xs", ty(T, B, n)), input_("h0", ty(B, m))
    hs = rnn(xs, h0, n, m)
    loss = P("sum", last(hs), axes=(0, 1), keepdims=False)
    leaves = params_of({"f": loss})
    roots = {"f": loss, **{k: g for k, g in zip(("gWx", "gWh"), grad(loss, [leaves["rnn.Wx"], leaves["rnn.Wh"]]))}}
    text = Graph(roots).print()
    assert "= scan %h0 %xs %rnn.Wx %rnn.Wh %rnn.b" in text
    assert "\n    body scan" in text and "\n    %0:f32[B,4] = matmul" in text and "reverse=True" in text
    Graph(roots).lint()
    opt = optimize(roots)
    Graph(opt).lint()
    feeds = random_feeds(leaves, {"B": 2, "T": 5}, np.random.default_rng(9))
    a, b = evaluate(roots, feeds), evaluate(opt, feeds)
    for k in roots:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5)


def test_specialize_sees_into_bodies():
    """A train/infer switch inside the step is specialised like any other node."""
    from dslc.passes import specialize
    xs, h0 = input_("xs", ty(3, B, 2)), input_("h0", ty(B, 2))
    (hs,) = scan(lambda c, x: [P("training", c[0] + x, c[0] - x)], xs, [h0])
    feeds = random_feeds(params_of({"h": hs}), {"B": 1}, np.random.default_rng(13))
    tr, _ = specialize({"h": hs}, "train")
    inf, _ = specialize({"h": hs}, "infer")
    Graph(tr).lint()
    assert "training" not in Graph(tr).print() and "training" not in Graph(inf).print()
    h0v, xv = feeds["h0"], feeds["xs"]
    np.testing.assert_allclose(evaluate(tr, feeds)["h"][-1], h0v + xv.sum(0), rtol=1e-6)
    np.testing.assert_allclose(evaluate(inf, feeds)["h"][-1], h0v - xv.sum(0), rtol=1e-6)


def test_unroll_pass_and_errors():
    n, m, t = 2, 3, 4
    xs, h0 = input_("xs", ty(t, B, n)), input_("h0", ty(B, m))
    W = param("W", ty(n, m))
    step = lambda c, x: [P("tanh", x @ W + c[0])]  # noqa: E731
    (hs,) = scan(step, xs, [h0])
    (hu,) = unroll({"h": hs})[0].values()
    assert all(nd.op != "scan" for nd in Graph({"h": hu}).order())
    assert unroll({"h": hs}, max_length=3) == ({"h": hs}, False)        # longer than the limit: kept
    feeds = random_feeds(params_of({"h": hs}), {"B": 2}, np.random.default_rng(10))
    np.testing.assert_allclose(evaluate({"h": hs}, feeds)["h"], evaluate({"h": hu}, feeds)["h"], rtol=1e-6)
    with pytest.raises(SpecError, match=r"returns f32\[B, 2\] for carry 1, whose initial value is f32\[B, 3\]"):
        scan(lambda c, x: [x], xs, [h0])
    with pytest.raises(SpecError, match="random draws"):
        scan(lambda c, x: [c[0] * random("normal", (B, m))], xs, [h0])
    (hsym,) = scan(step, input_("s", ty(T, B, n)), [h0])
    assert unroll({"h": hsym}) == ({"h": hsym}, False)                  # symbolic length: kept


# -- ONNX: one graph for every length ------------------------------------------------------
def lstm_model(t):
    n, m = 3, 5
    xs = input_("xs", ty(t, B, n))
    hs, cs = lstm(xs, zeros(B, m), zeros(B, m), n, m)
    loss = P("sum", last(hs) * last(hs), axes=(0, 1), keepdims=False) \
        + P("mean", cs, axes=(0, 1, 2), keepdims=False)
    leaves = params_of({"f": loss})
    wrt = [leaves["lstm.W"], leaves["lstm.b"], xs]
    roots = {"hs": hs, "loss": loss, **{f"d_{w.attrs['name']}": g for w, g in zip(wrt, grad(loss, wrt))}}
    return roots, [xs, leaves["lstm.W"], leaves["lstm.b"]]


def test_onnx_one_graph_for_any_length():
    roots, inputs = lstm_model(T)
    roots = optimize(roots)
    model = lower_function(roots, inputs)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(11)
    names = [o.name for o in model.graph.output]
    for t in (1, 5, 300):
        feeds = {"xs": rng.standard_normal((t, 2, 3)).astype(np.float32),
                 "lstm.W": (0.4 * rng.standard_normal((8, 20))).astype(np.float32),
                 "lstm.b": (0.1 * rng.standard_normal(20)).astype(np.float32)}
        got = dict(zip(names, sess.run(None, feeds)))
        ref = evaluate(roots, feeds)
        assert got["hs"].shape == (t, 2, 5)
        for k in names:
            np.testing.assert_allclose(got[k], ref[k], rtol=2e-4, atol=2e-5, err_msg=f"{k} at T={t}")


def test_graph_size_does_not_grow_with_length():
    def size(t, unrolled=False):
        roots, inputs = lstm_model(t)
        if unrolled:
            roots, _ = unroll(roots)
        t0 = time.perf_counter()
        m = lower_function(optimize(roots), inputs)
        return count(m.graph), time.perf_counter() - t0

    def count(g):         # nodes, including those of Scan bodies
        return sum(1 + sum(count(a.g) for a in nd.attribute if a.type == onnx.AttributeProto.GRAPH)
                   for nd in g.node)

    (sym, t_sym), (s5, t5), (s300, t300) = size(T), size(7), size(300)
    assert s5 == s300                  # known lengths: the same graph but for constants
    assert sym - s5 <= 4               # symbolic T: the same, plus reading T = Shape(xs)[0] for T - 1
    assert t300 < 5 * t5 + 0.5         # compile time does not grow with T
    u5, u10 = size(5, True)[0], size(10, True)[0]
    assert u10 > u5 > sym


# -- training -------------------------------------------------------------------------------
def test_training_sequence_classifier():
    import dslc_runtime
    from dslc.compile import compile
    from dslc.ir.model import Loss, Model, Optimizer, TrainSetup
    n, m, k = 4, 8, 2
    xs, y = input_("xs", ty(T, B, n)), input_("y", ty(B, dtype="i64"))
    hs, _ = lstm(xs, zeros(B, m), zeros(B, m), n, m, name="cell")
    lg = dense(last(hs), m, k, "head")
    mx = P("stop_gradient", P("max", lg, axes=(1,), keepdims=True))
    lse = P("log", P("sum", P("exp", lg - mx), axes=(1,), keepdims=True)) + mx
    oh = P("one_hot", y, depth=k, dtype=F32)
    ce = P("mean", P("squeeze", lse, axes=(1,)) - P("sum", lg * oh, axes=(1,), keepdims=False),
           axes=(0,), keepdims=False)
    ps = {nm: nd for nm, nd in params_of({"l": ce}).items() if nm not in ("xs", "y")}
    model = Model("seq", inputs={"xs": xs, "y": y}, params=ps, outputs={"logits": lg},
                  losses={"loss": Loss("loss", ce)})
    c = compile(model, setup=TrainSetup("seq", Optimizer("adam", {"lr": 2e-2}), batch=32, epochs=1, seed=0))
    for mp in (c.training, c.inference, c.evaluation):
        onnx.checker.check_model(mp, full_check=True)
    tr = dslc_runtime.Trainer(c, progress=False, log=lambda *a: None)
    rng = np.random.default_rng(12)
    losses = []
    for _ in range(40):
        t = int(rng.integers(4, 9))                       # the length varies batch to batch: one graph
        x = rng.standard_normal((t, 32, n)).astype(np.float32)
        lab = (x[:, :, 0].sum(0) > 0).astype(np.int64)
        losses.append(tr.train_step({"xs": x, "y": lab})["loss"])
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8]), losses


# -- the scan passes: residuals, dead values, weight gradients after the loop -----------
def loops(roots):
    """{(body label, reverse): body} of the distinct top-level loops (one ONNX Scan each)."""
    out = {}
    for nd in Graph(roots).order():
        if nd.op == "scan":
            out.setdefault((id(nd.attrs["body"]), nd.attrs["reverse"], tuple(i.id for i in nd.inputs)),
                           nd.attrs["body"])
    return list(out.values())


def lstm_training_roots(t=T):
    """The W3 shape in small: data xs, loss on hs[-1], gradients for the params only."""
    n, m = 3, 4
    xs = input_("xs", ty(t, B, n))
    hs, _ = lstm(xs, zeros(B, m), zeros(B, m), n, m)
    loss = P("sum", P("tanh", last(hs)), axes=(0, 1), keepdims=False)
    leaves = params_of({"f": loss})
    wrt = [leaves["lstm.W"], leaves["lstm.b"]]
    return {"f": loss, **{f"d_{w.attrs['name']}": g for w, g in zip(wrt, grad(loss, wrt))}}, leaves


def test_optimized_bptt_one_forward_loop_no_recompute_no_data_gradient():
    roots, leaves = lstm_training_roots()
    opt = optimize(roots)
    Graph(opt).lint()
    fwd = [b for b in loops(opt) if not any(p.attrs["name"].endswith("dy0") for p in b.xs)]
    bwd = [b for b in loops(opt) if b not in fwd]
    assert len(fwd) == 1 and len(bwd) == 1, [b.label for b in loops(opt)]
    ops = [nd.op for nd in bwd[0].order()]
    # the pullback reads the stacked gate activations: only dh = dgates Wᵀ multiplies in the loop
    assert ops.count("matmul") == 1 and "sigmoid" not in ops and "tanh" not in ops, ops
    # no dL/dx_t for the data sequence, no per-step weight-gradient carry: dW is one GEMM after the loop
    assert [y.shape for y in bwd[0].ys] == [(B, 16)]
    assert len(bwd[0].carries) == 2
    feeds = random_feeds(leaves, {"B": 2, "T": 5}, np.random.default_rng(14))
    a, b = evaluate(roots, feeds, dtype_override="f64"), evaluate(opt, feeds, dtype_override="f64")
    for k in roots:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_prune_keeps_a_sequence_and_dedupes_outputs():
    """A loop whose outputs read no sequence still runs T steps; equal ys are one output."""
    from dslc.passes import prune_scans
    xs, h0 = input_("xs", ty(4, B, 2)), input_("h0", ty(B, 2))
    hs, gs = scan(lambda c, x: [c[0] * 2.0, c[1] + c[0]], xs, [h0, h0])
    roots, changed = prune_scans({"g": last(gs)})
    (body,) = loops(roots)
    assert changed and len(body.xs) == 1 and len(body.carries) == 2 and len(body.ys) == 1
    feeds = random_feeds(params_of({"g": gs}), {"B": 3}, np.random.default_rng(15))
    np.testing.assert_allclose(evaluate(roots, feeds)["g"], evaluate({"g": last(gs)}, feeds)["g"], rtol=1e-6)
    only_h, _ = prune_scans({"h": last(hs)})
    assert len(loops(only_h)[0].carries) == 1                          # c[1] is read by nothing kept


def test_hoisted_loop_differentiates_to_the_same_numbers():
    """The forward hoisted before BPTT (as compile does): x_t W_x + b is one GEMM outside the
    loop, the loop multiplies by W_h only; first and second derivatives are unchanged."""
    from dslc.passes import FORWARD
    n, m, t = 3, 4, 5
    xs, h0, c0 = input_("xs", ty(t, B, n)), input_("h0", ty(B, m)), input_("c0", ty(B, m))
    hs, cs = lstm(xs, h0, c0, n, m)
    loss = P("sum", P("tanh", hs) * cs, axes=(0, 1, 2), keepdims=False)
    (hl,) = optimize({"f": loss}, passes=FORWARD).values()
    (body,) = loops({"f": hl})
    assert [nd.op for nd in body.order()].count("matmul") == 1 and "concat" not in str(body.graph())
    assert body.xs[-1].shape == (B, 4 * m)                     # the hoisted projection, scanned over
    leaves = params_of({"f": loss})
    wrt = [leaves[k] for k in ("lstm.W", "lstm.b", "xs", "h0", "c0")]
    feeds = random_feeds(leaves, {"B": 2}, np.random.default_rng(16))
    V = {w.attrs["name"]: const(np.random.default_rng(17).standard_normal(w.shape)) for w in wrt[:2]}

    def firsts_and_seconds(f):
        gs = grad(f, wrt)
        h = sum((P("sum", g * V[w.attrs["name"]], axes=(0, 1)[:w.rank], keepdims=False)
                 for g, w in zip(gs[:2], wrt[:2])), const(0.0))
        return {"f": f, **{f"g{i}": g for i, g in enumerate(gs)},
                **{f"h{i}": g for i, g in enumerate(grad(h, wrt))}}
    a = evaluate(firsts_and_seconds(loss), feeds, dtype_override="f64")
    b = evaluate(optimize(firsts_and_seconds(hl)), feeds, dtype_override="f64")
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=1e-12, err_msg=k)


SEQ_SPECS = [("specs/charlm.dl", "charlm"), ("specs/seqclass.dl", "seqclass"),
             ("specs/seqclass.dl", "seqclass_gru"), ("specs/seqclass.dl", "seqclass_rnn"),
             ("bench/specs/lstm.dl", "lstm")]


@pytest.mark.parametrize("path,name", SEQ_SPECS, ids=[n for _, n in SEQ_SPECS])
def test_training_step_optimized_equals_unoptimized(path, name):
    """Two training steps in ONNX Runtime: the optimized graph (hoisted, residuals, pruned,
    weight gradients after the loop) gives the unoptimized graph's losses and params."""
    prog = dslc.load(str(Path(__file__).resolve().parent.parent / path))
    runs = []
    for optimized in (True, False):
        m = dslc.compile(prog, name, optimize=optimized).training
        runs.append(run_steps(m, step_feeds(m, 2, seed=19, dims={"T": 6}, default_dim=3, int_high=8)))
    for a, b in zip(*runs):
        for k in a:
            # slots m, v: the gradients. atol 1e-5: Adam's first steps divide g by |g|, so float
            # reassociation on gradients near 0 moves a param by up to a few 1e-6
            np.testing.assert_allclose(a[k], b[k], rtol=2e-4, atol=1e-5, err_msg=k)


def test_padded_gate_gradients_become_one_concat():
    """pad(a) + pad(b) + ... over adjacent windows -> concat (the pullback of gate slicing)."""
    from dslc.passes import windows
    x = input_("x", ty(B, 12))
    parts = [slice_axis(x, 1, s, s + 4) * float(k + 2) for k, s in enumerate((8, 4, 0))]
    total = None
    for p, s in zip(parts, (8, 4, 0)):
        padded = P("pad", p, pads=((0, 0), (s, 8 - s)))
        total = padded if total is None else total + padded
    out, changed = windows({"y": total})
    Graph(out).lint()
    ops = [nd.op for nd in Graph(out).order()]
    assert changed and "pad" not in ops and "add" not in ops and ops.count("concat") == 1, ops
    feeds = {"x": np.random.default_rng(20).standard_normal((3, 12)).astype(np.float32)}
    np.testing.assert_allclose(evaluate(out, feeds)["y"], evaluate({"y": total}, feeds)["y"])


def test_scan_bodies_write_outputs_in_place():
    """No Identity copy per output per step: only a value that is two outputs (h_t as the
    carry and as the stacked y) keeps one."""
    roots, inputs = lstm_model(T)
    model = lower_function(optimize(roots), inputs)
    bodies = [a.g for nd in model.graph.node if nd.op_type == "Scan" for a in nd.attribute
              if a.type == onnx.AttributeProto.GRAPH]
    assert bodies
    for g in bodies:
        idents = [nd for nd in g.node if nd.op_type == "Identity"]
        assert len(idents) <= 2, [nd.input for nd in idents]


def test_compiler_unrolls_short_known_loops_only():
    from dslc.passes.unroll import UNROLL_MAX
    for t, unrolled in ((UNROLL_MAX, True), (UNROLL_MAX + 1, False)):
        roots, inputs = lstm_model(t)
        opt = optimize(roots)
        assert (not loops(opt)) == unrolled, t
        feeds = {"xs": np.random.default_rng(21).standard_normal((t, 2, 3)).astype(np.float32),
                 "lstm.W": (0.4 * np.random.default_rng(22).standard_normal((8, 20))).astype(np.float32),
                 "lstm.b": np.zeros(20, np.float32)}
        a, b = evaluate(roots, feeds, dtype_override="f64"), evaluate(opt, feeds, dtype_override="f64")
        for k in roots:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_lstm_backward_step_is_six_ops():
    """The LSTM's backward step (bench/specs/lstm.dl, loss on hs[-1]): the loss seeds the
    backward loop's carry (passes.last_steps: hs[-1] is the final carry, so no zero-padded
    dL/dh_t sequence and no add for it), and the four gate pullbacks [i' dc, f' dc, o' dh,
    g' dc] are one concat times one hoisted factor sequence (hoist's concat rule)."""
    from pathlib import Path
    import dslc
    c = dslc.compile(dslc.load(str(Path(__file__).resolve().parent.parent / "bench/specs/lstm.dl")), "lstm")
    roots = c.graphs["training"]
    back = [nd.attrs["body"] for nd in Graph(roots).order() if nd.op == "scan" and nd.attrs["reverse"]][0]
    assert [nd.op for nd in back.order() if nd.op != "input"] == ["mul", "add", "mul", "concat", "mul", "matmul"]
    assert "pad" not in {nd.op for nd in Graph(roots).order()}


def test_last_step_of_carried_ys_is_the_final_carry():
    from dslc.passes.scans import last_steps
    n, m, t = 3, 4, 5
    xs, h0, c0 = input_("xs", ty(t, B, n)), input_("h0", ty(B, m)), input_("c0", ty(B, m))
    hs, cs = lstm(xs, h0, c0, n, m)
    last = slice_axis(hs, 0, t - 1, t)
    first = slice_axis(hs, 0, 0, 1)                       # not the last step: stays a slice
    out, changed = last_steps({"l": last, "f": first})
    Graph(out).lint()
    assert changed and out["l"].op == "unsqueeze" and out["l"].inputs[0].attrs["index"] == 0
    assert out["f"].op == "slice"
    feeds = random_feeds(params_of({"l": last}), {"B": 2}, np.random.default_rng(21))
    np.testing.assert_array_equal(evaluate(out, feeds)["l"], evaluate({"l": last}, feeds)["l"])
