"""Construction and scan primitives (shape family): `range` (0, 1, ..., n-1),
`trilu` (the lower or upper triangle of the last two axes), `cumsum`."""
from __future__ import annotations

import numpy as np

from ..ir.node import ShapeError, apply as P
from ..ir.types import NUMPY, TensorType
from .registry import primitive


# -- range: [0, 1, ..., n-1]; n may be symbolic --------------------------------
def _range_onnx(b, n, dtype):
    r = b.Range(b.scalar(0, "i64"), b.Squeeze(b.dim(n), b.ints([0])), b.scalar(1, "i64"))
    return r if dtype == "i64" else b.Cast(r, to=b.onnx_dtype(dtype))


primitive("range", "shape", lambda types, n, dtype: TensorType(dtype, (n,)),
          vjp=lambda g, out, n, dtype: (),
          onnx=_range_onnx, np=lambda n, dtype: np.arange(n, dtype=NUMPY[dtype]))


# -- trilu: keep entries with j - i <= k (lower) or j - i >= k (upper) ---------
def _trilu_shape(types, k, upper):
    (t,) = types
    if t.rank < 2:
        raise ShapeError(f"{'triu' if upper else 'tril'} needs a matrix (rank >= 2), found {t}")
    return t


primitive("trilu", "shape", _trilu_shape,
          vjp=lambda g, out, x, k, upper: (P("trilu", g, k=k, upper=upper),),   # a mask: its own adjoint
          onnx=lambda b, x, k, upper: b.Trilu(x, b.scalar(k, "i64"), upper=int(upper)),
          np=lambda x, k, upper: (np.triu if upper else np.tril)(x, k))


# -- cumsum along an axis (reverse: from the end) ---------------------------------
def _cumsum_shape(types, axis, reverse=False):
    (t,) = types
    if not 0 <= axis < t.rank:
        raise ShapeError(f"cumsum axis {axis} is out of range for {t}")
    if t.dtype == "bool":
        raise ShapeError(f"cumsum needs a number tensor, found {t}")
    return t


def _cumsum_np(x, axis, reverse=False):
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis=axis), axis).astype(x.dtype)
    return np.cumsum(x, axis=axis).astype(x.dtype)


primitive("cumsum", "shape", _cumsum_shape,
          # y_i = sum_{j<=i} x_j  =>  x̄_j = sum_{i>=j} ȳ_i: a cumsum from the other end
          vjp=lambda g, out, x, axis, reverse=False: (P("cumsum", g, axis=axis, reverse=not reverse),),
          onnx=lambda b, x, axis, reverse=False: b.CumSum(x, b.scalar(axis, "i64"), reverse=int(reverse)),
          np=_cumsum_np)
