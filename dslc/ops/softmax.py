"""log softmax as one primitive (ONNX LogSoftmax: one node instead of the
max / subtract / exp / sum / log / add chain); softmax and cross-entropy are
built on it."""
from __future__ import annotations

import numpy as np

from ..ir.node import ShapeError, apply as P
from .registry import primitive


def _shape(types, axis):
    (x,) = types
    if x.dtype not in ("f32", "f64"):
        raise ShapeError(f"log_softmax needs a float tensor, found {x}")
    if not 0 <= axis < max(x.rank, 1):
        raise ShapeError(f"axis {axis} is out of range for {x}")
    return x


def _np(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    return (x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))).astype(x.dtype)


primitive("log_softmax", "nn", _shape,
          # y = x - logsumexp(x):  dx = g - softmax(x) sum(g) = g - e^y sum(g)
          vjp=lambda g, out, x, axis: (g - P("exp", out) * P("sum", g, axes=(axis,), keepdims=True),),
          onnx=lambda b, x, axis: b.LogSoftmax(x, axis=axis), np=_np)
