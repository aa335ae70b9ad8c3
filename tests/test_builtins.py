"""The built-in functions (LANGUAGE.md §7): numbers against NumPy references
(through the NumPy engine, and ONNX Runtime for a few), and the errors for misuse."""
from __future__ import annotations

import numpy as np
import pytest

from dslc.errors import Loc, SpecError
from dslc.evaluate import evaluate
from dslc.ir import Sym, TensorType, at
from dslc.elaborate.builtins import BUILTINS, Builtin, call_builtin
from dslc.ops.leaves import input_

F = {name: b for name, b in BUILTINS.items()}      # F["softmax"](x) reads like the spec
B, T, m = Sym.var("B"), Sym.var("T"), Sym.var("m")
rng = np.random.default_rng(0)


def inp(name, shape, dtype="f32"):
    return input_(name, TensorType(dtype, tuple(shape)))


def ev(node, **feeds):
    return evaluate({"y": node}, feeds)["y"]


def ev64(node, **feeds):
    return evaluate({"y": node}, feeds, dtype_override="f64")["y"]


def np_softmax(z, axis=-1):
    e = np.exp(z - z.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


# -- the table -------------------------------------------------------------------

def test_table_covers_language_section_7():
    names = """exp log sqrt abs sign relu sigmoid tanh softplus identity maximum minimum clip where
    sum mean max min logsumexp argmax reshape transpose concat stack flatten expand squeeze unsqueeze
    zeros ones softmax log_softmax conv max_pool avg_pool embedding dropout normal uniform bernoulli
    mse cross_entropy bce_logits hinge kl_normal l1 l2 accuracy grad index
    add sub mul div pow neg lt le gt ge eq ne matmul""".split()
    assert not [n for n in names if n not in BUILTINS]
    b = BUILTINS["sum"]
    assert isinstance(b, Builtin)
    assert b.positional == ("x", "axis", "keepdims")
    assert b.keywords == {"axis": None, "keepdims": False}
    assert b.tensor_args == ("x",)
    assert BUILTINS["concat"].arg("xs").kind == "tensors"
    assert BUILTINS["conv"].keywords == {"stride": 1, "padding": "valid", "dilation": 1}
    assert BUILTINS["cross_entropy"].keywords == {"reduce": "mean"}


def test_call_builtin_checks_arity_and_keywords():
    x = inp("x", (B, 4))
    y = call_builtin("softmax", [x], {"axis": -1})
    assert y.type == TensorType("f32", (B, 4))
    with pytest.raises(SpecError, match=r"has no argument `axes` \(did you mean `axis`\?\)"):
        call_builtin("sum", [x], {"axes": 1})
    with pytest.raises(SpecError, match="at most 3 arguments"):
        call_builtin("sum", [x, 0, True, 1], {})
    with pytest.raises(SpecError, match="needs argument `x`"):
        call_builtin("relu", [], {})
    with pytest.raises(SpecError, match="given twice"):
        call_builtin("softmax", [x, 0], {"axis": 1})
    with pytest.raises(SpecError, match=r"unknown function `sofmax` \(did you mean `softmax`\?\)"):
        call_builtin("sofmax", [x], {})
    with pytest.raises(SpecError, match=r"`axis` of sum must be an axis .* found a tensor f32\[B, 4\]"):
        call_builtin("sum", [x], {"axis": x})
    with pytest.raises(SpecError, match="`p` of dropout must be a number"):
        call_builtin("dropout", [x, "half"], {})


def test_errors_carry_the_current_location():
    loc = Loc("net.dl", 7, 5)
    with at(loc), pytest.raises(SpecError) as e:
        F["add"](inp("a", (3, 4)), inp("b", (5,)))
    assert (e.value.filename, e.value.line, e.value.column) == ("net.dl", 7, 5)
    with at(loc), pytest.raises(SpecError) as e:
        call_builtin("sum", [inp("a", (3,))], {"axs": 0})
    assert e.value.line == 7


# -- elementwise, operators, dtype rules ------------------------------------------

def test_elementwise_values():
    x = rng.standard_normal((3, 4)).astype(np.float32)
    xn = inp("x", (3, 4))
    for name, ref in [("exp", np.exp), ("abs", np.abs), ("sign", np.sign), ("tanh", np.tanh),
                      ("relu", lambda v: np.maximum(v, 0)), ("sigmoid", lambda v: 1 / (1 + np.exp(-v))),
                      ("softplus", lambda v: np.log1p(np.exp(v))), ("identity", lambda v: v)]:
        np.testing.assert_allclose(ev(F[name](xn), x=x), ref(x), rtol=1e-5, atol=1e-6, err_msg=name)
    p = np.abs(x) + 0.1
    np.testing.assert_allclose(ev(F["log"](xn), x=p), np.log(p), rtol=1e-6)
    np.testing.assert_allclose(ev(F["sqrt"](xn), x=p), np.sqrt(p), rtol=1e-6)
    np.testing.assert_allclose(ev(F["clip"](xn, -0.5, 0.5), x=x), np.clip(x, -0.5, 0.5))
    np.testing.assert_allclose(ev(F["maximum"](xn, 0.2), x=x), np.maximum(x, 0.2))
    np.testing.assert_allclose(ev(F["minimum"](0.2, xn), x=x), np.minimum(x, 0.2))
    np.testing.assert_allclose(ev(F["where"](F["gt"](xn, 0), xn, 0.0), x=x), np.where(x > 0, x, 0))
    np.testing.assert_allclose(ev(F["pow"](xn, 2), x=x), x ** 2, rtol=1e-6)


def test_numbers_take_the_tensor_dtype():
    x, k = inp("x", (B, 3)), inp("k", (B,), "i64")
    assert F["mul"](2, x).type == TensorType("f32", (B, 3))          # 2 * x is f32
    assert F["add"](k, 1).type == TensorType("i64", (B,))            # i64 stays i64
    assert F["lt"](x, 0).type == TensorType("bool", (B, 3))
    assert F["exp"](1.0).type == TensorType("f32", ())
    x64 = inp("x64", (3,), "f64")
    assert F["sub"](1, x64).dtype == "f64"


def test_dtype_and_shape_errors_name_both():
    x, k = inp("x", (B, 3)), inp("k", (B, 3), "i64")
    with pytest.raises(SpecError, match=r"f32\[B, 3\] and i64\[B, 3\]"):
        F["add"](x, k)
    with pytest.raises(SpecError, match=r"i64\[B, 3\] with the float 0.5"):
        F["mul"](k, 0.5)
    with pytest.raises(SpecError, match=r"\[3, 4\] and \[5\]"):
        F["add"](inp("a", (3, 4)), inp("b", (5,)))
    with pytest.raises(SpecError, match=r"f32\[B, 3\] by f32\[4, 2\]"):
        F["matmul"](x, inp("w", (4, 2)))
    with pytest.raises(SpecError, match="bool condition"):
        F["where"](x, x, x)
    with pytest.raises(SpecError, match=r"exp needs a float tensor, found i64\[B, 3\]"):
        F["exp"](k)


def test_matmul_batches_and_vectors():
    a, w, v = inp("a", (B, T, 4)), inp("w", (4, 2)), inp("v", (4,))
    assert F["matmul"](a, w).type == TensorType("f32", (B, T, 2))
    assert F["matmul"](v, w).shape == (2,)
    assert F["matmul"](inp("m", (3, 4)), v).shape == (3,)
    av, wv, vv = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(4)
    np.testing.assert_allclose(ev64(F["matmul"](a, w), a=av, w=wv), av @ wv)
    np.testing.assert_allclose(ev64(F["matmul"](v, w), v=vv, w=wv), vv @ wv)


# -- reductions ---------------------------------------------------------------------

def test_reductions():
    x = rng.standard_normal((2, 3, 4))
    xn = inp("x", (2, 3, 4))
    np.testing.assert_allclose(ev64(F["sum"](xn), x=x), x.sum())
    np.testing.assert_allclose(ev64(F["sum"](xn, axis=[0, -1]), x=x), x.sum((0, 2)))
    np.testing.assert_allclose(ev64(F["mean"](xn, axis=1, keepdims=True), x=x), x.mean(1, keepdims=True))
    np.testing.assert_allclose(ev64(F["max"](xn, axis=-1), x=x), x.max(-1))
    np.testing.assert_allclose(ev64(F["min"](xn, axis=0), x=x), x.min(0))
    np.testing.assert_array_equal(ev64(F["argmax"](xn, axis=-1), x=x), x.argmax(-1))
    np.testing.assert_array_equal(ev64(F["argmax"](xn), x=x), x.argmax())
    with pytest.raises(SpecError, match=r"axis 3 is out of range of f32\[2, 3, 4\]"):
        F["sum"](xn, axis=3)


def test_logsumexp_is_stable():
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [0.0, 1.0, 2.0]], np.float32)
    xn = inp("x", (2, 3))
    got = ev(F["logsumexp"](xn, axis=-1), x=x)
    ref = x.max(-1) + np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    # d logsumexp = softmax, finite too
    g = ev(F["grad"](F["sum"](F["logsumexp"](xn, axis=-1)), xn), x=x)
    np.testing.assert_allclose(g, np_softmax(x.astype(np.float64)), atol=1e-6)


