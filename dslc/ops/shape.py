"""Shape primitives: reshape, transpose, concat, (un)squeeze, expand, slice,
flip, pad, fill, one-hot (gathers and scatters: index.py). Dims in attributes may be
symbolic; the lowering turns them into shape tensors at run time."""
from __future__ import annotations

import numpy as np

from ..ir import dims as D
from ..ir.dims import show_shape
from ..ir.node import ShapeError, apply as P
from ..ir.types import NUMPY, TensorType
from ..ir.registry import primitive


def _prod(shape):
    out = 1
    for d in shape:
        out = D.mul(out, d)
    return out


def sum_to(g, shape):
    """Un-broadcast: sum g over the axes that broadcasting added or stretched."""
    if g.shape == tuple(shape):
        return g
    lead = g.rank - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and g.shape[lead + i] != 1)
    if lead and axes == tuple(range(lead)):      # only added leading axes: one sum, no reshape
        return P("sum", g, axes=axes, keepdims=False)
    if axes:
        g = P("sum", g, axes=axes, keepdims=True)
    if lead or g.shape != tuple(shape):
        g = P("reshape", g, shape=tuple(shape))
    return g


# -- reshape ---------------------------------------------------------------
def _reshape_shape(types, shape):
    (t,) = types
    if _prod(t.shape) != _prod(shape):
        raise ShapeError(f"cannot reshape {t} to {show_shape(shape)}: sizes differ")
    return t.with_shape(shape)


primitive("reshape", "shape", _reshape_shape,
          vjp=lambda g, out, x, shape: (P("reshape", g, shape=x.shape),),
          onnx=lambda b, x, shape: b.Reshape(x, b.dims(shape)),
          np=lambda x, shape: x.reshape(shape))


# -- transpose -------------------------------------------------------------
def _transpose_shape(types, perm):
    (t,) = types
    if sorted(perm) != list(range(t.rank)):
        raise ShapeError(f"transpose of {t} needs a permutation of {t.rank} axes, found {list(perm)}")
    return t.with_shape(tuple(t.shape[p] for p in perm))


primitive("transpose", "shape", _transpose_shape,
          vjp=lambda g, out, x, perm: (P("transpose", g, perm=tuple(int(i) for i in np.argsort(perm))),),
          onnx=lambda b, x, perm: b.Transpose(x, perm=list(perm)),
          np=lambda x, perm: np.transpose(x, perm))


# -- concat ----------------------------------------------------------------
def _concat_shape(types, axis):
    t0 = types[0]
    if not 0 <= axis < t0.rank:
        raise ShapeError(f"concat axis {axis} is out of range for {t0}")
    total = 0
    for t in types:
        if t.dtype != t0.dtype:
            raise ShapeError(f"cannot concat {t0} and {t}: dtypes differ")
        if t.rank != t0.rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, t0.shape)) if i != axis):
            raise ShapeError(f"cannot concat {t0} and {t} along axis {axis}: other dims differ")
        total = D.add(total, t.shape[axis])
    return t0.with_shape(t0.shape[:axis] + (total,) + t0.shape[axis + 1:])


def _concat_vjp(g, out, *xs, axis):
    grads, start = [], 0
    for x in xs:
        end = D.add(start, x.shape[axis])
        grads.append(slice_axis(g, axis, start, end))
        start = end
    return tuple(grads)


primitive("concat", "shape", _concat_shape, vjp=_concat_vjp,
          onnx=lambda b, *xs, axis: b.Concat(*xs, axis=axis),
          np=lambda *xs, axis: np.concatenate(xs, axis=axis))


# -- unsqueeze / squeeze (axes in the output / input numbering) ------------
def _unsqueeze_shape(types, axes):
    (t,) = types
    shape = list(t.shape)
    for a in sorted(axes):
        if not 0 <= a <= len(shape):
            raise ShapeError(f"unsqueeze axis {a} out of range for {t}")
        shape.insert(a, 1)
    return t.with_shape(shape)


def _squeeze_shape(types, axes):
    (t,) = types
    for a in axes:
        if not 0 <= a < t.rank or t.shape[a] != 1:
            raise ShapeError(f"cannot squeeze axis {a} of {t}: it is not of size 1")
    return t.with_shape(tuple(d for i, d in enumerate(t.shape) if i not in axes))


primitive("unsqueeze", "shape", _unsqueeze_shape,
          vjp=lambda g, out, x, axes: (P("squeeze", g, axes=axes),),
          onnx=lambda b, x, axes: b.Unsqueeze(x, b.ints(axes)),
          np=lambda x, axes: np.expand_dims(x, tuple(axes)))
primitive("squeeze", "shape", _squeeze_shape,
          vjp=lambda g, out, x, axes: (P("unsqueeze", g, axes=axes),),
          onnx=lambda b, x, axes: b.Squeeze(x, b.ints(axes)) if axes else b.Identity(x),
          np=lambda x, axes: np.squeeze(x, tuple(axes)) if axes else x)


# -- expand (broadcast_to) -------------------------------------------------
def _expand_shape(types, shape):
    (t,) = types
    lead = len(shape) - t.rank
    if lead < 0 or any(d != 1 and d != shape[lead + i] for i, d in enumerate(t.shape)):
        raise ShapeError(f"cannot broadcast {t} to {show_shape(shape)}")
    return t.with_shape(shape)


primitive("expand", "shape", _expand_shape,
          vjp=lambda g, out, x, shape: (sum_to(g, x.shape),),            # adjoint of broadcast is sum
          onnx=lambda b, x, shape: b.Expand(x, b.dims(shape)),
          np=lambda x, shape: np.broadcast_to(x, shape).copy())


