"""ONNX math ops -> IR: elementwise, matmul and Gemm, reductions, softmax,
layer normalization, erf. Each block states the ONNX semantics it follows."""
from __future__ import annotations

import numpy as np

from ..ir import dims as D
from ..ir.node import apply as P, const
from ..ir.types import is_float
from ..ops.registry import REGISTRY
from .context import NP, Unsupported, canon, ir, is_static
from .table import op


def _pair(cx, a, b):
    """Two operands as nodes of one dtype (a static takes the other's dtype)."""
    if is_static(a):
        b = cx.node(b)
        return cx.node(a, like=b), b
    a = cx.node(a)
    return a, cx.node(b, like=a)


def _static_div(a, b):
    if a.dtype.kind in "iO" and b.dtype.kind in "iO":      # integer division truncates (dims: floor)
        f = np.frompyfunc(lambda x, y: D.floordiv(x, int(y)) if isinstance(x, D.Sym)
                          else int(np.trunc(x / y)), 2, 1)
        return canon(f(a, b))
    return a / b


# -- binary elementwise (NumPy broadcasting, as ONNX) ------------------------------
BINARY = {"Add": ("add", lambda a, b: a + b), "Sub": ("sub", lambda a, b: a - b),
          "Mul": ("mul", lambda a, b: a * b), "Div": ("div", _static_div),
          "Pow": ("pow", lambda a, b: np.power(a, b)),
          "Equal": ("eq", np.equal), "Less": ("lt", np.less), "Greater": ("gt", np.greater),
          "LessOrEqual": ("le", np.less_equal), "GreaterOrEqual": ("ge", np.greater_equal)}


def _binary(prim, fn):
    def fold(cx, a, b):
        return canon(np.asarray(fn(a, b)))

    def conv(cx, a, b):
        if prim == "pow" and is_static(b) and canon(b).size == 1:
            e = float(canon(b).reshape(-1)[0])
            x = cx.node(a)
            if e == 2.0:
                return x * x                         # x^2 = x x (the common case: variances)
            if e == 0.5:
                return P("sqrt", x)
        x, y = _pair(cx, a, b)
        return ir(P, prim, x, y)
    return fold, conv


for _name, (_prim, _fn) in BINARY.items():
    _fold, _conv = _binary(_prim, _fn)
    op(_name, fold=_fold)(_conv)


# -- variadic (NumPy broadcasting over all inputs) ---------------------------------------
VARIADIC = {"Max": ("maximum", np.maximum), "Min": ("minimum", np.minimum), "Sum": ("add", np.add)}