# -- shape functions and indexing ------------------------------------------------------

def test_shape_functions():
    x = rng.standard_normal((2, 3, 4))
    xn = inp("x", (2, 3, 4))
    np.testing.assert_allclose(ev64(F["reshape"](xn, (4, -1)), x=x), x.reshape(4, -1))
    np.testing.assert_allclose(ev64(F["transpose"](xn), x=x), x.transpose())
    np.testing.assert_allclose(ev64(F["transpose"](xn, [0, 2, 1]), x=x), x.transpose(0, 2, 1))
    np.testing.assert_allclose(ev64(F["flatten"](xn), x=x), x.reshape(2, 12))
    np.testing.assert_allclose(ev64(F["concat"]([xn, xn], axis=-1), x=x), np.concatenate([x, x], -1))
    np.testing.assert_allclose(ev64(F["stack"]([xn, xn], axis=1), x=x), np.stack([x, x], 1))
    np.testing.assert_allclose(ev64(F["stack"]([xn, xn], axis=-1), x=x), np.stack([x, x], -1))
    np.testing.assert_allclose(ev64(F["unsqueeze"](xn, -1), x=x), x[..., None])
    np.testing.assert_allclose(ev64(F["squeeze"](F["unsqueeze"](xn, 0), 0), x=x), x)
    y = inp("y", (3, 1))
    yv = rng.standard_normal((3, 1))
    np.testing.assert_allclose(ev64(F["expand"](y, (2, 3, 5)), y=yv), np.broadcast_to(yv, (2, 3, 5)))
    np.testing.assert_allclose(ev64(F["squeeze"](y), y=yv), yv[:, 0])
    with pytest.raises(SpecError, match=r"cannot reshape f32\[2, 3, 4\] to \[5, 5\]"):
        F["reshape"](xn, (5, 5))
    with pytest.raises(SpecError, match=r"cannot concat f32\[2, 3, 4\] and f32\[2, 3\]"):
        F["concat"]([xn, inp("z", (2, 3))], axis=0)


def test_symbolic_shapes():
    x = inp("x", (B, T, 8))
    assert F["reshape"](x, (-1, 8)).shape == (B * T, 8)
    assert F["reshape"](x, (B, -1)).shape == (B, 8 * T)
    assert F["flatten"](x).shape == (B, 8 * T)
    z = F["zeros"]((B, 64))
    assert z.type == TensorType("f32", (B, 64))
    o = F["ones"]((B, 2), dtype="i64")
    xv = rng.standard_normal((2, 5, 8))
    got = evaluate({"o": o, "x": x}, {"x": xv})
    np.testing.assert_array_equal(got["o"], np.ones((2, 2), np.int64))


def test_index():
    x = rng.standard_normal((4, 6))
    xn = inp("x", (4, 6))
    for items, ref in [([None, 0], x[:, 0]), ([-1], x[-1]), ([None, (2, 5, None)], x[:, 2:5]),
                       ([(None, None, 2), (1, None, 3)], x[::2, 1::3]), ([(-3, None, None), -2], x[-3:, -2]),
                       ([1, 2], x[1, 2]), ([slice(None, 3), slice(None, None, 2)], x[:3, ::2])]:
        np.testing.assert_allclose(ev64(F["index"](xn, items), x=x), ref, err_msg=str(items))
    xs = inp("xs", (T, B, 16))
    assert F["index"](xs, [-1]).shape == (B, 16)
    last = F["index"](xs, [-1])
    xv = rng.standard_normal((5, 2, 16))
    np.testing.assert_allclose(ev64(last, xs=xv), xv[-1])
    g = inp("g", (B, 4 * m))
    assert F["index"](g, [None, (m, 2 * m, None)]).shape == (B, m)
    with pytest.raises(SpecError, match=r"index 6 is out of range for axis 1 of size 6"):
        F["index"](xn, [None, 6])
    with pytest.raises(SpecError, match=r"slice 2:8 is out of range"):
        F["index"](xn, [None, (2, 8, None)])
    with pytest.raises(SpecError, match="too many indices"):
        F["index"](xn, [0, 0, 0])


# -- networks ---------------------------------------------------------------------------

