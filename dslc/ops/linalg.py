"""Linear-algebra primitives (linalg family), batched over leading dims:

  cholesky(A)          L lower triangular with L Lᵀ = A (A SPD; reads A's lower triangle)
  trisolve(T, B; lower) X with T X = B, T triangular (reads T's lower / upper triangle)
  solve(A, B)          X with A X = B (Gauss-Jordan with partial pivoting)
  det(A)               det A (ONNX Det)

Standard ONNX has no Cholesky or Solve, so they lower to standard ops, one
column (or row) per step: unrolled when n is a known number <= UNROLL_MAX,
otherwise one ONNX `Loop` whose body is the same step (`column_loop`).
Failures are NaN, never an exception: a non-SPD matrix has no real Cholesky
factor (sqrt of a negative pivot), a singular one no solve (division by a
zero pivot). Gradients (every order, as IR):
  dL = L Φ(L⁻¹ dA L⁻ᵀ)  =>  Ā = Φ(S + Sᵀ), S = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹     (Φ: lower triangle, diagonal halved)
  X = T⁻¹ B            =>  B̄ = T⁻ᵀ X̄,  T̄ = -tri(B̄ Xᵀ)
  X = A⁻¹ B            =>  B̄ = A⁻ᵀ X̄,  Ā = -B̄ Xᵀ
  d det A = det A tr(A⁻¹ dA)  =>  Ā = ḡ det A A⁻ᵀ
"""
from __future__ import annotations

import numpy as np
from onnx import helper

from ..ir.dims import show
from ..ir.node import ShapeError, apply as P
from ..ir.types import TensorType
from .registry import broadcast_shapes, primitive

UNROLL_MAX = 16     # a known n up to this is unrolled; larger or symbolic n runs in an ONNX Loop


# -- shape rules -----------------------------------------------------------------
def _square(t: TensorType, what: str):
    if t.dtype not in ("f32", "f64"):
        raise ShapeError(f"{what} needs a float matrix, found {t}")
    if t.rank < 2 or t.shape[-1] != t.shape[-2]:
        raise ShapeError(f"{what} needs square matrices [..., n, n], found {t}")


def _same_shape(types):
    _square(types[0], "cholesky")
    return types[0]


def _solve_shape(what):
    def rule(types, **_):
        a, b = types
        _square(a, what)
        if b.dtype != a.dtype:
            raise ShapeError(f"{what} of {a} and {b}: dtypes differ")
        if b.rank < 2 or b.shape[-2] != a.shape[-1]:
            raise ShapeError(f"{what} of {a} needs a right-hand side [..., {show(a.shape[-1])}, m], found {b}")
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2], what=f"{what} batches of")
        return a.with_shape(batch + b.shape[-2:])
    return rule


def _det_shape(types):
    _square(types[0], "det")
    return types[0].with_shape(types[0].shape[:-2])


# -- IR helpers for the gradient rules ----------------------------------------------
def mT(x):
    """the transpose of the last two axes"""
    return P("transpose", x, perm=tuple(range(x.rank - 2)) + (x.rank - 1, x.rank - 2))


def _phi(m):
    # Φ(M): the lower triangle with the diagonal halved = (tril(M) + tril(M, -1)) / 2
    return 0.5 * (P("trilu", m, k=0, upper=False) + P("trilu", m, k=-1, upper=False))


def _eye_like(a):
    n = a.shape[-1]
    r = P("range", n=n, dtype="i64")
    return P("cast", P("eq", P("unsqueeze", r, axes=(1,)), P("unsqueeze", r, axes=(0,))), dtype=a.dtype)


def _cholesky_vjp(g, L, a):
    p = _phi(mT(L) @ g)                                             # Φ(Lᵀ L̄)
    y = P("trisolve", mT(L), p, lower=False)                        # L⁻ᵀ Φ(Lᵀ L̄)
    s = mT(P("trisolve", mT(L), mT(y), lower=False))                # (L⁻ᵀ Yᵀ)ᵀ = Y L⁻¹
    return (_phi(s + mT(s)),)


def _trisolve_vjp(g, x, t, b, lower):
    gb = P("trisolve", mT(t), g, lower=not lower)                   # T⁻ᵀ X̄
    gt = P("trilu", -(gb @ mT(x)), k=0, upper=not lower)            # -B̄ Xᵀ on the triangle read
    return gt, gb


def _solve_vjp(g, x, a, b):
    gb = P("solve", mT(a), g)                                       # A⁻ᵀ X̄
    return -(gb @ mT(x)), gb


def _det_vjp(g, d, a):
    inv_t = mT(P("solve", a, P("expand", _eye_like(a), shape=a.shape)))
    return (P("unsqueeze", g * d, axes=(d.rank, d.rank + 1)) * inv_t,)


