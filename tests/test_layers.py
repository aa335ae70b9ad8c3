"""One table over the standard layers written in `.dl` (dslc/stdlib/): each row is a
small model calling the layer, and a NumPy reference written here. Each row checks
  (a) the NumPy engine (float64) against the reference, with random params;
  (b) the gradient in every input and param against float64 central differences;
  (c) the second derivative in the data input: d/dx sum(c2 * grad_x) against FD;
  (d) ONNX Runtime (float32) against the reference, forward and gradient.
Layers are checked in inference mode (dropout is the identity there); dropout's
training behaviour is the built-in's, tested with the built-ins."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import dslc
from dslc.autodiff import grad
from dslc.evaluate import evaluate
from dslc.ir import TensorType
from dslc.ir.node import apply as P
from dslc.ops.leaves import input_
from dslc.passes.specialize import specialize


@dataclass
class Row:
    id: str
    spec: str                   # the body of `model m`; its output is `y`, its data input `x`
    feeds: dict                 # input name -> shape (float32 normal) or an array
    ref: Callable               # (feeds, params) -> y, in float64
    second: bool = True


# -- NumPy references ---------------------------------------------------------------

def np_softmax(z, axis=-1):
    e = np.exp(z - z.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def np_dense(x, p, name, act=lambda v: v):
    return act(x @ p[name + ".W"] + p[name + ".b"])


def np_layer_norm(x, p, name, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return p[name + ".gamma"] * (x - mu) / np.sqrt(var + eps) + p[name + ".beta"]


def np_attention(q, k, v, mask=0.0):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]) + mask
    return np_softmax(s) @ v


def np_mha(x, p, name, heads, mask=0.0):
    B, T, _ = x.shape
    q, k, v = (np_dense(x, p, f"{name}.{w}") for w in "qkv")
    d = q.shape[-1]
    split = lambda a: a.reshape(B, T, heads, d // heads).transpose(0, 2, 1, 3)   # noqa: E731
    a = np_attention(split(q), split(k), split(v), mask)           # [B, heads, T, dh]
    return np_dense(a.transpose(0, 2, 1, 3).reshape(B, T, d), p, f"{name}.o")


def np_block(x, p, name, heads, mask=0.0, act=lambda v: np.maximum(v, 0)):
    h = x + np_mha(np_layer_norm(x, p, f"{name}.ln1"), p, f"{name}.att", heads, mask)
    f = np_dense(np_dense(np_layer_norm(h, p, f"{name}.ln2"), p, f"{name}.hid", act), p, f"{name}.out")
    return h + f


def np_causal(T):
    return np.where(np.tril(np.ones((T, T))) > 0, 0.0, -1e9)


def np_positions(T, d):
    """Vaswani et al.: PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(t / 10000^(2i/d))."""
    pe = np.zeros((T, d))
    t, i = np.arange(T)[:, None], np.arange(0, d, 2)[None]
    pe[:, 0::2], pe[:, 1::2] = np.sin(t / 10000 ** (i / d)), np.cos(t / 10000 ** (i / d))
    return pe


ROWS = [
    Row("dense", "input x: f32[B, 3]\n output y = dense(x, 4, act = tanh) as h",
        {"x": (2, 3)}, lambda f, p: np_dense(f["x"], p, "h", np.tanh)),
    Row("layer_norm", "input x: f32[B, T, 4]\n output y = layer_norm(x) as ln",
        {"x": (2, 3, 4)}, lambda f, p: np_layer_norm(f["x"], p, "ln")),
    Row("attention", "input x: f32[N, T, 4]\n input k: f32[N, S, 4]\n input v: f32[N, S, 3]\n"
        " output y = attention(x, k, v)",
        {"x": (2, 3, 4), "k": (2, 5, 4), "v": (2, 5, 3)}, lambda f, p: np_attention(f["x"], f["k"], f["v"])),
    Row("attention_mask", "input x: f32[N, T, 4]\n input mask: f32[T, T]\n output y = attention(x, x, x, mask)",
        {"x": (2, 3, 4), "mask": np.array([[0, -1e9, -1e9], [0, 0, -1e9], [0, 0, 0]], np.float32)},
        lambda f, p: np_attention(f["x"], f["x"], f["x"], f["mask"])),
    Row("split_merge_heads", "input x: f32[B, T, 6]\n output y = merge_heads(split_heads(x, 3) * 2.0, 3)",
        {"x": (2, 3, 6)}, lambda f, p: 2.0 * f["x"]),
    Row("multi_head_attention", "input x: f32[B, T, 3]\n output y = multi_head_attention(x, 2, 4) as att",
        {"x": (2, 3, 3)}, lambda f, p: np_mha(f["x"], p, "att", 2)),
    Row("causal_mask", "input x: f32[N, T, 4]\n output y = attention(x, x, x, causal_mask(T))",
        {"x": (2, 4, 4)}, lambda f, p: np_attention(f["x"], f["x"], f["x"], np_causal(4))),
    Row("positional_encoding", "input x: f32[B, T, 6]\n output y = x * positional_encoding(T, 6)",
        {"x": (2, 30, 6)}, lambda f, p: f["x"] * np_positions(30, 6)),
    Row("transformer_block_causal",
        "input x: f32[B, T, 4]\n output y = transformer_block(x, 2, 4, 6, causal_mask(T), act = tanh) as blk",
        {"x": (2, 3, 4)}, lambda f, p: np_block(f["x"], p, "blk", 2, np_causal(3), np.tanh)),
    Row("transformer_block", "input x: f32[B, T, 4]\n output y = transformer_block(x, 2, 4, 6) as blk",
        {"x": (2, 3, 4)}, lambda f, p: np_block(f["x"], p, "blk", 2)),
]


# -- the engine ---------------------------------------------------------------------

def _model(row):
    prog = dslc.parse(f"model m {{\n {row.spec}\n}}\n", filename=f"<{row.id}>")
    m = prog.model("m")
    y = specialize({"y": m.outputs["y"]}, "infer")[0]["y"]
    return m, y


def _feeds(row, m, rng):
    feeds = {}
    for name, v in row.feeds.items():
        feeds[name] = v.astype(np.float64) if isinstance(v, np.ndarray) else rng.standard_normal(v)
    for path, node in m.params.items():        # random params, not the initial ones (gammas of 1, ...)
        feeds[node.attrs["name"]] = rng.standard_normal(tuple(int(d) for d in node.shape)) * 0.7
    return feeds


def _leaves(row, m, y):
    data = [m.inputs[k] for k in row.feeds]
    floats = [m.inputs[k] for k in row.feeds if not isinstance(row.feeds[k], np.ndarray)]
    return data, floats + list(m.params.values())


def _objective(y, feeds, rng, name="c"):
    c = input_(name, TensorType(y.dtype, y.shape))
    feeds[name] = rng.standard_normal(np.shape(feeds["__y"]))
    return P("sum", y * c, axes=tuple(range(y.rank)), keepdims=False), c


def _ev(roots, feeds, leaves=()):
    """float64 values; the leaves are evaluated too, so that their symbolic dims are bound
    even where a root (the gradient of a linear map) does not use them."""
    extra = {f"__leaf{i}": n for i, n in enumerate(leaves)}
    fed = {k: v for k, v in feeds.items() if not k.startswith("__")}
    return evaluate({**roots, **extra}, fed, dtype_override="f64")


def _fd(fn, feeds, name, h=1e-6):
    x = feeds[name]
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, dn = dict(feeds), dict(feeds)
        up[name], dn[name] = x.copy(), x.copy()
        up[name][idx] += h
        dn[name][idx] -= h
        out[idx] = (fn(up) - fn(dn)) / (2 * h)
    return out


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_layer_matches_numpy_and_finite_differences(row):
    rng = np.random.default_rng(0)
    m, y = _model(row)
    feeds = _feeds(row, m, rng)
    params = {p: feeds[n.attrs["name"]] for p, n in m.params.items()}
    want = row.ref(feeds, params)
    got = _ev({"y": y}, feeds)["y"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=f"{row.id}: value")  # (a) f32 constants

    feeds["__y"] = want
    f, _ = _objective(y, feeds, rng)
    _, wrt = _leaves(row, m, y)
    gs = grad(f, wrt)
    got = _ev({n.attrs["name"]: g for n, g in zip(wrt, gs)}, feeds, wrt)
    for n in wrt:                                                                                  # (b)
        name = n.attrs["name"]
        fd = _fd(lambda fe: float(_ev({"f": f}, fe)["f"]), feeds, name)
        np.testing.assert_allclose(got[name], fd, rtol=1e-5, atol=1e-6, err_msg=f"{row.id}: d/d{name}")

    if not row.second:
        return
    x = m.inputs["x"]                                                                              # (c)
    gx = gs[wrt.index(x)]
    c2 = input_("c2", TensorType(gx.dtype, gx.shape))
    feeds["c2"] = rng.standard_normal(feeds["x"].shape)
    s = P("sum", gx * c2, axes=tuple(range(gx.rank)), keepdims=False)
    got2 = _ev({"g2": grad(s, [x])[0]}, feeds, wrt)["g2"]
    fd2 = _fd(lambda fe: float(_ev({"s": s}, fe)["s"]), feeds, "x")
    np.testing.assert_allclose(got2, fd2, rtol=1e-4, atol=1e-5, err_msg=f"{row.id}: second derivative")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_layer_onnx_runtime_matches_numpy(row):
    ort = pytest.importorskip("onnxruntime")
    from dslc.lower import lower_function
    rng = np.random.default_rng(1)
    m, y = _model(row)
    feeds = _feeds(row, m, rng)
    params = {p: feeds[n.attrs["name"]] for p, n in m.params.items()}
    feeds32 = {k: v.astype(np.float32) for k, v in feeds.items()}
    want = row.ref({k: v.astype(np.float64) for k, v in feeds32.items()},
                   {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()})
    feeds["__y"] = want
    f, c = _objective(y, feeds, rng)
    feeds32["c"] = feeds["c"].astype(np.float32)
    data, wrt = _leaves(row, m, y)
    outs = {"y": y, **{"g_" + n.attrs["name"]: g for n, g in zip(wrt, grad(f, wrt))}}
    leaves = list(dict.fromkeys(data + list(m.params.values()) + [c]))
    model = lower_function(outs, leaves)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()],
                   sess.run(None, {i.name: feeds32[i.name] for i in sess.get_inputs()})))
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-5, err_msg=f"{row.id}: ORT value")
    ref_grads = evaluate(outs, feeds32)
    for k, v in ref_grads.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5, err_msg=f"{row.id}: ORT {k}")