def test_softmax_and_log_softmax():
    z = rng.standard_normal((5, 7)).astype(np.float32) * 3
    zn = inp("z", (B, 7))
    p = ev(F["softmax"](zn), z=z)
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-6)
    np.testing.assert_allclose(p, np_softmax(z), rtol=1e-5)
    np.testing.assert_allclose(ev(F["log_softmax"](zn), z=z), np.log(np_softmax(z)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ev(F["softmax"](zn, axis=0), z=z), np_softmax(z, 0), rtol=1e-5)
    big = np.array([[1e4, 0.0, -1e4]], np.float32)
    assert np.all(np.isfinite(ev(F["softmax"](zn), z=big)))


def _conv_ref(x, w, stride, pads, dil):
    """direct loops: y[n, o, i] = sum_c,t w[o, c, t] xpad[n, c, i s + t d] (1-d)"""
    xp = np.pad(x, [(0, 0), (0, 0), pads])
    k = w.shape[2]
    out = (xp.shape[2] - dil * (k - 1) - 1) // stride + 1
    y = np.zeros((x.shape[0], w.shape[0], out))
    for i in range(out):
        for t in range(k):
            y[:, :, i] += np.einsum("nc,oc->no", xp[:, :, i * stride + t * dil], w[:, :, t])
    return y


def test_conv_values_and_padding():
    x, w = rng.standard_normal((2, 3, 9)), rng.standard_normal((4, 3, 3))
    xn, wn = inp("x", (B, 3, 9)), inp("w", (4, 3, 3))
    for kw, pads in [({}, (0, 0)), ({"padding": "same"}, (1, 1)), ({"padding": 2, "stride": 2}, (2, 2)),
                     ({"padding": "same", "dilation": 2}, (2, 2))]:
        got = ev64(F["conv"](xn, wn, **kw), x=x, w=w)
        ref = _conv_ref(x, w, kw.get("stride", 1), pads, kw.get("dilation", 1))
        np.testing.assert_allclose(got, ref, rtol=1e-10, err_msg=str(kw))
    # "same" keeps the size, even for even kernels and in 2-d
    assert F["conv"](xn, inp("w4", (4, 3, 4)), padding="same").shape == (B, 4, 9)
    x2 = inp("x2", (B, 3, 7, 5))
    assert F["conv"](x2, inp("k", (8, 3, 3, 3)), padding="same").shape == (B, 8, 7, 5)
    assert F["conv"](x2, inp("k", (8, 3, 3, 3)), stride=2).shape == (B, 8, 3, 2)


def test_conv_errors():
    with pytest.raises(SpecError, match=r"conv needs an NCL \(rank 3\) or NCHW \(rank 4\) input, found f32\[B, 8\]"):
        F["conv"](inp("x", (B, 8)), inp("w", (4, 8, 3)))
    with pytest.raises(SpecError, match=r"kernel .* of rank 4, found f32\[4, 3, 3\]"):
        F["conv"](inp("x", (B, 3, 8, 8)), inp("w", (4, 3, 3)))
    with pytest.raises(SpecError, match=r"3 input channels != 2"):
        F["conv"](inp("x", (B, 3, 8)), inp("w", (4, 2, 3)))
    with pytest.raises(SpecError, match='"same" needs stride 1'):
        F["conv"](inp("x", (B, 3, 8)), inp("w", (4, 3, 3)), stride=2, padding="same")
    with pytest.raises(SpecError, match=r"did you mean `same`"):
        F["conv"](inp("x", (B, 3, 8)), inp("w", (4, 3, 3)), padding="sme")


def _pool_ref(x, k, s, fn):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = fn(x[:, :, i * s:i * s + k, j * s:j * s + k], axis=(2, 3))
    return y


@pytest.mark.parametrize("k,s", [(2, None), (2, 2), (3, 3), (3, 2), (2, 1)])
def test_pooling_values(k, s):
    x = rng.standard_normal((2, 3, 7, 6))
    xn = inp("x", (B, 3, 7, 6))
    for name, fn in [("max_pool", np.max), ("avg_pool", np.mean)]:
        got = ev64(F[name](xn, k, s), x=x)
        np.testing.assert_allclose(got, _pool_ref(x, k, s or k, fn), rtol=1e-10, err_msg=name)


def test_pooling_1d_and_symbolic():
    x = rng.standard_normal((2, 3, 9))
    got = ev64(F["max_pool"](inp("x", (B, 3, 9)), 2), x=x)
    np.testing.assert_allclose(got, x[:, :, :8].reshape(2, 3, 4, 2).max(-1))
    y = F["avg_pool"](inp("img", (B, 3, T, T)), 2)
    assert y.shape[:2] == (B, 3)
    img = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(ev64(y, img=img), _pool_ref(img, 2, 2, np.mean), rtol=1e-10)
    with pytest.raises(SpecError, match="max_pool needs an NCL"):
        F["max_pool"](inp("v", (B, 4)), 2)


def test_embedding():
    table, ids = rng.standard_normal((10, 4)), np.array([[1, 9], [0, 1]])
    got = ev64(F["embedding"](inp("ids", (B, 2), "i64"), inp("table", (10, 4))), ids=ids, table=table)
    np.testing.assert_allclose(got, table[ids])
    with pytest.raises(SpecError, match=r"ids must be i64 .* found f32\[B\]"):
        F["embedding"](inp("f", (B,)), inp("table", (10, 4)))


def test_dropout_scales_in_training():
    x = np.ones((50, 40), np.float32)
    y = ev(F["dropout"](inp("x", (B, 40)), 0.25), x=x)       # the NumPy engine runs training mode
    assert np.all((y == 0) | np.isclose(y, 1 / 0.75))
    assert abs((y == 0).mean() - 0.25) < 0.05
    d = F["dropout"](inp("x", (B, 40)), 0.25)
    assert d.op == "training" and d.inputs[1].op == "input"     # inference: x itself
    assert F["dropout"](inp("x", (B, 40)), 0.0).op == "input"
    with pytest.raises(SpecError, match=r"dropout probability must be in \[0, 1\)"):
        F["dropout"](inp("x", (B, 40)), 1.0)


def test_random_draws():
    n = F["normal"]((B, 500))
    u = F["uniform"]((B, 500))
    b = F["bernoulli"](0.3, (B, 500))
    assert n.type == u.type == b.type == TensorType("f32", (B, 500))
    xv = np.zeros((4, 1), np.float32)
    got = evaluate({"n": n, "u": u, "b": b, "x": inp("x", (B, 1))}, {"x": xv})
    assert abs(got["n"].mean()) < 0.1 and abs(got["n"].std() - 1) < 0.1
    assert 0 <= got["u"].min() and got["u"].max() < 1
    assert set(np.unique(got["b"])) <= {0.0, 1.0} and abs(got["b"].mean() - 0.3) < 0.05


# -- losses and metrics -------------------------------------------------------------------

def test_cross_entropy_is_minus_log_softmax_of_label():
    z = rng.standard_normal((6, 5)).astype(np.float32)
    y = np.array([0, 4, 2, 2, 1, 3])
    zn, yn = inp("z", (B, 5)), inp("y", (B,), "i64")
    ref = -np.log(np_softmax(z.astype(np.float64))[np.arange(6), y])
    np.testing.assert_allclose(ev(F["cross_entropy"](zn, yn, reduce="none"), z=z, y=y), ref, rtol=1e-5)
    np.testing.assert_allclose(ev(F["cross_entropy"](zn, yn), z=z, y=y), ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(ev(F["cross_entropy"](zn, yn, reduce="sum"), z=z, y=y), ref.sum(), rtol=1e-5)
    big = np.array([[1e4, 0, 0, 0, -1e4]], np.float32)
    np.testing.assert_allclose(ev(F["cross_entropy"](zn, yn, reduce="none"), z=big, y=np.array([1])), [1e4])


def test_cross_entropy_errors():
    zn = inp("z", (B, 5))
    with pytest.raises(SpecError, match=r"labels as i64 class indices, found f32\[B\]"):
        F["cross_entropy"](zn, inp("y", (B,)))
    with pytest.raises(SpecError, match=r"labels i64\[B, 5\] do not match logits f32\[B, 5\]"):
        F["cross_entropy"](zn, inp("y", (B, 5), "i64"))
    with pytest.raises(SpecError, match='reduce must be "mean", "sum" or "none"'):
        F["cross_entropy"](zn, inp("y", (B,), "i64"), reduce="avg")


def test_simple_losses():
    a, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    an, tn = inp("a", (B, 3)), inp("t", (B, 3))
    np.testing.assert_allclose(ev64(F["mse"](an, tn), a=a, t=t), ((a - t) ** 2).mean())
    np.testing.assert_allclose(ev64(F["mse"](an, tn, reduce="none"), a=a, t=t), (a - t) ** 2)
    s = np.sign(t)
    np.testing.assert_allclose(ev64(F["hinge"](an, tn, reduce="sum"), a=a, t=s), np.maximum(0, 1 - s * a).sum())
    p = rng.random((4, 3))
    bce = -(p * np.log(1 / (1 + np.exp(-a))) + (1 - p) * np.log(1 - 1 / (1 + np.exp(-a))))
    np.testing.assert_allclose(ev64(F["bce_logits"](an, tn, reduce="none"), a=a, t=p), bce, rtol=1e-10)
    kl = -0.5 * (1 + t - a ** 2 - np.exp(t))
    np.testing.assert_allclose(ev64(F["kl_normal"](an, tn, reduce="none"), a=a, t=t), kl)
    np.testing.assert_allclose(ev64(F["l1"](an), a=a), np.abs(a).sum())
    np.testing.assert_allclose(ev64(F["l2"](an), a=a), (a ** 2).sum())
    with pytest.raises(SpecError, match=r"same shape, found f32\[B, 3\] and f32\[B, 1, 3\]"):
        F["mse"](an, inp("w", (B, 1, 3)))


def test_softplus_and_bce_finite_at_large_inputs():
    z = np.array([[1e4, -1e4, 0.0]], np.float32)
    t = np.array([[1.0, 0.0, 1.0]], np.float32)
    zn, tn = inp("z", (1, 3)), inp("t", (1, 3))
    sp = ev(F["softplus"](zn), z=z)
    np.testing.assert_allclose(sp, [[1e4, 0.0, np.log(2)]], rtol=1e-6)
    b = ev(F["bce_logits"](zn, tn, reduce="none"), z=z, t=t)
    assert np.all(np.isfinite(b))
    np.testing.assert_allclose(b, [[0.0, 0.0, np.log(2)]], atol=1e-6)
    g = ev(F["grad"](F["bce_logits"](zn, tn), zn), z=z, t=t)
    assert np.all(np.isfinite(g))


def test_accuracy():
    z = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], np.float32)
    y = np.array([1, 0, 0, 0])
    acc = F["accuracy"](inp("z", (B, 2)), inp("y", (B,), "i64"))
    assert acc.type == TensorType("f32", ())
    np.testing.assert_allclose(ev(acc, z=z, y=y), 0.75)