# -- NumPy references (NaN where LAPACK gives up, as the lowering does) ---------------
def _nan_on_failure(fn):
    def run(*xs):
        try:
            return fn(*xs)
        except np.linalg.LinAlgError:
            shape = np.broadcast_shapes(*(x.shape[:-2] for x in xs))
            out = []
            for idx in np.ndindex(shape):
                parts = [np.broadcast_to(x, shape + x.shape[-2:])[idx] for x in xs]
                try:
                    out.append(fn(*parts))
                except np.linalg.LinAlgError:
                    out.append(np.full_like(fn(*[np.eye(p.shape[-2], p.shape[-1]) for p in parts]), np.nan))
            return np.stack(out).reshape(shape + out[0].shape)
    return run


def _np_trisolve(t, b, lower):
    tri = np.tril(t) if lower else np.triu(t)
    return _nan_on_failure(np.linalg.solve)(tri, b)


# -- lowering: one step per column, unrolled or in a Loop -------------------------------
def column_loop(b, n, states: list[str], types: list[TensorType], step) -> list[str]:
    """states after `states = step(b, k, states)` for k = 0, ..., n-1 (k an int64 scalar)."""
    if isinstance(n, int) and n <= UNROLL_MAX:
        for k in range(n):
            states = step(b, b.scalar(k, "i64"), states)
        return states
    from ..lower.driver import value_info
    sub = b.child()
    it, cond = sub.fresh("iter"), sub.fresh("cond")
    ins = [sub.fresh("carry") for _ in states]
    outs = step(sub, it, ins)
    cond_out = sub.Identity(cond)
    finals = [sub.Identity(o) for o in outs]
    body = helper.make_graph(
        sub.nodes, "columns",
        inputs=[value_info(it, TensorType("i64", ())), value_info(cond, TensorType("bool", ()))]
        + [value_info(nm, t) for nm, t in zip(ins, types)],
        outputs=[value_info(cond_out, TensorType("bool", ()))] + [value_info(nm, t) for nm, t in zip(finals, types)])
    trips = b.Squeeze(b.dim(n), b.ints([0]))
    res = b.op("Loop", trips, "", *states, body=body, _outputs=len(states))
    return res if len(states) > 1 else [res]


def _common(b, n, dt):
    r = b.Range(b.scalar(0, "i64"), b.Squeeze(b.dim(n), b.ints([0])), b.scalar(1, "i64"))
    return r, b.scalar(0.0, dt), b.scalar(1.0, dt)


def _zeros(b, shape, dt):
    return b.ConstantOfShape(b.dims(shape), value=b.tensor([0.0], dt))


def _cholesky_onnx(b, a):
    # left-looking: column j of L is v / sqrt(v_j) on rows i >= j, v = A[:, j] - L L[j, :]ᵀ
    t = b.node.type
    n, dt = t.shape[-1], t.dtype
    r, zero, _ = _common(b, n, dt)
    neg1 = b.ints([-1])

    def step(s, j, states):
        (L,) = states
        lrow = s.Unsqueeze(s.Gather(L, j, axis=-2), neg1)                  # [..., n, 1]
        v = s.Sub(s.Gather(a, j, axis=-1), s.Squeeze(s.MatMul(L, lrow), neg1))
        d = s.Sqrt(s.Unsqueeze(s.Gather(v, j, axis=-1), neg1))              # [..., 1]
        col = s.Where(s.GreaterOrEqual(r, j), s.Div(v, d), zero)           # rows >= j
        ej = s.Cast(s.Equal(r, j), to=b.onnx_dtype(dt))
        return [s.Add(L, s.Mul(s.Unsqueeze(col, neg1), ej))]
    return column_loop(b, n, [_zeros(b, t.shape, dt)], [t], step)[0]


def _trisolve_onnx(b, tm, bm, lower):
    # forward (lower) or backward (upper) substitution, one row of X per step:
    # x_i = (b_i - T[i, :] X) / T[i, i], the rows of X not yet solved being 0
    t = b.node.type
    n, dt = t.shape[-2], t.dtype
    r, _, _ = _common(b, n, dt)
    neg1, neg2 = b.ints([-1]), b.ints([-2])
    last = b.Sub(b.Squeeze(b.dim(n), b.ints([0])), b.scalar(1, "i64"))

    def step(s, k, states):
        (X,) = states
        i = k if lower else s.Sub(last, k)
        trow = s.Gather(tm, i, axis=-2)                                     # [..., n]
        tii = s.Unsqueeze(s.Gather(trow, i, axis=-1), neg1)                 # [..., 1]
        acc = s.Squeeze(s.MatMul(s.Unsqueeze(trow, neg2), X), neg2)         # [..., m]
        x = s.Div(s.Sub(s.Gather(bm, i, axis=-2), acc), tii)
        ei = s.Unsqueeze(s.Cast(s.Equal(r, i), to=b.onnx_dtype(dt)), neg1)  # [n, 1]
        return [s.Add(X, s.Mul(ei, s.Unsqueeze(x, neg2)))]
    return column_loop(b, n, [_zeros(b, t.shape, dt)], [t], step)[0]


