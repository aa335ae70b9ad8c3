"""Elementwise primitives: unary maps, binary arithmetic with broadcasting,
comparisons, selection and casts."""
from __future__ import annotations

import numpy as np

from ..ir.node import ShapeError, apply as P, const
from ..ir.types import NUMPY, TensorType
from ..ir.registry import broadcast_shapes, need_float, primitive, same_dtype


def same_as_input(types, **_):
    return types[0]


def float_same(types, **_):
    need_float(types[0], "this function")
    return types[0]


def zero_grad_where(cond, g):
    """g where cond holds, 0 elsewhere."""
    return P("where", cond, g, const(0.0, g.dtype))


# -- unary: each line states d f(x) ---------------------------------------
primitive("neg", "elementwise", same_as_input,
          vjp=lambda g, out, x: (-g,),                                  # d(-x) = -dx
          onnx=lambda b, x: b.Neg(x), np=np.negative)
primitive("exp", "elementwise", float_same,
          vjp=lambda g, out, x: (g * out,),                             # d e^x = e^x dx
          onnx=lambda b, x: b.Exp(x), np=np.exp)
primitive("log", "elementwise", float_same,
          vjp=lambda g, out, x: (g / x,),                               # d log x = dx / x
          onnx=lambda b, x: b.Log(x), np=np.log)
primitive("sqrt", "elementwise", float_same,
          vjp=lambda g, out, x: (g * 0.5 / out,),                       # d sqrt x = dx / (2 sqrt x)
          onnx=lambda b, x: b.Sqrt(x), np=np.sqrt)
primitive("abs", "elementwise", same_as_input,
          vjp=lambda g, out, x: (g * P("sign", x),),                    # d|x| = sign(x) dx
          onnx=lambda b, x: b.Abs(x), np=np.abs)
primitive("sign", "elementwise", same_as_input,
          vjp=lambda g, out, x: (None,),                                # flat almost everywhere
          onnx=lambda b, x: b.Sign(x), np=np.sign)
primitive("relu", "elementwise", float_same,
          # d relu x = 1[x>0] dx = 1[relu x > 0] dx: a multiply by the cast mask (ORT's Where is
          # slower); read off the output, so x is not kept and ORT can fuse the op before relu with it
          vjp=lambda g, out, x: (g * P("cast", P("gt", out, const(0.0, x.dtype)), dtype=x.dtype),),
          onnx=lambda b, x: b.Relu(x), np=lambda x: np.maximum(x, 0).astype(x.dtype))
primitive("sigmoid", "elementwise", float_same,
          vjp=lambda g, out, x: (g * out * (1.0 - out),),               # s' = s (1 - s)
          onnx=lambda b, x: b.Sigmoid(x),
          np=lambda x: (0.5 * (1 + np.tanh(0.5 * x))).astype(x.dtype))
primitive("tanh", "elementwise", float_same,
          vjp=lambda g, out, x: (g * (1.0 - out * out),),               # tanh' = 1 - tanh^2
          onnx=lambda b, x: b.Tanh(x), np=np.tanh)


def _softplus_onnx(b, x):
    # log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): no overflow at |x| = 1e4
    one = b.scalar(1.0, x.dtype)
    return b.Add(b.Relu(x), b.Log(b.Add(one, b.Exp(b.Neg(b.Abs(x))))))


def _softplus_np(x):
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype)


primitive("softplus", "elementwise", float_same,
          vjp=lambda g, out, x: (g * P("sigmoid", x),),                 # softplus' = sigmoid
          onnx=_softplus_onnx, np=_softplus_np)
primitive("stop_gradient", "elementwise", same_as_input,
          vjp=lambda g, out, x: (None,),                                # treated as a constant
          onnx=lambda b, x: b.Identity(x), np=lambda x: x)


# -- binary arithmetic (NumPy broadcasting; autodiff un-broadcasts) --------
def binary(what):
    def rule(types, **_):
        dt = same_dtype(types, what)
        if dt == "bool":
            raise ShapeError(f"cannot {what} bool tensors")
        return TensorType(dt, broadcast_shapes(*(t.shape for t in types), what=what))
    return rule


primitive("add", "elementwise", binary("add"),
          vjp=lambda g, out, a, b: (g, g),                              # d(a+b) = da + db
          onnx=lambda b, x, y: b.Add(x, y), np=np.add)
