"""More elementwise primitives (erf, log1p) and the product reduction."""
from __future__ import annotations

import math

import numpy as np

from ..ir.node import apply as P, const
from .elementwise import float_same
from .reduce import _np_reduce, _onnx_reduce, _reduced, spread
from .registry import primitive

_erf = np.frompyfunc(math.erf, 1, 1)

primitive("erf", "elementwise", float_same,
          # d erf x = 2/sqrt(pi) e^(-x^2) dx
          vjp=lambda g, out, x: (g * (2.0 / math.sqrt(math.pi)) * P("exp", -(x * x)),),
          onnx=lambda b, x: b.Erf(x), np=lambda x: _erf(x).astype(x.dtype))


def _log1p_onnx(b, x):
    # log(1 + x) without cancellation for small x: with u = fl(1 + x),
    # log1p(x) = log(u) * x / (u - 1) (exact where u == 1: log1p(x) = x)   [Goldberg 1991]
    dt = b.node.inputs[0].dtype
    one = b.scalar(1.0, dt)
    u = b.Add(one, x)
    um1 = b.Sub(u, one)
    is_one = b.Equal(um1, b.scalar(0.0, dt))
    safe = b.Where(is_one, one, um1)
    return b.Where(is_one, x, b.Div(b.Mul(b.Log(u), x), safe))


primitive("log1p", "elementwise", float_same,
          vjp=lambda g, out, x: (g / (1.0 + x),),                       # d log(1+x) = dx / (1+x)
          onnx=_log1p_onnx, np=np.log1p)


def _prod_vjp(g, out, x, axes, keepdims):
    # d prod x / d x_i = prod_{j != i} x_j, exact with zeros: with z the zero entries,
    # P the product of the nonzero ones and c the count of zeros,
    #   others_i = P / x_i (c = 0),  P where x_i = 0 (c = 1),  0 otherwise
    z = P("eq", x, const(0, x.dtype))
    safe = P("where", z, const(1, x.dtype), x)
    p = spread(P("prod", safe, axes=axes, keepdims=keepdims), x, axes, keepdims)
    c = spread(P("sum", P("cast", z, dtype=x.dtype), axes=axes, keepdims=keepdims), x, axes, keepdims)
    zero = const(0, x.dtype)
    others = P("where", z, P("where", P("eq", c, const(1, x.dtype)), p, zero),
               P("where", P("eq", c, zero), p / safe, zero))
    return (spread(g, x, axes, keepdims) * others,)


primitive("prod", "reduce", _reduced, vjp=_prod_vjp,
          onnx=_onnx_reduce("ReduceProd"), np=_np_reduce(np.prod))