def _solve_onnx(b, am, bm):
    # Gauss-Jordan with partial pivoting on [A | B]: at step k swap row k with the row
    # p >= k of largest |A[p, k]|, scale it by 1/A[k, k] and clear column k elsewhere.
    t = b.node.type
    n, dt = t.shape[-2], t.dtype
    r, zero, one = _common(b, n, dt)
    neg1, neg2 = b.ints([-1]), b.ints([-2])
    mt = t.with_shape(t.shape[:-2] + (n, n))
    m0 = b.Expand(am, b.dims(mt.shape))
    x0 = b.Expand(bm, b.dims(t.shape))
    to = b.onnx_dtype(dt)

    def step(s, k, states):
        m, x = states
        col = s.Gather(m, k, axis=-1)                                       # [..., n]
        score = s.Where(s.GreaterOrEqual(r, k), s.Abs(col), s.Neg(one))
        p = s.ArgMax(score, axis=-1, keepdims=1)                            # [..., 1]
        ek, ep = s.Cast(s.Equal(r, k), to=to), s.Cast(s.Equal(r, p), to=to)  # [n], [..., n]
        swap = s.Unsqueeze(s.Sub(ek, ep), neg1)                             # e_k - e_p, [..., n, 1]
        epr = s.Unsqueeze(ep, neg2)                                         # [..., 1, n]

        def swapped(z):                 # z + (e_k - e_p)(z[p] - z[k]): rows k and p exchanged
            zk = s.Unsqueeze(s.Gather(z, k, axis=-2), neg2)
            return s.Add(z, s.Mul(swap, s.Sub(s.MatMul(epr, z), zk)))
        m, x = swapped(m), swapped(x)
        mrow = s.Gather(m, k, axis=-2)                                      # pivot row, [..., n]
        piv = s.Unsqueeze(s.Gather(mrow, k, axis=-1), neg1)                 # [..., 1]
        col = s.Gather(m, k, axis=-1)
        f = s.Where(s.Equal(r, k), s.Sub(one, s.Div(one, piv)), s.Div(col, piv))
        f = s.Unsqueeze(f, neg1)                                            # [..., n, 1]
        xrow = s.Gather(x, k, axis=-2)
        return [s.Sub(m, s.Mul(f, s.Unsqueeze(mrow, neg2))), s.Sub(x, s.Mul(f, s.Unsqueeze(xrow, neg2)))]
    del zero
    return column_loop(b, n, [m0, x0], [mt, t], step)[1]


def _det_onnx(b, a):
    # ONNX Det where ONNX Runtime has a kernel (float); otherwise (double) the product of the
    # pivots of Gauss-Jordan elimination with partial pivoting, negated at each row swap
    t = b.node.inputs[0].type
    if t.dtype == "f32":
        return b.Det(a)
    n, dt = t.shape[-1], t.dtype
    r, zero, one = _common(b, n, dt)
    neg1, neg2 = b.ints([-1]), b.ints([-2])
    to = b.onnx_dtype(dt)

    def step(s, k, states):
        m, d = states
        col = s.Gather(m, k, axis=-1)
        p = s.ArgMax(s.Where(s.GreaterOrEqual(r, k), s.Abs(col), s.Neg(one)), axis=-1, keepdims=1)
        ek, ep = s.Cast(s.Equal(r, k), to=to), s.Cast(s.Equal(r, p), to=to)
        zk = s.Unsqueeze(s.Gather(m, k, axis=-2), neg2)
        m = s.Add(m, s.Mul(s.Unsqueeze(s.Sub(ek, ep), neg1), s.Sub(s.MatMul(s.Unsqueeze(ep, neg2), m), zk)))
        mrow = s.Gather(m, k, axis=-2)
        piv = s.Unsqueeze(s.Gather(mrow, k, axis=-1), neg1)                 # [..., 1]
        swapped = s.Squeeze(s.Not(s.Equal(p, k)), neg1)                      # [...]
        sign = s.Where(swapped, s.Neg(one), one)
        d = s.Mul(d, s.Mul(sign, s.Squeeze(piv, neg1)))
        f = s.Where(s.Equal(r, k), s.Sub(one, s.Div(one, piv)), s.Div(s.Gather(m, k, axis=-1), piv))
        f = s.Unsqueeze(f, neg1)
        return [s.Sub(m, s.Mul(f, s.Unsqueeze(mrow, neg2))), d]
    d0 = b.ConstantOfShape(b.dims(t.shape[:-2]), value=b.tensor([1.0], dt))
    del zero
    return column_loop(b, n, [a, d0], [t, t.with_shape(t.shape[:-2])], step)[1]


primitive("cholesky", "linalg", _same_shape,
          vjp=lambda g, out, a: _cholesky_vjp(g, out, a),
          onnx=_cholesky_onnx, np=_nan_on_failure(np.linalg.cholesky))
primitive("trisolve", "linalg", _solve_shape("trisolve"), vjp=_trisolve_vjp,
          onnx=_trisolve_onnx, np=_np_trisolve)
primitive("solve", "linalg", _solve_shape("solve"), vjp=_solve_vjp,
          onnx=_solve_onnx, np=_nan_on_failure(np.linalg.solve))
primitive("det", "linalg", _det_shape, vjp=_det_vjp,
          onnx=_det_onnx, np=lambda a: np.asarray(np.linalg.det(a), dtype=a.dtype))