# -- grad -----------------------------------------------------------------------------------

def test_grad_builtin_and_second_derivative():
    xn = inp("x", (B, 2), "f64")
    x = rng.standard_normal((3, 2))
    f = F["sum"](F["pow"](xn, 3))
    g = F["grad"](f, xn)                                     # 3 x^2
    np.testing.assert_allclose(ev64(g, x=x), 3 * x ** 2)
    h = F["grad"](F["sum"](F["index"](g, [None, 0])), xn)   # d/dx sum(3 x[:, 0]^2) = 6 x[:, 0] in column 0
    ref = np.zeros_like(x)
    ref[:, 0] = 6 * x[:, 0]
    np.testing.assert_allclose(ev64(h, x=x), ref)
    with pytest.raises(SpecError, match="scalar"):
        F["grad"](F["pow"](xn, 3), xn)


# -- ONNX Runtime agrees on a few compositions -------------------------------------------------

def test_onnx_runtime_agrees():
    lower = pytest.importorskip("dslc.lower")
    ort = pytest.importorskip("onnxruntime")
    zn, yn, img = inp("z", (B, 5)), inp("y", (B,), "i64"), inp("img", (B, 2, 7, 6))
    outs = {"p": F["softmax"](zn), "ce": F["cross_entropy"](zn, yn), "acc": F["accuracy"](zn, yn),
            "mp": F["max_pool"](img, 2), "ap": F["avg_pool"](img, 3, 2), "bce": F["bce_logits"](zn, 1.0),
            "last": F["index"](zn, [-1, (1, None, 2)])}
    feeds = {"z": np.array([[1e4, 0, 0, 0, -1e4], [1, 2, 3, 4, 5]], np.float32),
             "y": np.array([0, 3]), "img": rng.standard_normal((2, 2, 7, 6)).astype(np.float32)}
    model = lower.lower_function(outs, [zn, yn, img])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    want = evaluate(outs, feeds)
    for k, v in want.items():
        assert np.all(np.isfinite(got[k])), k
        np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-5, err_msg=k)


# -- gradients of the compositions (float64 finite differences) ------------------------------

def _fd_check(build, shapes, seed=0):
    from dslc.autodiff import grad
    r = np.random.default_rng(seed)
    nodes = [inp(f"x{i}", s, "f64") for i, s in enumerate(shapes)]
    feeds = {f"x{i}": r.standard_normal(s) for i, s in enumerate(shapes)}
    y = build(*nodes)
    c = r.standard_normal(y.shape)
    f = F["sum"](F["mul"](y, input_("c", TensorType("f64", y.shape))))
    feeds["c"] = c
    gs = evaluate({n.attrs["name"]: g for n, g in zip(nodes, grad(f, nodes))}, feeds, dtype_override="f64")
    for n in nodes:
        name, x, h = n.attrs["name"], feeds[n.attrs["name"]], 1e-6
        fd = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            up, dn = x.copy(), x.copy()
            up[idx] += h
            dn[idx] -= h
            fd[idx] = (ev64(f, **{**feeds, name: up}) - ev64(f, **{**feeds, name: dn})) / (2 * h)
        np.testing.assert_allclose(gs[name], fd, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name,build,shapes", [
    ("softmax", lambda z: F["softmax"](z), [(3, 4)]),
    ("log_softmax", lambda z: F["log_softmax"](z, axis=0), [(3, 4)]),
    ("logsumexp", lambda z: F["logsumexp"](z, axis=1), [(3, 4)]),
    ("conv_same", lambda x, w: F["conv"](x, w, padding="same"), [(1, 2, 5, 4), (2, 2, 3, 2)]),
    ("max_pool", lambda x: F["max_pool"](x, 2), [(1, 2, 5, 4)]),
    ("avg_pool_overlap", lambda x: F["avg_pool"](x, 3, 2), [(1, 1, 7, 5)]),
    ("max_pool_overlap", lambda x: F["max_pool"](x, 2, 1), [(1, 1, 4, 4)]),
    ("bce_logits", lambda z, t: F["bce_logits"](z, t), [(3, 2), (3, 2)]),
    ("kl_normal", lambda a, b: F["kl_normal"](a, b), [(3, 2), (3, 2)]),
    ("index", lambda x: F["index"](x, [(1, None, 2), -1]), [(5, 3)]),
    ("stack_flatten", lambda a, b: F["flatten"](F["stack"]([a, b], 1)), [(2, 3), (2, 3)]),
    ("clip", lambda x: F["clip"](x, -0.5, 0.5), [(4, 4)]),
])
def test_composition_gradients(name, build, shapes):
    _fd_check(build, shapes)