def _variadic(prim, fn):
    def fold(cx, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = fn(out, x)
        return canon(np.asarray(out))

    def conv(cx, *xs):
        out = xs[0]
        for x in xs[1:]:
            a, b = _pair(cx, out, x)
            out = ir(P, prim, a, b)
        return cx.node(out)
    return fold, conv


for _name, (_prim, _fn) in VARIADIC.items():
    _fold, _conv = _variadic(_prim, _fn)
    op(_name, fold=_fold)(_conv)


@op("Mean")
def _mean(cx, *xs):
    """(x_1 + ... + x_n) / n"""
    s = _variadic("add", np.add)[1](cx, *xs)
    return s / float(len(xs)) if len(xs) > 1 else s


@op("Mod", fold=lambda cx, a, b: canon(np.fmod(a, b) if cx.attr("fmod", 0) else np.mod(a, b)))
def _mod(cx, a, b):
    raise Unsupported("Mod of tensors computed at run time")


@op("And", fold=lambda cx, a, b: np.logical_and(a, b))
def _and(cx, a, b):
    x, y = cx.node(a), cx.node(b)
    return P("not", P("eq", P("add", P("cast", P("not", x), dtype="i64"), P("cast", P("not", y), dtype="i64")),
                      const(0, "i64")))


@op("Not", fold=lambda cx, a: np.logical_not(a))
def _not(cx, a):
    return P("not", cx.node(a))


# -- unary elementwise ----------------------------------------------------------------
UNARY = {"Relu": ("relu", lambda x: np.maximum(x, 0)), "Sigmoid": ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
         "Tanh": ("tanh", np.tanh), "Exp": ("exp", np.exp), "Log": ("log", np.log),
         "Sqrt": ("sqrt", np.sqrt), "Abs": ("abs", np.abs), "Neg": ("neg", np.negative),
         "Sign": ("sign", np.sign), "Sin": ("sin", np.sin), "Cos": ("cos", np.cos),
         "Softplus": ("softplus", lambda x: np.logaddexp(0, x))}


def _unary(prim):
    return lambda cx, x: ir(P, prim, cx.node(x))


for _name, (_prim, _fn) in UNARY.items():
    op(_name, fold=lambda cx, x, _f=_fn: canon(np.asarray(_f(x))))(_unary(_prim))


@op("Reciprocal")
def _reciprocal(cx, x):
    x = cx.node(x)
    return const(1.0, x.dtype) / x


@op("LeakyRelu")
def _leaky_relu(cx, x):
    """max(x, 0) + alpha min(x, 0)"""
    x = cx.node(x)
    a = cx.attr("alpha", 0.01)
    return P("relu", x) - a * P("relu", -x)


@op("Elu")
def _elu(cx, x):
    """x if x > 0 else alpha (exp(x) - 1)"""
    x = cx.node(x)
    a = cx.attr("alpha", 1.0)
    return P("relu", x) + a * (P("exp", -P("relu", -x)) - 1.0)


@op("PRelu")
def _prelu(cx, x, slope):
    """max(x, 0) - slope max(-x, 0), slope broadcast (per channel: [C, 1, 1])"""
    x = cx.node(x)
    return P("relu", x) - cx.node(slope, like=x) * P("relu", -x)


@op("Selu")
def _selu(cx, x):
    """gamma (x if x > 0 else alpha (exp(x) - 1))"""
    x = cx.node(x)
    a, g = cx.attr("alpha", 1.67326319217681884765625), cx.attr("gamma", 1.05070102214813232421875)
    return g * (P("relu", x) + a * (P("exp", -P("relu", -x)) - 1.0))


@op("Softsign")
def _softsign(cx, x):
    """x / (1 + |x|)"""
    x = cx.node(x)
    return x / (1.0 + P("abs", x))


@op("HardSwish")
def _hard_swish(cx, x):
    """x max(0, min(1, x / 6 + 1 / 2))"""
    x = cx.node(x)
    return x * P("minimum", P("maximum", x / 6.0 + 0.5, const(0.0, x.dtype)), const(1.0, x.dtype))


@op("HardSigmoid")
def _hard_sigmoid(cx, x):
    x = cx.node(x)
    y = cx.attr("alpha", 0.2) * x + cx.attr("beta", 0.5)
    return P("minimum", P("maximum", y, const(0.0, x.dtype)), const(1.0, x.dtype))


@op("Clip", fold=lambda cx, x, lo=None, hi=None: np.clip(x, lo, hi))
def _clip(cx, x, lo=None, hi=None):
    x = cx.node(x)
    if cx.opset < 11:
        lo, hi = (None if cx.attr(k) is None else np.asarray(cx.attr(k)) for k in ("min", "max"))
    if lo is not None:
        x = P("maximum", x, cx.node(lo, like=x))
    if hi is not None:
        x = P("minimum", x, cx.node(hi, like=x))
    return x


# A&S 7.1.26: erf x = 1 - (a1 t + ... + a5 t^5) exp(-x^2), t = 1 / (1 + p x), x >= 0; |error| < 1.5e-7
_AS = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


@op("Erf", fold=lambda cx, x: canon(np.vectorize(__import__("math").erf)(x).astype(x.dtype)))
def _erf(cx, x):
    x = cx.node(x)
    if "erf" in REGISTRY:
        return P("erf", x)
    ax = P("abs", x)
    t = const(1.0, x.dtype) / (1.0 + 0.3275911 * ax)
    poly = t * (_AS[0] + t * (_AS[1] + t * (_AS[2] + t * (_AS[3] + t * _AS[4]))))
    return P("sign", x) * (1.0 - poly * P("exp", -(x * x)))


@op("Gelu")
def _gelu(cx, x):
    """opset 20: x Phi(x) = x (1 + erf(x / sqrt 2)) / 2; approximate = "tanh":
    x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2"""
    x = cx.node(x)
    if cx.attr("approximate", "none") == "tanh":
        return 0.5 * x * (1.0 + P("tanh", 0.7978845608028654 * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1.0 + _erf(cx, x * 0.7071067811865476))


@op("Identity", fold=lambda cx, x: x)
def _identity(cx, x):
    return x


# -- matrix products ---------------------------------------------------------------
@op("MatMul", fold=lambda cx, a, b: np.matmul(a, b))
def _matmul(cx, a, b):
    """numpy.matmul: 1-d operands gain (and lose) a unit axis; batch dims broadcast"""
    x, y = _pair(cx, a, b)
    squeeze = []
    if x.rank == 1:
        x = P("unsqueeze", x, axes=(0,))
        squeeze.append(-2)
    if y.rank == 1:
        y = P("unsqueeze", y, axes=(1,))
        squeeze.append(-1)
    out = ir(P, "matmul", x, y)
    if squeeze:
        out = P("squeeze", out, axes=tuple(out.rank + s for s in squeeze))
    return out


@op("Gemm", fold=lambda cx, a, b, c=None: cx.attr("alpha", 1.0) * (a.T if cx.attr("transA", 0) else a)
    @ (b.T if cx.attr("transB", 0) else b) + (0 if c is None else cx.attr("beta", 1.0) * c))
def _gemm(cx, a, b, c=None):
    """Y = alpha A' B' + beta C, A' = A^T if transA, B' = B^T if transB"""
    x, w = _pair(cx, a, b)
    if cx.attr("transA", 0):
        x = P("transpose", x, perm=(1, 0))
    if cx.attr("transB", 0):
        w = P("transpose", w, perm=(1, 0))
    y = ir(P, "matmul", x, w)
    alpha, beta = cx.attr("alpha", 1.0), cx.attr("beta", 1.0)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        c = cx.node(c, like=y)
        y = ir(P, "add", y, c if beta == 1.0 else c * beta)
    return y


# -- reductions ---------------------------------------------------------------------
def _axes(cx, x, axes_in):
    """Reduced axes: the `axes` input (opset >= 18; ReduceSum >= 13) or attribute; none = all."""
    axes = cx.attr("axes")
    if axes_in is not None:
        axes = cx.ints(axes_in, f"{cx.onode.op_type}'s axes")
    if not axes:
        if cx.attr("noop_with_empty_axes", 0):
            return None
        return tuple(range(x.rank))
    return tuple(sorted(a % x.rank for a in axes))


def _reduce(prim):
    def conv(cx, x, axes_in=None):
        x = cx.node(x)
        axes = _axes(cx, x, axes_in)
        if axes is None:
            return x
        keep = bool(cx.attr("keepdims", 1))
        return ir(P, prim, x, axes=axes, keepdims=keep)
    return conv


for _name, _prim in {"ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min"}.items():
    op(_name)(_reduce(_prim))


@op("ReduceSumSquare")
def _reduce_sum_square(cx, x, axes_in=None):
    x = cx.node(x)
    return _reduce("sum")(cx, x * x, axes_in)


@op("ReduceL2")
def _reduce_l2(cx, x, axes_in=None):
    return P("sqrt", _reduce_sum_square(cx, x, axes_in))


@op("ReduceLogSumExp")
def _reduce_lse(cx, x, axes_in=None):
    """log sum exp x = m + log sum exp(x - m), m = max x (stopped: the identity holds for any m)"""
    x = cx.node(x)
    axes = _axes(cx, x, axes_in)
    keep = bool(cx.attr("keepdims", 1))
    m = P("stop_gradient", P("max", x, axes=axes, keepdims=True))
    s = P("log", P("sum", P("exp", x - m), axes=axes, keepdims=True)) + m
    return s if keep else P("squeeze", s, axes=axes)


@op("ArgMax")
def _argmax(cx, x):
    x = cx.node(x)
    if cx.attr("select_last_index", 0):
        raise Unsupported("ArgMax with select_last_index = 1")
    return P("argmax", x, axis=cx.attr("axis", 0) % x.rank, keepdims=bool(cx.attr("keepdims", 1)))


# -- softmax and layer normalization ----------------------------------------------------
def _log_softmax(x, axis):
    """x - logsumexp(x) over axis (the max is subtracted first, stopped)"""
    m = P("stop_gradient", P("max", x, axes=(axis,), keepdims=True))
    z = x - m
    return z - P("log", P("sum", P("exp", z), axes=(axis,), keepdims=True))


@op("Softmax")
def _softmax(cx, x):
    """opset >= 13: along `axis` (default -1)"""
    x = cx.node(x)
    if cx.opset < 13:
        raise Unsupported("Softmax before opset 13 (flattening semantics)")
    return P("exp", _log_softmax(x, cx.attr("axis", -1) % x.rank))


@op("LogSoftmax")
def _logsoftmax(cx, x):
    x = cx.node(x)
    if cx.opset < 13:
        raise Unsupported("LogSoftmax before opset 13 (flattening semantics)")
    return _log_softmax(x, cx.attr("axis", -1) % x.rank)


@op("LayerNormalization")
def _layer_norm(cx, x, scale, bias=None):
    """over axes [axis, rank): y = (x - mean) / sqrt(var + eps) * scale + bias, var biased"""
    x = cx.node(x)
    if not is_float(x.dtype):
        raise Unsupported("LayerNormalization of a non-float tensor")
    axes = tuple(range(cx.attr("axis", -1) % x.rank, x.rank))
    d = x - P("mean", x, axes=axes, keepdims=True)
    var = P("mean", d * d, axes=axes, keepdims=True)
    y = d / P("sqrt", var + cx.attr("epsilon", 1e-5)) * cx.node(scale, like=x)
    if bias is not None:
        y = y + cx.node(bias, like=x)
    return y
