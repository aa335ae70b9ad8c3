"""Reductions over axes (`axes` normalised, `keepdims` a bool)."""
from __future__ import annotations

import numpy as np

from ..ir.node import ShapeError, apply as P, const
from ..ir.types import TensorType
from ..ir.registry import norm_axis, primitive


def _reduced(types, axes, keepdims):
    (t,) = types
    for a in axes:
        if not 0 <= a < t.rank:
            raise ShapeError(f"axis {a} is out of range for {t}")
    shape = tuple(1 if i in axes else d for i, d in enumerate(t.shape) if keepdims or i not in axes)
    return t.with_shape(shape)


def spread(g, x, axes, keepdims):
    """g (a reduction of x over axes) broadcast back to x's shape."""
    if not keepdims and axes:
        g = P("unsqueeze", g, axes=tuple(axes))
    return P("expand", g, shape=x.shape)


def _onnx_reduce(op):
    def lower(b, x, axes, keepdims):
        if not axes:
            return b.Identity(x)
        return getattr(b, op)(x, b.ints(axes), keepdims=int(keepdims))
    return lower


def _np_reduce(fn):
    return lambda x, axes, keepdims: np.asarray(fn(x, axis=tuple(axes), keepdims=keepdims), dtype=x.dtype)


def _extreme_vjp(g, out, x, axes, keepdims):
    # the gradient goes to the arg-extreme entries, split equally among ties
    hit = P("eq", x, spread(out, x, axes, keepdims))
    share = P("cast", hit, dtype=x.dtype)
    count = spread(P("sum", share, axes=axes, keepdims=keepdims), x, axes, keepdims)
    return (spread(g, x, axes, keepdims) * share / count,)


primitive("sum", "reduce", _reduced,
          vjp=lambda g, out, x, axes, keepdims: (spread(g, x, axes, keepdims),),   # d sum x = sum dx
          onnx=_onnx_reduce("ReduceSum"), np=_np_reduce(np.sum))
primitive("mean", "reduce", _reduced,
          # d mean x = sum dx / n, n the number of reduced entries (maybe symbolic)
          vjp=lambda g, out, x, axes, keepdims: (spread(g, x, axes, keepdims) / P("size", x, axes=axes, dtype=x.dtype),),
          onnx=_onnx_reduce("ReduceMean"), np=_np_reduce(np.mean))
primitive("max", "reduce", _reduced, vjp=_extreme_vjp,
          onnx=_onnx_reduce("ReduceMax"), np=_np_reduce(np.max))
primitive("min", "reduce", _reduced, vjp=_extreme_vjp,
          onnx=_onnx_reduce("ReduceMin"), np=_np_reduce(np.min))


def _argmax_shape(types, axis, keepdims):
    (t,) = types
    a = norm_axis(axis, t.rank)
    return TensorType("i64", tuple(1 if i == a else d for i, d in enumerate(t.shape) if keepdims or i != a))


primitive("argmax", "reduce", _argmax_shape, vjp=lambda g, out, x, axis, keepdims: (None,),
          onnx=lambda b, x, axis, keepdims: b.ArgMax(x, axis=axis, keepdims=int(keepdims)),
          np=lambda x, axis, keepdims: np.asarray(np.argmax(x, axis=axis, keepdims=keepdims), dtype=np.int64))


def _size_shape(types, axes, dtype):
    return TensorType(dtype, ())


def _size_onnx(b, x, axes, dtype):
    shape = x.shape
    dims = [shape[a] for a in axes]
    if all(isinstance(d, int) for d in dims):
        return b.scalar(float(np.prod(dims)) if dims else 1.0, dtype)
    ax = sorted(axes)
    if ax == list(range(x.rank)):
        n = b.Size(x)                                   # every axis: the element count
    elif ax == list(range(ax[0], ax[-1] + 1)):          # a run of axes: one slice of the shape
        n = b.ReduceProd(b.Shape(x, start=ax[0], end=ax[-1] + 1), keepdims=0)
    else:
        n = b.ReduceProd(b.Gather(b.Shape(x), b.ints(axes), axis=0), keepdims=0)
    return b.Cast(n, to=b.onnx_dtype(dtype))


primitive("size", "reduce", _size_shape, vjp=lambda g, out, x, axes, dtype: (None,),
          onnx=_size_onnx,
          np=lambda x, axes, dtype: np.asarray(np.prod([x.shape[a] for a in axes]) if axes else 1,
                                               dtype=const(0, dtype).attrs["value"].dtype))