# -- slice: per axis (axis, start, end, step), 0 <= start <= end <= dim -----
def _slice_shape(types, spec):
    (t,) = types
    shape = list(t.shape)
    for axis, start, end, step in spec:
        if not 0 <= axis < t.rank:
            raise ShapeError(f"slice axis {axis} out of range for {t}")
        if step < 1:
            raise ShapeError("slice steps must be positive")
        n = D.sub(end, start)
        shape[axis] = n if step == 1 else D.floordiv(D.add(n, step - 1), step)
    return t.with_shape(shape)


def _slice_vjp(g, out, x, spec):
    # the adjoint of taking a window is padding the gradient back with zeros
    return (_strided_slice_grad(g, x, spec),)


def _strided_slice_grad(g, x, spec):
    # spread the kept entries `step` apart (pad a new trailing axis, merge it), then pad back
    for axis, start, end, step in spec:
        if step == 1:
            continue
        u = P("unsqueeze", g, axes=(axis + 1,))
        pads = [(0, 0)] * u.rank
        pads[axis + 1] = (0, step - 1)
        u = P("pad", u, pads=tuple(pads))
        merged = g.shape[:axis] + (D.mul(g.shape[axis], step),) + g.shape[axis + 1:]
        g = slice_axis(P("reshape", u, shape=merged), axis, 0, D.sub(end, start))
    pads = [(0, 0)] * x.rank
    for axis, start, end, _ in spec:
        pads[axis] = (start, D.sub(x.shape[axis], end))
    return P("pad", g, pads=tuple(pads))


def _slice_onnx(b, x, spec):
    part = b.split_of.get(b.node.id) if b.node is not None else None
    if part is not None:            # one window of an exact tiling: one Split for all (lower/driver.py)
        axis, sizes, k = part
        key = ("Split", x, axis, sizes)
        if key not in b._cache:
            b._cache[key] = b.op("Split", x, b.ints(sizes), _outputs=len(sizes), axis=axis)
        return b._cache[key][k]
    axes = [s[0] for s in spec]
    return b.Slice(x, b.dims([s[1] for s in spec]), b.dims([s[2] for s in spec]),
                   b.ints(axes), b.ints([s[3] for s in spec]))


def _slice_np(x, spec):
    idx = [slice(None)] * x.ndim
    for axis, start, end, step in spec:
        idx[axis] = slice(start, end, step)
    return x[tuple(idx)]


primitive("slice", "shape", _slice_shape, vjp=_slice_vjp, onnx=_slice_onnx, np=_slice_np)


def slice_axis(x, axis, start, end, step=1):
    return P("slice", x, spec=((axis, start, end, step),))


# -- flip (reverse along axes) ---------------------------------------------
primitive("flip", "shape", lambda types, axes: types[0],
          vjp=lambda g, out, x, axes: (P("flip", g, axes=axes),),       # flip is its own adjoint
          onnx=lambda b, x, axes: b.Slice(x, b.ints([-1] * len(axes)), b.ints([-(2 ** 62)] * len(axes)),
                                          b.ints(axes), b.ints([-1] * len(axes))),
          np=lambda x, axes: np.flip(x, tuple(axes)).copy())


# -- pad with zeros: pads[i] = (before, after) -------------------------------
def _pad_shape(types, pads):
    (t,) = types
    if len(pads) != t.rank:
        raise ShapeError(f"pad of {t} needs {t.rank} (before, after) pairs")
    return t.with_shape(tuple(D.add(D.add(d, a), z) for d, (a, z) in zip(t.shape, pads)))


def _pad_vjp(g, out, x, pads):
    spec = tuple((i, a, D.add(a, x.shape[i]), 1) for i, (a, _) in enumerate(pads) if (a, _) != (0, 0))
    return (P("slice", g, spec=spec) if spec else g,)


primitive("pad", "shape", _pad_shape, vjp=_pad_vjp,
          onnx=lambda b, x, pads: b.Pad(x, b.dims([p[0] for p in pads] + [p[1] for p in pads])),
          np=lambda x, pads: np.pad(x, [tuple(p) for p in pads]))


# -- fill: a constant tensor of a (maybe symbolic) shape --------------------
primitive("fill", "shape", lambda types, value, shape, dtype: TensorType(dtype, tuple(shape)),
          vjp=lambda g, out, value, shape, dtype: (),
          onnx=lambda b, value, shape, dtype: b.ConstantOfShape(b.dims(shape), value=b.tensor([value], dtype)),
          np=lambda value, shape, dtype: np.full(shape, value, dtype=NUMPY[dtype]))


# -- one-hot ---------------------------------------------------------------
def _one_hot_shape(types, depth, dtype):
    (t,) = types
    if t.dtype != "i64":
        raise ShapeError(f"class labels must be i64 class indices, found {t}")
    return TensorType(dtype, t.shape + (depth,))


def _one_hot_onnx(b, x, depth, dtype):
    # one_hot(x)[..., k] = cast(x[..., None] == k): Equal + Cast runs for every dtype
    # (ONNX Runtime has no OneHot kernel with double values), and a label outside
    # [0, depth) gives an all-zero row rather than OneHot's wrap-around of negatives
    hit = b.Equal(b.Unsqueeze(x, b.ints([-1])), b.ints(range(depth)))
    return hit if dtype == "bool" else b.Cast(hit, to=b.onnx_dtype(dtype))


primitive("one_hot", "shape", _one_hot_shape, vjp=lambda g, out, x, depth, dtype: (None,),
          onnx=_one_hot_onnx,
          np=lambda x, depth, dtype: np.eye(depth, dtype=NUMPY[dtype])[x])
