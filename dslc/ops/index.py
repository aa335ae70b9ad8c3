"""Indexing primitives (shape family): gathers by integer tensors and their
adjoints, the scatter-adds.

  gather(x, idx; axis)            y[..., i..., ...] = x[..., idx[i...], ...]      (ONNX Gather)
  scatter_add(idx, u; rows, axis) zeros with u added at idx along axis             (ScatterND / ScatterElements add)
  take_along_axis(x, idx; axis)   y[.., j, ..] = x[.., idx[.., j, ..], ..]         (ONNX GatherElements)
  scatter_along(idx, u; shape, axis)  zeros(shape) with u added at idx along axis  (ScatterElements add)

Each gather's adjoint is its scatter-add and the other way round, so
gradients of every order stay inside these four. Indices are i64 in [0, n).
"""
from __future__ import annotations

import numpy as np

from ..ir import dims as D
from ..ir.dims import show_shape
from ..ir.node import ShapeError, apply as P
from ..ir.types import TensorType
from .registry import primitive


def _need_index(t: TensorType, what: str):
    if t.dtype != "i64":
        raise ShapeError(f"{what} needs i64 indices, found {t}")


def _axis_of(t: TensorType, axis: int, what: str) -> None:
    if not 0 <= axis < t.rank:
        raise ShapeError(f"{what} axis {axis} is out of range for {t}")


def _zeros(b, shape, dtype):
    return b.ConstantOfShape(b.dims(shape), value=b.tensor([0], dtype))


# -- gather along an axis: out = x.shape[:axis] + idx.shape + x.shape[axis+1:] ---
def _gather_shape(types, axis=0):
    x, idx = types
    _need_index(idx, "gather")
    if x.rank < 1:
        raise ShapeError(f"cannot gather from a scalar {x}")
    _axis_of(x, axis, "gather")
    return x.with_shape(x.shape[:axis] + idx.shape + x.shape[axis + 1:])


primitive("gather", "shape", _gather_shape,
          # y = x[idx] along axis  =>  x̄ = scatter-add of ȳ at idx
          vjp=lambda g, out, x, idx, axis=0: (P("scatter_add", idx, g, rows=x.shape[axis], axis=axis), None),
          onnx=lambda b, x, idx, axis=0: b.Gather(x, idx, axis=axis),
          np=lambda x, idx, axis=0: np.take(x, idx, axis=axis))


# -- scatter-add into zeros: out = u.shape[:axis] + (rows,) + u.shape[axis+k:] ---
def _scatter_shape(types, rows, axis=0):
    idx, upd = types
    _need_index(idx, "scatter_add")
    k = idx.rank
    if upd.shape[axis:axis + k] != idx.shape:
        raise ShapeError(f"scatter_add of updates {upd} at indices {idx} along axis {axis}: the updates' "
                         f"dims {axis}..{axis + k - 1} must be {show_shape(idx.shape)}")
    return upd.with_shape(upd.shape[:axis] + (rows,) + upd.shape[axis + k:])


def _scatter_np(idx, upd, rows, axis=0):
    out = np.zeros(upd.shape[:axis] + (rows,) + upd.shape[axis + idx.ndim:], dtype=upd.dtype)
    np.add.at(out, (slice(None),) * axis + (idx,), upd)
    return out


def _scatter_onnx(b, idx, upd, rows, axis=0):
    it, ut = b.node.inputs[0].type, b.node.inputs[1].type
    out_shape = b.node.shape
    zeros = _zeros(b, out_shape, ut.dtype)
    if axis == 0:
        return b.ScatterND(zeros, b.Unsqueeze(idx, b.ints([-1])), upd, reduction="add")
    # flatten the index dims to one axis K, broadcast the indices over the updates
    pre, post = ut.shape[:axis], ut.shape[axis + it.rank:]
    k = 1
    for d in it.shape:
        k = D.mul(k, d)
    u2 = b.Reshape(upd, b.dims(pre + (k,) + post))
    i2 = b.Expand(b.Reshape(idx, b.dims((1,) * axis + (k,) + (1,) * len(post))), b.dims(pre + (k,) + post))
    return b.ScatterElements(zeros, i2, u2, axis=axis, reduction="add")


primitive("scatter_add", "shape", _scatter_shape,
          vjp=lambda g, out, idx, upd, rows, axis=0: (None, P("gather", g, idx, axis=axis)),
          onnx=_scatter_onnx, np=_scatter_np)


# -- take_along_axis: idx has x's shape except along axis ------------------------
def _take_shape(types, axis):
    x, idx = types
    _need_index(idx, "take_along_axis")
    _axis_of(x, axis, "take_along_axis")
    if idx.rank != x.rank or any(a != b for i, (a, b) in enumerate(zip(x.shape, idx.shape)) if i != axis):
        raise ShapeError(f"take_along_axis needs indices of the shape of {x} except along axis {axis}, found {idx}")
    return x.with_shape(idx.shape)


def _scatter_along_shape(types, shape, axis):
    idx, upd = types
    _need_index(idx, "scatter_along")
    if upd.shape != idx.shape or len(shape) != idx.rank:
        raise ShapeError(f"scatter_along needs updates {upd} of the indices' shape {idx}")
    return upd.with_shape(tuple(shape))


def _scatter_along_np(idx, upd, shape, axis):
    out = np.zeros(shape, dtype=upd.dtype)
    where = list(np.indices(idx.shape, sparse=True))
    where[axis] = idx
    np.add.at(out, tuple(where), upd)
    return out


primitive("take_along_axis", "shape", _take_shape,
          vjp=lambda g, out, x, idx, axis: (P("scatter_along", idx, g, shape=x.shape, axis=axis), None),
          onnx=lambda b, x, idx, axis: b.GatherElements(x, idx, axis=axis),
          np=lambda x, idx, axis: np.take_along_axis(x, idx, axis))
primitive("scatter_along", "shape", _scatter_along_shape,
          vjp=lambda g, out, idx, upd, shape, axis: (None, P("take_along_axis", g, idx, axis=axis)),
          onnx=lambda b, idx, upd, shape, axis: b.ScatterElements(
              _zeros(b, shape, b.node.inputs[1].dtype), idx, upd, axis=axis, reduction="add"),
          np=_scatter_along_np)
