"""One table over every registered primitive (DESIGN.md "Testing habits").

Each row builds one primitive application from fresh inputs and checks
  (a) its gradient against central finite differences (float64, NumPy engine),
  (b) its second derivative: d/dx sum(c2 * grad) against FD of the gradient,
  (c) ONNX Runtime (float32) against the NumPy reference, forward and gradient.
Random primitives are checked by shape, dtype and moments instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

from dslc.autodiff import grad
from dslc.evaluate import evaluate
from dslc.ir import Sym, TensorType
from dslc.ir.graph import LEAVES
from dslc.ir.node import apply as P
from dslc.ops.leaves import input_
from dslc.ops.random import random
from dslc.ir.registry import REGISTRY
from dslc.ops.scan import scan

B, T = Sym.var("B"), Sym.var("T")
SIZES = {"B": 3, "T": 4}        # values fed for the symbolic dims


@dataclass
class In:
    """An input: its shape (ints or dim names), dtype ('f' = the float under
    test) and domain: any | pos | nz | int:K (i64 in [0, K)) | bool | spd | cond
    (symmetric positive definite / well-conditioned matrices in the last two axes)."""
    shape: tuple
    dtype: str = "f"
    domain: str = "any"


@dataclass
class Row:
    id: str
    build: Callable             # nodes -> node (no inputs: dtype -> node)
    ins: list = field(default_factory=list)
    second: bool = True         # check the second derivative too
    zero_grad: bool = False     # the gradient is zero by definition (stop_gradient)


def R(id, build, *ins, **kw):
    return Row(id, build, list(ins), **kw)


f = In


def _sum(axes, keepdims):
    return lambda x: P("sum", x, axes=axes, keepdims=keepdims)


ROWS = [
    # -- elementwise unary
    R("neg", lambda x: P("neg", x), f((3, 4))),
    R("exp", lambda x: P("exp", x), f((3, 4))),
    R("log", lambda x: P("log", x), f((3, 4), domain="pos")),
    R("sqrt", lambda x: P("sqrt", x), f((3, 4), domain="pos")),
    R("abs", lambda x: P("abs", x), f((3, 4), domain="nz")),
    R("sign", lambda x: P("sign", x), f((3, 4), domain="nz")),
    R("relu", lambda x: P("relu", x), f((3, 4), domain="nz")),
    R("sigmoid", lambda x: P("sigmoid", x), f((3, 4))),
    R("tanh", lambda x: P("tanh", x), f((3, 4))),
    R("softplus", lambda x: P("softplus", x), f((3, 4))),
    R("sin", lambda x: P("sin", x), f((3, 4))),
    R("cos", lambda x: P("cos", x), f((3, 4))),
    R("stop_gradient", lambda x: P("stop_gradient", x), f((3, 4)), zero_grad=True),
    # -- binary, with broadcasting
    R("add_bcast", lambda a, b: P("add", a, b), f((3, 1)), f((4,))),
    R("sub_bcast", lambda a, b: P("sub", a, b), f((2, 3)), f((3,))),
    R("mul_bcast", lambda a, b: P("mul", a, b), f((2, 1, 3)), f((4, 1))),
    R("div_bcast", lambda a, b: P("div", a, b), f((2, 3)), f((2, 1), domain="nz")),
    R("pow", lambda a, b: P("pow", a, b), f((2, 3), domain="pos"), f((2, 3))),
    R("pow_const", lambda a: a ** 3.0, f((2, 3))),
    R("maximum", lambda a, b: P("maximum", a, b), f((3, 4)), f((4,))),
    R("minimum", lambda a, b: P("minimum", a, b), f((3, 4)), f((3, 1))),
    # -- comparisons, selection, casts
    R("lt", lambda a, b: P("lt", a, b), f((3, 4)), f((4,))),
    R("le", lambda a, b: P("le", a, b), f((3, 4)), f((3, 4))),
    R("gt", lambda a, b: P("gt", a, b), f((3, 4)), f((3, 1))),
    R("ge", lambda a, b: P("ge", a, b), f((3, 4)), f((3, 4))),
    R("eq", lambda a, b: P("eq", a, b), In((3, 4), "i64", "int:3"), In((4,), "i64", "int:3")),
    R("ne", lambda a, b: P("ne", a, b), In((3, 4), "i64", "int:3"), In((3, 4), "i64", "int:3")),
    R("where", lambda c, a, b: P("where", c, a, b), In((3, 4), "bool", "bool"), f((3, 4)), f((4,))),
    R("not", lambda c: P("not", c), In((3, 4), "bool", "bool")),
    R("cast_float", lambda x: P("cast", x, dtype="f32"), f((3, 4))),
    R("cast_int", lambda x: P("cast", x, dtype="i64"), f((3, 4))),
    R("cast_from_int", lambda x: P("cast", x, dtype="f64"), In((3, 4), "i64", "int:5")),
    # -- reductions
    R("sum_axis", _sum((1,), False), f((3, 4))),
    R("sum_keepdims", _sum((0, 2), True), f((2, 3, 2))),
    R("sum_all", _sum((0, 1), False), f((3, 4))),
    R("mean_axis", lambda x: P("mean", x, axes=(1,), keepdims=False), f((3, 4))),
    R("mean_symbolic", lambda x: P("mean", x, axes=(0,), keepdims=True), f(("B", 2))),
    R("max_axis", lambda x: P("max", x, axes=(1,), keepdims=False), f((3, 4))),
    R("max_keepdims", lambda x: P("max", x, axes=(0, 1), keepdims=True), f((3, 4))),
    R("min_axis", lambda x: P("min", x, axes=(0,), keepdims=False), f((3, 4))),
    R("argmax", lambda x: P("argmax", x, axis=1, keepdims=False), f((3, 4))),
    R("size_symbolic", lambda x: P("size", x, axes=(0, 1), dtype=x.dtype), f(("B", 2))),      # ONNX Size
    R("size_axis_run", lambda x: P("size", x, axes=(1, 2), dtype=x.dtype), f((2, "B", "T"))),  # Shape(start, end)
    R("size_axes_apart", lambda x: P("size", x, axes=(0, 2), dtype=x.dtype), f(("B", 2, "T"))),  # Shape + Gather
    # -- shape
    R("reshape", lambda x: P("reshape", x, shape=(4, 3)), f((2, 6))),
    R("reshape_symbolic", lambda x: P("reshape", x, shape=(B, 2, 3)), f(("B", 6))),
    R("transpose", lambda x: P("transpose", x, perm=(2, 0, 1)), f((2, 3, 4))),
    R("concat", lambda a, b, c: P("concat", a, b, c, axis=1), f((2, 1)), f((2, 3)), f((2, 2))),
    R("unsqueeze", lambda x: P("unsqueeze", x, axes=(0, 2)), f((3, 4))),
    R("squeeze", lambda x: P("squeeze", x, axes=(1,)), f((3, 1, 4))),
    R("expand", lambda x: P("expand", x, shape=(2, 3, 4)), f((3, 1))),
    R("slice", lambda x: P("slice", x, spec=((1, 1, 3, 1),)), f((3, 4))),
    R("slice_strided", lambda x: P("slice", x, spec=((0, 1, 6, 2), (1, 0, 5, 3))), f((6, 5))),
    R("slice_symbolic", lambda x: P("slice", x, spec=((0, T - 1, T, 1),)), f(("T", 3))),
    R("flip", lambda x: P("flip", x, axes=(0, 1)), f((3, 4))),
    R("pad", lambda x: P("pad", x, pads=((1, 0), (2, 1))), f((2, 3))),
    R("fill", lambda dt: P("fill", value=2.5, shape=(2, 3), dtype=dt)),
    R("gather", lambda t, i: P("gather", t, i), f((5, 3)), In((2, 3), "i64", "int:5")),
    R("scatter_add", lambda i, u: P("scatter_add", i, u, rows=5), In((4,), "i64", "int:5"), f((4, 3))),
    R("one_hot", lambda i: P("one_hot", i, depth=4, dtype="f32"), In((5,), "i64", "int:4")),
    R("one_hot_f64", lambda i: P("one_hot", i, depth=4, dtype="f64"), In((5,), "i64", "int:4")),
    R("one_hot_i64", lambda i: P("one_hot", i, depth=3, dtype="i64"), In((2, 3), "i64", "int:3")),
    # -- more elementwise, and the product (special.py)
    R("erf", lambda x: P("erf", x), f((3, 4))),
    R("log1p", lambda x: P("log1p", x), f((3, 4), domain="pos")),
    R("prod_axis", lambda x: P("prod", x, axes=(1,), keepdims=False), f((3, 4))),
    R("prod_all_keepdims", lambda x: P("prod", x, axes=(0, 1), keepdims=True), f((2, 3), domain="nz")),
    # -- construction and scans (construct.py)
    R("range", lambda dt: P("range", n=5, dtype=dt)),
    R("tril", lambda x: P("trilu", x, k=0, upper=False), f((2, 3, 4))),
    R("triu_k", lambda x: P("trilu", x, k=1, upper=True), f((4, 3))),
    R("tril_k_neg", lambda x: P("trilu", x, k=-1, upper=False), f((4, 4))),
    R("cumsum", lambda x: P("cumsum", x, axis=1, reverse=False), f((3, 4))),
    R("cumsum_reverse", lambda x: P("cumsum", x, axis=0, reverse=True), f((4, 2))),
    # -- indexing by integer tensors (index.py)
    R("gather_axis1", lambda x, i: P("gather", x, i, axis=1), f((3, 5)), In((2, 2), "i64", "int:5")),
    R("scatter_add_axis1", lambda i, u: P("scatter_add", i, u, rows=4, axis=1),
      In((2, 3), "i64", "int:4"), f((2, 2, 3, 3))),
    R("take_along_axis", lambda x, i: P("take_along_axis", x, i, axis=1), f((3, 4)), In((3, 5), "i64", "int:4")),
    R("scatter_along", lambda i, u: P("scatter_along", i, u, shape=(3, 4), axis=1),
      In((3, 5), "i64", "int:4"), f((3, 5))),
    # -- einsum (einsum.py): explicit letters only; the built-in expands `...`
    R("einsum_matmul", lambda a, b: P("einsum", a, b, eq="ij,jk->ik"), f((3, 4)), f((4, 2))),
    R("einsum_batched_t", lambda a, b: P("einsum", a, b, eq="bij,bkj->bki"), f((2, 3, 4)), f((2, 2, 4))),
    R("einsum_three", lambda a, b, c: P("einsum", a, b, c, eq="ij,jk,kl->il"), f((2, 3)), f((3, 4)), f((4, 2))),
    R("einsum_trace", lambda a: P("einsum", a, eq="ii->"), f((3, 3))),
    R("einsum_diagonal", lambda a: P("einsum", a, eq="bii->bi"), f((2, 3, 3))),
    R("einsum_sum_own", lambda a, b: P("einsum", a, b, eq="ij,i->i"), f((3, 4)), f((3,))),
    R("einsum_outer_perm", lambda a, b: P("einsum", a, b, eq="i,jk->kij"), f((3,)), f((2, 4))),
    # -- linear algebra (linalg.py): n <= UNROLL_MAX unrolls (tests/test_linalg.py runs the Loop)
    R("cholesky", lambda a: P("cholesky", a), f((3, 3), domain="spd")),
    R("cholesky_batched", lambda a: P("cholesky", a), f((2, 4, 4), domain="spd")),
    R("trisolve_lower", lambda t, b: P("trisolve", t, b, lower=True), f((3, 3), domain="spd"), f((3, 2))),
    R("trisolve_upper_bcast", lambda t, b: P("trisolve", t, b, lower=False), f((2, 3, 3), domain="spd"),
      f((3, 2))),
    R("solve", lambda a, b: P("solve", a, b), f((3, 3), domain="cond"), f((3, 2))),
    R("solve_batched", lambda a, b: P("solve", a, b), f((2, 4, 4), domain="cond"), f((2, 4, 1))),
    R("det", lambda a: P("det", a), f((3, 3), domain="cond")),
    R("det_batched", lambda a: P("det", a), f((2, 3, 3), domain="cond")),
    # -- networks
    R("matmul", lambda a, b: P("matmul", a, b), f((3, 4)), f((4, 2))),
    R("matmul_batch_bcast", lambda a, b: P("matmul", a, b), f((2, 1, 3, 4)), f((3, 4, 2))),
    R("conv1d", lambda x, w: P("conv", x, w, strides=(1,), pads=((0, 0),), dilations=(1,)),
      f((2, 2, 7)), f((3, 2, 3))),
    R("conv1d_stride_pad_dil", lambda x, w: P("conv", x, w, strides=(2,), pads=((1, 2),), dilations=(2,)),
      f((2, 2, 8)), f((2, 2, 3))),
    R("conv2d_same", lambda x, w: P("conv", x, w, strides=(1, 1), pads=((1, 1), (1, 1)), dilations=(1, 1)),
      f((1, 2, 4, 4)), f((2, 2, 3, 3))),
    R("conv2d_stride2", lambda x, w: P("conv", x, w, strides=(2, 2), pads=((0, 1), (1, 0)), dilations=(1, 1)),
      f((1, 1, 5, 6)), f((2, 1, 2, 3))),
    R("conv2d_stride2_remainder", lambda x, w: P("conv", x, w, strides=(2, 2), pads=((0, 0), (0, 0)),
                                                 dilations=(1, 1)), f((2, 2, 6, 5)), f((3, 2, 3, 3))),
    R("conv_transpose2d", lambda g, w: P("conv_transpose", g, w, strides=(2, 1), pads=((1, 0), (0, 1)),
                                         dilations=(1, 2), out_pad=(1, 0)), f((2, 3, 3, 3)), f((3, 2, 2, 2))),
    R("conv_transpose1d", lambda g, w: P("conv_transpose", g, w, strides=(1,), pads=((1, 1),), dilations=(1,),
                                         out_pad=(0,)), f((2, 2, 5)), f((2, 3, 3))),
    R("conv_transpose2d_batch_sym", lambda g, w: P("conv_transpose", g, w, strides=(1, 1), pads=((2, 2), (2, 2)),
                                                   dilations=(1, 1), out_pad=(0, 0)), f(("B", 3, 4, 4)), f((3, 2, 5, 5))),
    R("conv_transpose3d", lambda g, w: P("conv_transpose", g, w, strides=(1, 2, 1), pads=((0, 0), (1, 1), (2, 0)),
                                         dilations=(1, 1, 2), out_pad=(0, 1, 0)), f((2, 3, 3, 4, 5)), f((3, 4, 2, 2, 3))),
    R("im2col2d", lambda x: P("im2col", x, kernel=(2, 3), strides=(1, 1), pads=((1, 0), (1, 1)), dilations=(1, 1)),
      f((2, 2, 4, 5))),
    R("im2col2d_stride_dil", lambda x: P("im2col", x, kernel=(2, 2), strides=(2, 1), pads=((0, 1), (0, 0)),
                                         dilations=(1, 2)), f(("B", 3, 5, 6))),
    R("im2col2d_one_channel", lambda x: P("im2col", x, kernel=(3, 2), strides=(2, 1), pads=((1, 0), (1, 1)),
                                          dilations=(1, 2)), f(("B", 1, 6, 5))),
    R("im2col3d", lambda x: P("im2col", x, kernel=(2, 1, 2), strides=(1, 2, 1), pads=((0, 1), (1, 0), (0, 0)),
                              dilations=(2, 1, 1)), f((2, 2, 4, 3, 4))),
    R("im2col1d", lambda x: P("im2col", x, kernel=(3,), strides=(2,), pads=((1, 1),), dilations=(1,)), f((2, 2, 7))),
    R("col2im1d_stride_dil", lambda c: P("col2im", c, kernel=(3,), strides=(2,), pads=((1, 1),), dilations=(2,),
                                         image=(7,)), f((2, 6, 3))),
    R("col2im2d", lambda c: P("col2im", c, kernel=(2, 3), strides=(2, 1), pads=((1, 0), (0, 1)), dilations=(1, 2),
                              image=(4, 5)), f(("B", 12, 4))),
    R("col2im3d", lambda c: P("col2im", c, kernel=(2, 1, 2), strides=(1, 2, 1), pads=((0, 1), (1, 0), (0, 0)),
                              dilations=(2, 1, 1), image=(4, 3, 4)), f((2, 8, 18))),
    R("log_softmax", lambda x: P("log_softmax", x, axis=1), f((3, 4))),
    R("log_softmax_axis0", lambda x: P("log_softmax", x, axis=0), f((3, 2, 2))),
    R("max_pool2d", lambda x: P("max_pool", x, kernel=(2, 2), strides=(2, 2)), f((2, 3, 5, 4))),
    R("max_pool2d_overlap", lambda x: P("max_pool", x, kernel=(3, 2), strides=(1, 2)), f((1, 2, 5, 5))),
    R("max_pool1d", lambda x: P("max_pool", x, kernel=(3,), strides=(2,)), f((2, 2, 7))),
    R("max_pool_symbolic", lambda x: P("max_pool", x, kernel=(2, 2), strides=(2, 2)), f(("B", 2, 4, 4))),
    R("max_pool_grad", lambda x, g: P("max_pool_grad", x, g, kernel=(2, 2), strides=(2, 2)),
      f((2, 2, 4, 5)), f((2, 2, 2, 2))),
    # ties (small integers): the first maximum of each window gets g, as ONNX's indices and torch
    R("max_pool_grad_ties", lambda x, g: P("max_pool_grad", P("cast", x, dtype=g.dtype), g, kernel=(2, 2),
                                           strides=(2, 2)), In((2, 3, 5, 6), "i64", "int:2"), f((2, 3, 2, 3))),
    R("max_pool_grad_ties_3x2", lambda x, g: P("max_pool_grad", P("cast", x, dtype=g.dtype), g, kernel=(3, 2),
                                               strides=(3, 2)), In(("B", 2, 7, 4), "i64", "int:2"), f(("B", 2, 2, 2))),
    R("max_pool_grad_ties_1d", lambda x, g: P("max_pool_grad", P("cast", x, dtype=g.dtype), g, kernel=(3,),
                                              strides=(3,)), In((2, 2, 10), "i64", "int:2"), f((2, 2, 3))),
    # a window spanning one axis, one entry wide on the other (passes/convpool.py's (p q, 1) pool)
    R("max_pool_column", lambda x: P("max_pool", x, kernel=(4, 1), strides=(4, 1)), f((2, 3, 4, 5))),
    R("max_pool_grad_ties_4x1", lambda x, g: P("max_pool_grad", P("cast", x, dtype=g.dtype), g, kernel=(4, 1),
                                               strides=(4, 1)), In(("B", 3, 4, 5), "i64", "int:2"), f(("B", 3, 1, 5))),
    R("max_pool_grad_overlap", lambda x, g: P("max_pool_grad", x, g, kernel=(3, 3), strides=(1, 1)),
      f((1, 2, 5, 4)), f((1, 2, 3, 2))),
    R("max_pool_pick", lambda x, h: P("max_pool_pick", x, h, kernel=(2, 2), strides=(1, 2)),
      f((2, 2, 4, 4)), f((2, 2, 4, 4))),
]

# -- scan: recurrent cells, backprop through time (symbolic T)
def _rnn(xs, h0, wx, wh):
    # h_t = tanh(x_t Wx + h_{t-1} Wh)
    return scan(lambda c, x: [P("tanh", x @ wx + c[0] @ wh)], xs, [h0])[0]


def _lstm(xs, h0, w):
    # gates = [x_t, h_{t-1}] W ; c_t = f c + i g ; h_t = o tanh(c_t)
    m = h0.shape[-1]

    def step(c, x):
        h, cc = c
        gates = P("concat", x, h, axis=1) @ w
        part = lambda k: P("slice", gates, spec=((1, k * m, (k + 1) * m, 1),))
        i, f_, o, g = P("sigmoid", part(0)), P("sigmoid", part(1)), P("sigmoid", part(2)), P("tanh", part(3))
        c2 = f_ * cc + i * g
        return [o * P("tanh", c2), c2]
    hs, cs = scan(step, xs, [h0, h0 * 0.5])
    return hs * cs


def _gru(xs, h0, wz, wr, wh):
    # z = σ([x,h] Wz) ; r = σ([x,h] Wr) ; h~ = tanh([x, r h] Wh) ; h' = (1 - z) h + z h~
    def step(c, x):
        h = c[0]
        xh = P("concat", x, h, axis=1)
        z, r = P("sigmoid", xh @ wz), P("sigmoid", xh @ wr)
        hh = P("tanh", P("concat", x, r * h, axis=1) @ wh)
        return [(1.0 - z) * h + z * hh]
    return scan(step, xs, [h0])[0]


ROWS += [
    R("scan_rnn", _rnn, f(("T", 2, 3)), f((2, 4)), f((3, 4)), f((4, 4))),
    R("scan_lstm", _lstm, f(("T", 2, 3)), f((2, 2)), f((5, 8))),
    R("scan_gru", _gru, f(("T", 2, 3)), f((2, 3)), f((6, 3)), f((6, 3)), f((6, 3))),
]

RANDOM = ["random_normal", "random_uniform"]
UNTESTED = set(LEAVES) | {"training"}


# -- inputs ---------------------------------------------------------------------

def _concrete(shape):
    return tuple(SIZES[d] if isinstance(d, str) else d for d in shape)


def _sym(shape):
    return tuple(Sym.var(d) if isinstance(d, str) else d for d in shape)


def _values(rng, spec: In):
    shape = _concrete(spec.shape)
    dom = spec.domain
    if dom == "pos":
        return rng.uniform(0.5, 2.0, shape)
    if dom == "nz":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 1.5, shape)
    if dom.startswith("int:"):
        return rng.integers(0, int(dom[4:]), shape).astype(np.int64)
    if dom == "bool":
        return rng.random(shape) < 0.5
    if dom == "spd":            # symmetric positive definite in the last two axes
        a = rng.standard_normal(shape)
        return a @ np.swapaxes(a, -1, -2) / shape[-1] + np.eye(shape[-1])
    if dom == "cond":           # well-conditioned, not symmetric
        return np.eye(shape[-1]) + 0.3 * rng.standard_normal(shape)
    return rng.standard_normal(shape)


def _build(row: Row, fdt: str):
    """(output node, input nodes) with floats of dtype fdt."""
    nodes = [input_(f"x{i}", TensorType(fdt if s.dtype == "f" else s.dtype, _sym(s.shape)))
             for i, s in enumerate(row.ins)]
    y = row.build(*nodes) if nodes else row.build(fdt)
    return y, nodes


def _feeds(row: Row, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {f"x{i}": _values(rng, s) for i, s in enumerate(row.ins)}


def _floats(nodes):
    return [n for n in nodes if n.dtype in ("f32", "f64")]


def _objective(y, rng, name="c"):
    """sum(c * y) for a random cotangent c (an input, so symbolic shapes work)."""
    c = input_(name, TensorType(y.dtype, y.shape))
    cval = rng.standard_normal(_concrete_of(y.shape))
    return P("sum", y * c, axes=tuple(range(y.rank)), keepdims=False), c, cval


def _concrete_of(shape):
    from dslc.ir import dims as D
    return tuple(D.evaluate(d, SIZES) for d in shape)


def _fd(fn, feeds, name, h=1e-6):
    """Central differences of scalar fn(feeds) in every entry of feeds[name]."""
    x = feeds[name]
    out = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        up, dn = dict(feeds), dict(feeds)
        up[name] = x.copy()
        up[name][idx] += h
        dn[name] = x.copy()
        dn[name][idx] -= h
        out[idx] = (fn(up) - fn(dn)) / (2 * h)
    return out


def _ev(roots, feeds, leaves=()):
    """float64 values of roots; leaves are evaluated too so that their symbolic
    dims are bound even when a root (a zero gradient: `fill`) does not use them."""
    extra = {f"__leaf{i}": n for i, n in enumerate(leaves)}
    return evaluate({**roots, **extra}, feeds, dtype_override="f64")


DIFF_ROWS = [r for r in ROWS if r.ins and any(s.dtype == "f" for s in r.ins)]


def _differentiable(row):
    y, nodes = _build(row, "f64")
    return y.dtype in ("f32", "f64") and _floats(nodes)


# -- (a) first and (b) second derivatives -----------------------------------------

@pytest.mark.parametrize("row", [r for r in DIFF_ROWS if _differentiable(r)], ids=lambda r: r.id)
def test_gradient_matches_finite_differences(row):
    rng = np.random.default_rng(1)
    y, nodes = _build(row, "f64")
    xs = _floats(nodes)
    fobj, c, cval = _objective(y, rng)
    feeds = {**_feeds(row), "c": cval}
    gs = grad(fobj, xs)
    got = _ev({x.attrs["name"]: g for x, g in zip(xs, gs)}, feeds, nodes)
    for x in xs:
        name = x.attrs["name"]
        if row.zero_grad:
            assert np.all(got[name] == 0)
            continue
        fd = _fd(lambda fe: float(_ev({"f": fobj}, fe)["f"]), feeds, name)
        np.testing.assert_allclose(got[name], fd, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{row.id}: d/d{name}")
    if not row.second or row.zero_grad:
        return
    # (b) s = sum_k sum(c2_k * g_k); ds/dx from autodiff vs FD of s
    s, feeds2 = None, dict(feeds)
    for k, g in enumerate(gs):
        c2 = input_(f"c2_{k}", TensorType(g.dtype, g.shape))
        feeds2[f"c2_{k}"] = rng.standard_normal(_concrete_of(g.shape))
        term = P("sum", g * c2, axes=tuple(range(g.rank)), keepdims=False)
        s = term if s is None else s + term
    g2 = grad(s, xs)
    got2 = _ev({x.attrs["name"]: g for x, g in zip(xs, g2)}, feeds2, nodes)
    for x in xs:
        name = x.attrs["name"]
        fd = _fd(lambda fe: float(_ev({"s": s}, fe)["s"]), feeds2, name)
        np.testing.assert_allclose(got2[name], fd, rtol=1e-4, atol=1e-5,
                                   err_msg=f"{row.id}: second derivative in {name}")


# -- (c) ONNX Runtime vs the NumPy reference --------------------------------------

def _ort_run(outputs, inputs, feeds):
    lower = pytest.importorskip("dslc.lower")
    ort = pytest.importorskip("onnxruntime")
    model = lower.lower_function(outputs, inputs)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    fed = {i.name: feeds[i.name] for i in sess.get_inputs()}
    return dict(zip(names, sess.run(None, fed)))


def _f32(feeds):
    return {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in feeds.items()}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_onnx_matches_numpy(row):
    rng = np.random.default_rng(2)
    y, nodes = _build(row, "f32")
    feeds = _f32(_feeds(row))
    outputs, inputs = {"y": y}, list(nodes)
    xs = _floats(nodes)
    if y.dtype in ("f32", "f64") and xs and not row.zero_grad:
        fobj, c, cval = _objective(y, rng)
        feeds["c"] = cval.astype(np.float32)
        inputs.append(c)
        for x, g in zip(xs, grad(fobj, xs)):
            outputs["grad_" + x.attrs["name"]] = g
    want = evaluate(outputs, feeds)
    got = _ort_run(outputs, inputs, feeds)
    for k, v in want.items():
        assert got[k].shape == v.shape, f"{row.id}: {k} shape {got[k].shape} != {v.shape}"
        assert got[k].dtype == v.dtype, f"{row.id}: {k} dtype {got[k].dtype} != {v.dtype}"
        np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5, err_msg=f"{row.id}: {k}")


# -- random primitives: shape, dtype, moments ----------------------------------------

@pytest.mark.parametrize("kind", ["normal", "uniform"])
def test_random_moments(kind, monkeypatch):
    # the NumPy reference seeds itself with the draw's uid, a process-wide counter: pin it, so
    # the 4000 samples (and the test's outcome) do not depend on how many draws ran before
    import itertools
    import dslc.ops.random as random_ops
    monkeypatch.setattr(random_ops, "_uids", itertools.count())
    x = input_("x", TensorType("f32", (B, 2)))
    r = random(kind, (B, 1000), "f32")
    assert r.op == f"random_{kind}" and r.type == TensorType("f32", (B, 1000))
    y = r + 0.0 * P("sum", x, axes=(0, 1), keepdims=False)      # binds B through x
    feeds = {"x": np.zeros((4, 2), np.float32)}
    mean, std = (0.0, 1.0) if kind == "normal" else (0.5, 12 ** -0.5)
    for vals in (evaluate({"y": y}, feeds)["y"], _ort_run({"y": y}, [x], feeds)["y"]):
        assert vals.shape == (4, 1000) and vals.dtype == np.float32
        assert abs(vals.mean() - mean) < 0.05 and abs(vals.std() - std) < 0.05
        if kind == "uniform":
            assert vals.min() >= 0 and vals.max() < 1


def test_random_draws_differ():
    a, b = random("normal", (50,)), random("normal", (50,))
    got = evaluate({"a": a, "b": b}, {})
    assert not np.allclose(got["a"], got["b"])


# -- coverage ------------------------------------------------------------------------

def test_every_primitive_has_a_row():
    tested = {_build(r, "f64")[0].op for r in ROWS} | set(RANDOM)
    missing = sorted(set(REGISTRY) - UNTESTED - tested)
    assert not missing, f"primitives without a row in tests/test_primitives.py: {missing}"