primitive("sub", "elementwise", binary("subtract"),
          vjp=lambda g, out, a, b: (g, -g),                             # d(a-b) = da - db
          onnx=lambda b, x, y: b.Sub(x, y), np=np.subtract)
primitive("mul", "elementwise", binary("multiply"),
          vjp=lambda g, out, a, b: (g * b, g * a),                      # d(ab) = b da + a db
          onnx=lambda b, x, y: b.Mul(x, y), np=np.multiply)
primitive("div", "elementwise", binary("divide"),
          vjp=lambda g, out, a, b: (g / b, -g * out / b),               # d(a/b) = da/b - a db/b^2
          onnx=lambda b, x, y: b.Div(x, y),
          np=lambda a, b: (a // b) if a.dtype.kind == "i" else np.divide(a, b))


def _pow_vjp(g, out, a, b):
    # d a^b = b a^(b-1) da + log(a) a^b db
    if b.op == "const":
        return g * b * a ** (b - 1.0), None
    return g * b * a ** (b - 1.0), g * P("log", a) * out


primitive("pow", "elementwise", binary("raise"), vjp=_pow_vjp,
          onnx=lambda b, x, y: b.Pow(x, y), np=np.power)
primitive("maximum", "elementwise", binary("take the maximum of"),
          # the larger input gets the gradient (ties: the first)
          vjp=lambda g, out, a, b: (zero_grad_where(P("ge", a, b), g), zero_grad_where(P("lt", a, b), g)),
          onnx=lambda b, x, y: b.Max(x, y), np=np.maximum)
primitive("minimum", "elementwise", binary("take the minimum of"),
          vjp=lambda g, out, a, b: (zero_grad_where(P("le", a, b), g), zero_grad_where(P("gt", a, b), g)),
          onnx=lambda b, x, y: b.Min(x, y), np=np.minimum)


# -- comparisons give bool; not differentiable -----------------------------
def compare(types, **_):
    same_dtype(types, "compare")
    return TensorType("bool", broadcast_shapes(*(t.shape for t in types), what="compare"))


for _name, _op, _fn in [("lt", "Less", np.less), ("le", "LessOrEqual", np.less_equal),
                        ("gt", "Greater", np.greater), ("ge", "GreaterOrEqual", np.greater_equal),
                        ("eq", "Equal", np.equal)]:
    primitive(_name, "elementwise", compare, vjp=lambda g, out, a, b: (None, None),
              onnx=(lambda op: lambda b, x, y: getattr(b, op)(x, y))(_op), np=_fn)
primitive("ne", "elementwise", compare, vjp=lambda g, out, a, b: (None, None),
          onnx=lambda b, x, y: b.Not(b.Equal(x, y)), np=np.not_equal)


def _where_shape(types, **_):
    c, a, b = types
    if c.dtype != "bool":
        raise ShapeError(f"where needs a bool condition, found {c}")
    dt = same_dtype([a, b], "select between")
    return TensorType(dt, broadcast_shapes(c.shape, a.shape, b.shape, what="select between"))


primitive("where", "elementwise", _where_shape,
          # d where(c, a, b) = where(c, da, 0) + where(c, 0, db)
          vjp=lambda g, out, c, a, b: (None, zero_grad_where(c, g), zero_grad_where(P("not", c), g)),
          onnx=lambda b, c, x, y: b.Where(c, x, y), np=np.where)
primitive("not", "elementwise", lambda types, **_: types[0],
          vjp=lambda g, out, x: (None,), onnx=lambda b, x: b.Not(x), np=np.logical_not)


def _cast_shape(types, dtype):
    return types[0].with_dtype(dtype)


def _cast_vjp(g, out, x, dtype):
    # a cast between float types passes the gradient back (cast to the input's type)
    if x.dtype in ("f32", "f64") and dtype in ("f32", "f64"):
        return (P("cast", g, dtype=x.dtype),)
    return (None,)


primitive("cast", "elementwise", _cast_shape, vjp=_cast_vjp,
          onnx=lambda b, x, dtype: b.Cast(x, to=b.onnx_dtype(dtype)),
          np=lambda x, dtype: x.astype(NUMPY[dtype]))
