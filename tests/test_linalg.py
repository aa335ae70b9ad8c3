"""Linear algebra (dslc/ops/linalg.py, builtins_linalg.py) beyond the table rows:
the ONNX Loop lowering (large or symbolic n), accuracy against numpy.linalg on
well- and ill-conditioned SPD matrices, pivoting, NaN on bad input, errors,
and a training graph that uses logdet and solve."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import dslc
from dslc import api
from dslc.autodiff import grad
from dslc.errors import SpecError
from dslc.evaluate import evaluate
from dslc.ir import Sym, TensorType
from dslc.lower import lower_function
from dslc.ops import linalg
from dslc.ops.builtins import BUILTINS as F
from dslc.ops.leaves import input_

rng = np.random.default_rng(0)


def inp(name, shape, dtype="f64"):
    return input_(name, TensorType(dtype, tuple(shape)))


def run_ort(outputs, inputs, feeds):
    model = lower_function(outputs, inputs)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()}))), model


def spd(n, cond, batch=(), r=rng):
    """SPD matrices with eigenvalues log-spaced from 1 to 1/cond (condition number cond)."""
    q, _ = np.linalg.qr(r.standard_normal(batch + (n, n)))
    lam = np.logspace(0, -np.log10(cond), n)
    return (q * lam[..., None, :]) @ np.swapaxes(q, -1, -2)


def _all(a, b):
    return {"chol": F["cholesky"](a), "solve": F["solve"](a, b), "inv": F["inv"](a),
            "logdet": F["logdet"](a), "det": F["det"](a), "tri": F["solve_triangular"](F["cholesky"](a), b)}


def _ref(av, bv):
    lv = np.linalg.cholesky(av)
    return {"chol": lv, "solve": np.linalg.solve(av, bv), "inv": np.linalg.inv(av),
            "logdet": np.linalg.slogdet(av)[1], "det": np.linalg.det(av), "tri": np.linalg.solve(lv, bv)}


@pytest.mark.parametrize("how", ["unrolled", "loop"])
def test_loop_and_unrolled_lowerings_agree_with_numpy(how, monkeypatch):
    if how == "loop":
        monkeypatch.setattr(linalg, "UNROLL_MAX", 0)
    a, b = inp("a", (2, 5, 5)), inp("b", (5, 3))
    outs = _all(a, b)
    f = F["sum"](F["mul"](outs["solve"], outs["solve"])) + F["sum"](F["logdet"](a))
    outs["grad_a"], outs["grad_b"] = grad(f, [a, b])
    av, bv = spd(5, 10.0, (2,)) + 0.1 * np.eye(5), rng.standard_normal((5, 3))
    got, model = run_ort(outs, [a, b], {"a": av, "b": bv})
    loops = sum(n.op_type == "Loop" for n in model.graph.node)
    assert (loops > 0) == (how == "loop")
    want = evaluate(outs, {"a": av, "b": bv})
    for k, v in _ref(av, bv).items():
        np.testing.assert_allclose(got[k], v, rtol=1e-10, atol=1e-12, err_msg=k)
    for k in ("grad_a", "grad_b"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-11, err_msg=k)


def test_symbolic_size_runs_in_a_loop():
    prog = api.parse("model m {\n    input A: f64[N, N]\n    input b: f64[N]\n"
                     "    output x = solve(A, b)\n    output l = logdet(A)\n"
                     "    output L = cholesky(A)\n}\n", filename="t.dl")
    m = dslc.compile(prog, "m")
    onnx.checker.check_model(m.inference, full_check=True)
    assert any(n.op_type == "Loop" for n in m.inference.graph.node)
    sess = ort.InferenceSession(m.inference.SerializeToString(), providers=["CPUExecutionProvider"])
    for n in (3, 20):
        av, bv = spd(n, 100.0), rng.standard_normal(n)
        x, l, L = sess.run(["x", "l", "L"], {"A": av, "b": bv})
        np.testing.assert_allclose(x, np.linalg.solve(av, bv), rtol=1e-9)
        np.testing.assert_allclose(l, np.linalg.slogdet(av)[1], rtol=1e-10)
        np.testing.assert_allclose(L, np.linalg.cholesky(av), rtol=1e-10, atol=1e-13)


def errors_vs_condition(dtype, conds=(1e0, 1e2, 1e4, 1e6), n=8, seed=1):
    """Relative errors of the ONNX lowering (dtype) against numpy.linalg in float64."""
    r = np.random.default_rng(seed)
    a, b = inp("a", (n, n), dtype), inp("b", (n, 2), dtype)
    outs = _all(a, b)
    model = lower_function(outs, [a, b])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    npdt = np.float32 if dtype == "f32" else np.float64
    rows = []
    for cond in conds:
        av = spd(n, cond, r=r)
        bv = r.standard_normal((n, 2))
        av_in = av.astype(npdt)
        ref = _ref(av_in.astype(np.float64), bv.astype(npdt).astype(np.float64))
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"a": av_in, "b": bv.astype(npdt)})))
        err = {k: float(np.linalg.norm(got[k] - ref[k]) / np.linalg.norm(ref[k])) for k in ref if k != "logdet"}
        err["logdet"] = float(abs(got["logdet"] - ref["logdet"]))            # absolute: log det can be 0
        rows.append((cond, err))
    return rows


@pytest.mark.parametrize("dtype", ["f64", "f32"])
def test_accuracy_against_numpy_linalg_by_condition_number(dtype):
    eps = np.finfo(np.float32 if dtype == "f32" else np.float64).eps
    for cond, err in errors_vs_condition(dtype):
        # backward-stable algorithms: forward errors grow like cond * eps (Cholesky factor: sqrt(cond))
        for k, e in err.items():
            bound = 50 * eps * (np.sqrt(cond) if k == "chol" else cond) * (8 if k == "logdet" else 1)
            assert e <= max(bound, 50 * eps), f"{dtype} {k} at cond {cond:g}: error {e:.2e} > {bound:.2e}"


def test_pivoting_and_failures():
    a, b = inp("a", (3, 3)), inp("b", (3,))
    perm = np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]])     # no pivot-free elimination exists
    bv = np.array([1.0, 2.0, 3.0])
    got, _ = run_ort({"x": F["solve"](a, b), "i": F["inv"](a), "d": F["det"](a)}, [a, b], {"a": perm, "b": bv})
    np.testing.assert_allclose(got["x"], np.linalg.solve(perm, bv))
    np.testing.assert_allclose(got["i"], perm.T)
    np.testing.assert_allclose(got["d"], 1.0)
    # not positive definite: NaN from both engines, no exception
    indef = np.diag([1.0, -1.0, 2.0])
    outs = {"L": F["cholesky"](a), "l": F["logdet"](a)}
    for vals in (run_ort(outs, [a], {"a": indef})[0], evaluate(outs, {"a": indef})):
        assert np.isnan(vals["l"]) and np.isnan(vals["L"]).any()
    sing = np.ones((3, 3))
    for vals in (run_ort({"x": F["solve"](a, b)}, [a, b], {"a": sing, "b": bv})[0],
                 evaluate({"x": F["solve"](a, b)}, {"a": sing, "b": bv})):
        assert not np.isfinite(vals["x"]).all()


def test_linalg_errors():
    with pytest.raises(SpecError, match=r"cholesky needs square matrices \[..., n, n\], found f32\[3, 4\]"):
        F["cholesky"](inp("a", (3, 4), "f32"))
    with pytest.raises(SpecError, match=r"logdet needs a float matrix, found i64\[3, 3\]"):
        F["logdet"](inp("k", (3, 3), "i64"))
    with pytest.raises(SpecError, match=r"solve of f64\[3, 3\] needs a right-hand side of 3 rows, found f64\[4\]"):
        F["solve"](inp("a", (3, 3)), inp("b", (4,)))
    with pytest.raises(SpecError, match=r"needs a right-hand side \[..., 3, m\] or \[3\], found f64\[2, 4, 2\]"):
        F["solve"](inp("a", (3, 3)), inp("b", (2, 4, 2)))
    with pytest.raises(SpecError, match=r"cannot solve f64\[3, 3\] and f32\[3\]: dtypes differ"):
        F["solve"](inp("a", (3, 3)), inp("b", (3,), "f32"))
    with pytest.raises(SpecError) as e:
        api.parse("model m {\n    input x: f32[B, 5]\n    output d = det(x)\n}\n", filename="bad.dl")
    assert (e.value.line, e.value.column) == (3, 16) and "square matrices" in e.value.message, e.value.format()


def test_gaussian_maximum_likelihood_trains():
    """Fit a full-covariance Gaussian by gradient on -log N(x; mu, S), S = L Lᵀ + eps I:
    logdet and solve inside the training graph, on stock ONNX Runtime."""
    text = """
model gauss {
    input x: f32[B, 3]
    param mu: [3] ~ zeros
    param W: [3, 3] ~ normal(0.5)
    S = W @ transpose(W) + 0.01 * eye(3)
    d = x - mu
    z = transpose(solve(S, transpose(d)))
    loss = 0.5 * logdet(S) + 0.5 * mean(sum(d * z, axis = -1))
}
train gauss {
    data = "none.npz"
    optimizer = adam(lr = 0.05)
    batch = 256
    epochs = 1
}
"""
    m = dslc.compile(api.parse(text, filename="gauss.dl"), "gauss")
    onnx.checker.check_model(m.training, full_check=True)
    true_cov = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.7]])
    x = rng.multivariate_normal([1.0, -1.0, 0.5], true_cov, size=4096).astype(np.float32)
    tr = dslc.Trainer(m, device="cpu")
    first = tr.evaluate({"x": x})["loss"]
    tr.fit({"x": x}, epochs=40)
    last = tr.evaluate({"x": x})["loss"]
    want = 0.5 * np.linalg.slogdet(np.cov(x.T, bias=True))[1] + 1.5     # the minimum: the sample Gaussian
    assert last < first and abs(last - want) < 0.01, (first, last, want)