def test_builtin_graphs_lint():
    from dslc.ir.graph import Graph
    zn, yn, img = inp("z", (B, 5)), inp("y", (B,), "i64"), inp("img", (B, 2, T, T))
    outs = {"ce": F["cross_entropy"](zn, yn), "mp": F["max_pool"](img, 2), "ap": F["avg_pool"](img, 3, 2),
            "c": F["conv"](img, inp("w", (4, 2, 3, 3)), padding="same"), "d": F["dropout"](zn, 0.5),
            "i": F["index"](img, [-1, None, (1, T - 1, None)])}
    outs["g"] = F["grad"](outs["ce"], zn)
    Graph(outs).lint()


# -- issue 13's built-ins: one table, each row checked four ways ------------------------------
# (a) the NumPy engine (float64) against a NumPy / numpy.linalg reference, (b) ONNX Runtime
# (float32) against it, (c) float64 finite differences of the gradient and (d) of the
# second derivative. Inputs: (shape, kind) with kind f (normal) | pos | nz | spd (symmetric
# positive definite, last two dims) | int:K (i64 in [0, K)).

def _new_vals(r, shape, kind):
    if kind == "pos":
        return r.uniform(0.5, 2.0, shape)
    if kind == "nz":
        return r.choice([-1.0, 1.0], shape) * r.uniform(0.3, 1.5, shape)
    if kind == "spd":
        a = r.standard_normal(shape)
        return a @ np.swapaxes(a, -1, -2) / shape[-1] + np.eye(shape[-1])
    if kind.startswith("int:"):
        return r.integers(0, int(kind[4:]), shape).astype(np.int64)
    return r.standard_normal(shape)


def _new_inputs(row, dtype, seed=0):
    r = np.random.default_rng(seed)
    nodes, feeds = [], {}
    for i, (shape, kind) in enumerate(row[2]):
        v = _new_vals(r, shape, kind)
        dt = "i64" if kind.startswith("int:") else dtype
        nodes.append(inp(f"x{i}", shape, dt))
        feeds[f"x{i}"] = v if dt == "i64" else v.astype(np.float64 if dtype == "f64" else np.float32)
    return nodes, feeds


NEW = [   # (id, build over nodes, inputs, reference over arrays)
    ("gather", lambda x, i: F["gather"](x, i), [((5, 3), "f"), ((2, 2), "int:5")], lambda x, i: x[i]),
    ("gather_axis", lambda x, i: F["gather"](x, i, axis=-1), [((2, 5), "f"), ((3,), "int:5")],
     lambda x, i: x[:, i]),
    ("index_tensor", lambda x, i: F["index"](x, [None, i]), [((2, 5, 3), "f"), ((4,), "int:5")],
     lambda x, i: x[:, i]),
    ("index_tensor_int", lambda x, i: F["index"](x, [1, None, i]), [((2, 3, 5), "f"), ((2, 2), "int:5")],
     lambda x, i: x[1, :, i]),
    ("index_tensor_slice", lambda x, i: F["index"](x, [i, (1, 3, None)]), [((5, 4), "f"), ((3,), "int:5")],
     lambda x, i: x[i, 1:3]),
    ("take_along_axis", lambda x, i: F["take_along_axis"](x, i, 1), [((3, 4), "f"), ((3, 6), "int:4")],
     lambda x, i: np.take_along_axis(x, i, 1)),
    ("take_along_axis_bcast", lambda x, i: F["take_along_axis"](x, i, 0), [((4, 3), "f"), ((2, 1), "int:4")],
     lambda x, i: np.take_along_axis(x, np.broadcast_to(i, (2, 3)), 0)),
    ("scatter_add", lambda x, i, u: F["scatter_add"](x, i, u), [((5, 3), "f"), ((4,), "int:5"), ((4, 3), "f")],
     lambda x, i, u: _np_add_at(x, (i,), u)),
    ("scatter_add_axis", lambda x, i, u: F["scatter_add"](x, i, u, axis=1),
     [((2, 4), "f"), ((2, 3), "int:4"), ((2, 2, 3), "f")], lambda x, i, u: _np_add_at(x, (slice(None), i), u)),
    # construction and scans
    ("arange", lambda x: F["add"](F["cast"](F["arange"](4), x.dtype), x), [((3, 4), "f")], lambda x: np.arange(4) + x),
    ("eye", lambda x: F["mul"](F["eye"](3, x.dtype), x), [((2, 3, 3), "f")], lambda x: np.eye(3) * x),
    ("diag", lambda v: F["diag"](v), [((2, 4), "f")], lambda v: v[..., None] * np.eye(4)),
    ("diagonal", lambda a: F["diagonal"](a), [((2, 3, 3), "f")], lambda a: np.diagonal(a, 0, -2, -1)),
    ("tril", lambda x: F["tril"](x), [((3, 4), "f")], np.tril),
    ("triu_k", lambda x: F["triu"](x, k=-1), [((2, 4, 3), "f")], lambda x: np.triu(x, -1)),
    ("cumsum", lambda x: F["cumsum"](x, -1), [((3, 4), "f")], lambda x: np.cumsum(x, -1)),
    ("cumsum_reverse", lambda x: F["cumsum"](x, 0, reverse=True), [((3, 4), "f")],
     lambda x: np.cumsum(x[::-1], 0)[::-1]),
    # einsum
    ("einsum_ellipsis_bcast", lambda a, b: F["einsum"]("...ij,...jk->...ik", a, b),
     [((2, 1, 3, 4), "f"), ((5, 4, 2), "f")], lambda a, b: np.einsum("...ij,...jk->...ik", a, b)),
    ("einsum_ellipsis_summed", lambda a: F["einsum"]("i...j->j", a), [((2, 3, 4, 2), "f")],
     lambda a: a.sum((0, 1, 2))),
    ("einsum_implicit", lambda a, b: F["einsum"]("kj, ji", a, b), [((2, 3), "f"), ((3, 4), "f")],
     lambda a, b: np.einsum("kj,ji", a, b)),
    ("einsum_implicit_ellipsis", lambda a: F["einsum"]("...ii", a), [((2, 3, 3), "f")],
     lambda a: np.einsum("...ii", a)),
    ("einsum_diag_times", lambda a, b: F["einsum"]("ii,i->i", a, b), [((3, 3), "f"), ((3,), "f")],
     lambda a, b: np.einsum("ii,i->i", a, b)),
    # linear algebra (also against numpy.linalg on ill-conditioned inputs: tests/test_linalg.py)
    ("cholesky", lambda a: F["cholesky"](a), [((2, 3, 3), "spd")], np.linalg.cholesky),
    ("solve_vector", lambda a, b: F["solve"](a, b), [((3, 3), "spd"), ((3,), "f")], np.linalg.solve),
    ("solve_matrix", lambda a, b: F["solve"](a, b), [((2, 3, 3), "spd"), ((3, 2), "f")], np.linalg.solve),
    ("solve_triangular", lambda a, b: F["solve_triangular"](a, b), [((3, 3), "spd"), ((3, 2), "f")],
     lambda a, b: np.linalg.solve(np.tril(a), b)),
    ("solve_triangular_upper", lambda a, b: F["solve_triangular"](a, b, lower=False),
     [((3, 3), "spd"), ((3,), "f")], lambda a, b: np.linalg.solve(np.triu(a), b)),
    ("inv", lambda a: F["inv"](a), [((2, 3, 3), "spd")], np.linalg.inv),
    ("det", lambda a: F["det"](a), [((3, 3), "spd")], np.linalg.det),
    ("logdet", lambda a: F["logdet"](a), [((2, 3, 3), "spd")], lambda a: np.linalg.slogdet(a)[1]),
    # elementwise
    ("erf", lambda x: F["erf"](x), [((3, 4), "f")], lambda x: _np_erf(x)),
    ("sin", lambda x: F["sin"](x), [((3, 4), "f")], np.sin),
    ("cos", lambda x: F["cos"](x), [((3, 4), "f")], np.cos),
    ("log1p", lambda x: F["log1p"](x), [((3, 4), "pos")], np.log1p),
    ("gelu", lambda x: F["gelu"](x), [((3, 4), "f")], lambda x: 0.5 * x * (1 + _np_erf(x / np.sqrt(2)))),
    ("leaky_relu", lambda x: F["leaky_relu"](x, alpha=0.2), [((3, 4), "nz")], lambda x: np.where(x > 0, x, 0.2 * x)),
    ("elu", lambda x: F["elu"](x), [((3, 4), "nz")], lambda x: np.where(x > 0, x, np.expm1(x))),
    ("silu", lambda x: F["silu"](x), [((3, 4), "f")], lambda x: x / (1 + np.exp(-x))),
    # reductions
    ("var", lambda x: F["var"](x, axis=1), [((3, 4), "f")], lambda x: np.var(x, 1)),
    ("var_unbiased", lambda x: F["var"](x, axis=[0, 2], keepdims=True, unbiased=True), [((3, 2, 4), "f")],
     lambda x: np.var(x, (0, 2), keepdims=True, ddof=1)),
    ("std", lambda x: F["std"](x), [((3, 4), "f")], np.std),
    ("std_unbiased", lambda x: F["std"](x, axis=0, unbiased=True), [((5, 2), "f")], lambda x: np.std(x, 0, ddof=1)),
    ("prod", lambda x: F["prod"](x, axis=-1), [((3, 4), "f")], lambda x: np.prod(x, -1)),
    ("prod_all", lambda x: F["prod"](x), [((2, 3), "nz")], np.prod),
    # shape
    ("pad", lambda x: F["pad"](x, [[1, 0], 2]), [((2, 3), "f")], lambda x: np.pad(x, [(1, 0), (2, 2)])),
    ("pad_value", lambda x: F["pad"](x, 1, value=-3.0), [((2, 3), "f")],
     lambda x: np.pad(x, 1, constant_values=-3.0)),
    ("tile", lambda x: F["tile"](x, [2, 3]), [((2, 3), "f")], lambda x: np.tile(x, [2, 3])),
    ("tile_more_reps", lambda x: F["tile"](x, [2, 1, 2]), [((3,), "f")], lambda x: np.tile(x, [2, 1, 2])),
    ("split", lambda x: F["concat"]([F["mul"](p, float(k + 1)) for k, p in enumerate(F["split"](x, [1, 3, 2], -1))], -1),
     [((2, 6), "f")], lambda x: np.concatenate([p * (k + 1) for k, p in enumerate(np.split(x, [1, 4], -1))], -1)),
    ("split_equal", lambda x: F["sub"](*F["split"](x, 2)), [((4, 3), "f")], lambda x: x[:2] - x[2:]),
]


def _np_erf(x):
    import math
    return np.vectorize(math.erf)(x)


def _np_add_at(x, where, u):
    out = x.copy()
    np.add.at(out, where, u)
    return out


def _new_graph(row, dtype):
    nodes, feeds = _new_inputs(row, dtype)
    return row[1](*nodes), nodes, feeds


@pytest.mark.parametrize("row", NEW, ids=[r[0] for r in NEW])
def test_new_builtin_values(row):
    y, nodes, feeds = _new_graph(row, "f64")
    want = row[3](*[feeds[n.attrs["name"]] for n in nodes])
    np.testing.assert_allclose(ev64(y, **feeds), want, rtol=1e-9, atol=1e-12)
    lower = pytest.importorskip("dslc.lower")
    ort = pytest.importorskip("onnxruntime")
    y, nodes, feeds = _new_graph(row, "f32")
    model = lower.lower_function({"y": y}, nodes)
    import onnx
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})[0]
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("row", NEW, ids=[r[0] for r in NEW])
def test_new_builtin_gradients(row):
    from dslc.autodiff import grad
    y, nodes, feeds = _new_graph(row, "f64")
    if y.dtype != "f64":
        return
    xs = [n for n in nodes if n.dtype == "f64"]
    r = np.random.default_rng(1)
    c = input_("c", TensorType("f64", y.shape))
    feeds["c"] = r.standard_normal(y.shape)
    f = F["sum"](F["mul"](y, c))
    gs = grad(f, xs)
    s = None
    for k, g in enumerate(gs):       # s = sum_k <c2_k, df/dx_k>: its gradient is the second derivative
        c2 = input_(f"c2_{k}", TensorType("f64", g.shape))
        feeds[f"c2_{k}"] = r.standard_normal(g.shape)
        t = F["sum"](F["mul"](g, c2))
        s = t if s is None else F["add"](s, t)
    g2 = grad(s, xs)
    got = evaluate({**{"g" + x.attrs["name"]: g for x, g in zip(xs, gs)},
                    **{"h" + x.attrs["name"]: g for x, g in zip(xs, g2)}}, feeds, dtype_override="f64")
    for x in xs:
        name = x.attrs["name"]
        for fn, key, tol in ((f, "g", 1e-5), (s, "h", 1e-4)):
            fd = np.zeros_like(feeds[name])
            for idx in np.ndindex(fd.shape):
                up, dn = feeds[name].copy(), feeds[name].copy()
                up[idx] += 1e-6
                dn[idx] -= 1e-6
                fd[idx] = (ev64(fn, **{**feeds, name: up}) - ev64(fn, **{**feeds, name: dn})) / 2e-6
            np.testing.assert_allclose(got[key + name], fd, rtol=tol, atol=tol,
                                       err_msg=f"{row[0]}: {'second' if key == 'h' else 'first'} derivative in {name}")


def test_indexing_errors():
    x, fi, i = inp("x", (5, 3)), inp("fi", (2,)), inp("i", (2,), "i64")
    with pytest.raises(SpecError, match=r"gather needs i64 indices, found f32\[2\] \(cast"):
        F["gather"](x, fi)
    with pytest.raises(SpecError, match=r"axis 2 is out of range of f32\[5, 3\]"):
        F["gather"](x, i, axis=2)
    with pytest.raises(SpecError, match=r"take_along_axis needs indices of the rank of f32\[5, 3\] \(2\)"):
        F["take_along_axis"](x, i, 0)
    with pytest.raises(SpecError, match=r"indices i64\[2, 2\] differ in axis 1"):
        F["take_along_axis"](x, inp("j", (2, 2), "i64"), 0)
    with pytest.raises(SpecError, match=r"needs updates of shape \[2, 3\], found f32\[2, 4\]"):
        F["scatter_add"](x, i, inp("u", (2, 4)))
    with pytest.raises(SpecError, match="several index tensors"):
        F["index"](x, [i, i])
    with pytest.raises(SpecError, match="bool mask"):
        F["index"](x, [inp("m", (5,), "bool")])
    with pytest.raises(SpecError, match=r"i64 indices, found f32\[2\]"):
        F["index"](x, [fi])


def test_tensor_index_in_a_spec():
    from dslc import api
    prog = api.parse("model m {\n    input x: f32[B, 5]\n    input i: i64[3]\n    param W: [7, 5] ~ zeros\n"
                     "    output y = W[i] + x[:, i][0:3, 0:1]\n    output z = scatter_add(W, i, x[0:3])\n}\n",
                     filename="t.dl")
    import dslc
    m = dslc.compile(prog, "m")
    import onnxruntime as ort
    sess = ort.InferenceSession(m.inference.SerializeToString(), providers=["CPUExecutionProvider"])
    xv = rng.standard_normal((4, 5)).astype(np.float32)
    iv = np.array([1, 1, 4])
    y, z = sess.run(["y", "z"], {"x": xv, "i": iv})
    np.testing.assert_allclose(y, np.zeros((3, 5)) + xv[:, iv][0:3, 0:1], rtol=1e-6)
    want = np.zeros((7, 5), np.float32)
    np.add.at(want, iv, xv[:3])
    np.testing.assert_allclose(z, want, rtol=1e-6)
    with pytest.raises(SpecError) as e:
        api.parse("model m {\n    input x: f32[B, 5]\n    input t: f32[3]\n    output y = x[:, t]\n}\n",
                  filename="bad.dl")
    assert (e.value.line, e.value.column) == (4, 16) and "i64 indices" in e.value.message, e.value.format()


def test_construction_with_symbolic_sizes_in_a_spec():
    import dslc
    import onnxruntime as ort
    from dslc import api
    prog = api.parse("model m {\n    input x: f32[T, 3]\n    output p = cast(arange(T), \"f32\")\n"
                     "    output c = tril(ones([T, T])) @ x - cumsum(x, 0)\n"
                     "    output d = diagonal(eye(T) * 2.0 + diag(p))\n}\n", filename="t.dl")
    m = dslc.compile(prog, "m")
    sess = ort.InferenceSession(m.inference.SerializeToString(), providers=["CPUExecutionProvider"])
    xv = rng.standard_normal((5, 3)).astype(np.float32)
    p, c, d = sess.run(["p", "c", "d"], {"x": xv})
    np.testing.assert_array_equal(p, np.arange(5))
    np.testing.assert_allclose(c, 0, atol=1e-5)
    np.testing.assert_array_equal(d, 2.0 + np.arange(5))


def test_construction_errors():
    with pytest.raises(SpecError, match=r"diagonal needs square matrices \[..., n, n\], found f32\[3, 4\]"):
        F["diagonal"](inp("a", (3, 4)))
    with pytest.raises(SpecError, match=r"tril needs a matrix \(rank >= 2\), found f32\[3\]"):
        F["tril"](inp("v", (3,)))
    with pytest.raises(SpecError, match=r"cumsum: axis 2 is out of range"):
        F["cumsum"](inp("v", (3, 2)), 2)
    with pytest.raises(SpecError, match="arange needs a size n >= 0"):
        F["arange"](-1)
    with pytest.raises(SpecError, match=r"diag needs a vector"):
        F["diag"](1.0)


def test_log1p_is_accurate_and_elu_grad_is_finite_in_onnx():
    import onnxruntime as ort
    from dslc.autodiff import grad
    from dslc.lower import lower_function
    x = inp("x", (5,))
    outs = {"l": F["log1p"](x), "g": grad(F["sum"](F["elu"](x)), [x])[0]}
    sess = ort.InferenceSession(lower_function(outs, [x]).SerializeToString(), providers=["CPUExecutionProvider"])
    xv = np.array([1e-10, -1e-7, 3e-4, 100.0, 1e3], np.float32)
    lv, gv = sess.run(["l", "g"], {"x": xv})
    np.testing.assert_allclose(lv, np.log1p(xv.astype(np.float64)), rtol=1e-6)
    assert np.all(np.isfinite(gv))
    np.testing.assert_allclose(gv, [1, np.exp(-1e-7), 1, 1, 1], rtol=1e-6)


def test_more_builtins_in_a_spec_and_errors():
    import dslc
    from dslc import api
    prog = api.parse("model m {\n    input x: f32[B, 6]\n    a, b = split(x, 2, -1)\n"
                     "    h, t = split(x, [1, 5], axis = 1)\n"
                     "    output y = a * b + sum(t, axis = -1, keepdims = true) * h\n}\n", filename="t.dl")
    m = dslc.compile(prog, "m")
    import onnxruntime as ort
    sess = ort.InferenceSession(m.inference.SerializeToString(), providers=["CPUExecutionProvider"])
    xv = rng.standard_normal((2, 6)).astype(np.float32)
    (y,) = sess.run(["y"], {"x": xv})
    np.testing.assert_allclose(y, xv[:, :3] * xv[:, 3:] + xv[:, 1:].sum(-1, keepdims=True) * xv[:, :1], rtol=1e-5)
    x = inp("x", (4, 6))
    with pytest.raises(SpecError, match=r"cannot split axis 0 of f32\[4, 6\] into 3 equal parts"):
        F["split"](x, 3)
    with pytest.raises(SpecError, match=r"split sizes \[1, 2\] do not add up to axis 1"):
        F["split"](x, [1, 2], 1)
    with pytest.raises(SpecError, match=r"pad of f32\[4, 6\] needs 2 widths"):
        F["pad"](x, [1, 2, 3])
    with pytest.raises(SpecError, match="non-negative integers"):
        F["pad"](x, [1, -2])
    with pytest.raises(SpecError, match="positive integer repeat counts"):
        F["tile"](x, [0, 2])
    with pytest.raises(SpecError, match=r"var needs a float tensor, found i64\[3\]"):
        F["var"](inp("k", (3,), "i64"))
    with pytest.raises(SpecError, match=r"gelu needs a float tensor"):
        F["gelu"](inp("k", (3,), "i64"))


def test_issue13_names_are_builtins():
    names = """gather take_along_axis scatter_add one_hot arange eye diag diagonal tril triu cumsum
    erf sin cos log1p gelu leaky_relu elu silu var std prod pad tile split""".split()
    assert not [n for n in names if n not in BUILTINS]
    assert BUILTINS["var"].keywords == {"axis": None, "keepdims": False, "unbiased": False}
    assert BUILTINS["leaky_relu"].keywords == {"alpha": 0.01}


def test_einsum_errors():
    a, b = inp("a", (3, 4)), inp("b", (5, 2))
    for spec, args, msg in [
        ("ij,jk->ik", (a, b), r"letter `j` is 4 in operand 1 and 5 in operand 2"),
        ("ij,jk->ik", (a,), r"has 2 operand subscripts, found 1 tensors"),
        ("ijk->i", (a,), r"subscripts `ijk` name 3 axes, but operand 1 is f32\[3, 4\]"),
        ("ij->iz", (a,), r"output letter `z` is in no operand"),
        ("ij->ii", (a,), r"the output repeats a letter"),
        ("i1->i", (a,), r"has '1': subscripts are letters"),
        ("ij->i->j", (a,), r"more than one `->`"),
        ("ij->...", (a,), r"the output has `...` but no operand does"),
        ("...i,...i->...", (a, inp("c", (2, 4))), r"cannot broadcast the `...` axes of \[3\] and \[2\]"),
    ]:
        with pytest.raises(SpecError, match=msg):
            F["einsum"](spec, *args)
    with pytest.raises(SpecError, match=r"einsum needs number tensors"):
        F["einsum"]("i->i", inp("m", (3,), "bool"))
    from dslc import api
    with pytest.raises(SpecError) as e:
        api.parse('model m {\n    input x: f32[B, 5]\n    output y = einsum("bi,ij->bj", x, x)\n}\n', filename="bad.dl")
    assert (e.value.line, e.value.column) == (3, 16) and "letter `i`" in e.value.message, e.value.format()


def test_einsum_in_a_spec():
    import dslc
    import onnxruntime as ort
    from dslc import api
    prog = api.parse('model m {\n    input q: f32[B, T, 4]\n    input k: f32[B, T, 4]\n'
                     '    output s = einsum("btd,bsd->bts", q, k)\n}\n', filename="t.dl")
    m = dslc.compile(prog, "m")
    sess = ort.InferenceSession(m.inference.SerializeToString(), providers=["CPUExecutionProvider"])
    qv, kv = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 3, 4)).astype(np.float32)
    (s,) = sess.run(["s"], {"q": qv, "k": kv})
    np.testing.assert_allclose(s, qv @ kv.transpose(0, 2, 1), rtol=1e-5, atol=1e-6)


TREE = """
layer compose(buf: [N, d], o: [3]) {
    param W: [2 * d, d] ~ glorot_uniform
    kids = gather(buf, o[1:3])
    h = tanh(concat([kids[0:1], kids[1:2]], axis = -1) @ W)
    return scatter_add(buf, o[0:1], h)
}

model tree {
    input leaves: f32[7, 4]
    input order: i64[T, 3]
    bufs = scan(compose, order, leaves)
    loss = sum(bufs[-1][6] * bufs[-1][6])
}
"""


def test_gather_and_scatter_add_inside_a_scan():
    """A recursive network's node buffer read with gather and written with scatter_add,
    along a topological order in a scan (notes §8.1): gradient vs FD, ONNX vs NumPy."""
    from dslc import api
    from dslc.autodiff import grad
    from dslc.init import initial_value
    m = api.parse(TREE, filename="tree.dl").models["tree"]
    loss, W = m.losses["loss"].node, m.params["bufs.W"]
    leaves = np.zeros((7, 4))
    leaves[:4] = rng.standard_normal((4, 4))
    feeds = {"leaves": leaves, "order": np.array([[4, 0, 1], [5, 2, 3], [6, 4, 5]]),
             "bufs.W": initial_value(W.attrs["init"], W.shape, "f32", 0, "bufs.W").astype(np.float64)}
    (gw,) = grad(loss, [W])
    got = ev64(gw, **feeds)
    fd = np.zeros_like(got)
    for idx in np.ndindex(fd.shape):
        up, dn = feeds["bufs.W"].copy(), feeds["bufs.W"].copy()
        up[idx] += 1e-6
        dn[idx] -= 1e-6
        fd[idx] = (ev64(loss, **{**feeds, "bufs.W": up}) - ev64(loss, **{**feeds, "bufs.W": dn})) / 2e-6
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)
    from dslc.lower import lower_function
    import onnxruntime as ort
    ins = [m.inputs["leaves"], m.inputs["order"], W]
    sess = ort.InferenceSession(lower_function({"l": loss, "g": gw}, ins).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    lo, go = sess.run(["l", "g"], {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in feeds.items()})
    np.testing.assert_allclose(lo, ev64(loss, **feeds), rtol=1e-5)
    np.testing.assert_allclose(go, got, rtol=1e-4, atol=1e-6)


def test_negative_indices_count_from_the_end():
    import onnxruntime as ort
    from dslc.autodiff import grad
    from dslc.lower import lower_function
    x, i, t = inp("x", (5, 3)), inp("i", (4,), "i64"), inp("t", (5, 2), "i64")
    y, z = F["gather"](x, i), F["take_along_axis"](x, t, 1)
    (g,) = grad(F["add"](F["sum"](F["mul"](y, y)), F["sum"](F["mul"](z, z))), [x])
    feeds = {"x": rng.standard_normal((5, 3)).astype(np.float32), "i": np.array([-1, 0, -5, 4]),
             "t": np.array([[-1, 0]] * 5)}
    sess = ort.InferenceSession(lower_function({"y": y, "g": g}, [x, i, t]).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    yo, go = sess.run(["y", "g"], feeds)
    np.testing.assert_array_equal(yo, feeds["x"][feeds["i"]])
    want = 2 * feeds["x"] * (np.bincount(feeds["i"] % 5, minlength=5)[:, None] + (np.arange(3) % 3 == 2) + (np.arange(3) == 0))
    np.testing.assert_allclose(go, want, rtol=1e-6)


def test_prod_gradient_is_exact_with_zeros():
    from dslc.autodiff import grad
    x = inp("x", (3, 4), "f64")
    xv = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 3.0, 4.0], [0.0, 2.0, 0.0, 4.0]])
    (g,) = grad(F["sum"](F["prod"](x, axis=-1)), [x])
    want = np.array([[np.prod(np.delete(r, i)) for i in range(4)] for r in xv])
    np.testing.assert_array_equal(ev64(g, x=xv), want)


@pytest.mark.parametrize("windows, split", [
    (((0, 2), (2, 5), (5, 6)), True),            # tiles axis 1 of [B, 6]: one Split
    (((0, 2), (2, 5), (0, 2), (5, 6)), True),    # a window taken twice reads the same part
    (((0, 2), (3, 6)), False),                   # a gap: Slices
    (((0, 3), (2, 6)), False),                   # an overlap: Slices
])
def test_slices_that_tile_an_axis_lower_as_one_split(windows, split):
    import onnxruntime as ort
    from dslc.lower import lower_function
    from dslc.ops.shape import slice_axis
    x = inp("x", (B, 6))
    outs = {f"y{k}": slice_axis(x, 1, a, e) for k, (a, e) in enumerate(windows)}
    model = lower_function(outs, [x])
    ops = [n.op_type for n in model.graph.node]
    assert (ops.count("Split"), ops.count("Slice")) == ((1, 0) if split else (0, len(windows)))
    xv = rng.standard_normal((3, 6)).astype(np.float32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": xv})
    for (a, e), g in zip(windows, got):
        np.testing.assert_array_equal(g, xv[:, a:e])
