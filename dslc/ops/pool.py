"""Max pooling over NCL / NCHW windows as ONNX `MaxPool`, and its gradient:
for disjoint windows (kernel = strides) by comparing each window tap with the
max, for overlapping ones through MaxPool's indices.

Three primitives close under differentiation (ties: the first maximum of a
window wins, as in ONNX and PyTorch):
  max_pool(x)          y[w] = max of window w of x
  max_pool_grad(x, g)  S_x g: each g[w] added at the argmax of window w (shape of x)
  max_pool_pick(x, h)  P_x h: h read at the argmax of each window (shape of y)
S_x and P_x are adjoint linear maps in their second argument; the argmax is
locally constant in x, so x gets no gradient through either.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..ir import dims as D
from ..ir.node import ShapeError, apply as P
from ..ir.types import TensorType
from .registry import primitive


def pooled_shape(shape: tuple, kernel: tuple, strides: tuple) -> tuple:
    """[N, C, *S] -> [N, C, *((S - k) / s + 1)] (windows that fit; floor)."""
    return tuple(shape[:2]) + tuple(D.add(D.floordiv(D.sub(n, k), s), 1)
                                    for n, k, s in zip(shape[2:], kernel, strides))


def _check(t: TensorType, kernel, strides):
    if t.rank != len(kernel) + 2 or t.rank not in (3, 4):
        raise ShapeError(f"max pooling needs an NCL or NCHW input matching its window {list(kernel)}, found {t}")
    if t.dtype not in ("f32", "f64"):
        raise ShapeError(f"max pooling needs a float tensor, found {t}")


def _pool_shape(types, kernel, strides):
    (x,) = types
    _check(x, kernel, strides)
    return x.with_shape(pooled_shape(x.shape, kernel, strides))


def _grad_shape(types, kernel, strides):
    x, g = types
    _check(x, kernel, strides)
    if g.shape != pooled_shape(x.shape, kernel, strides) or g.dtype != x.dtype:
        raise ShapeError(f"max_pool_grad: {g} is not the pooled shape of {x}")
    return x


def _pick_shape(types, kernel, strides):
    x, h = types
    _check(x, kernel, strides)
    if h.shape != x.shape or h.dtype != x.dtype:
        raise ShapeError(f"max_pool_pick: {h} does not match {x}")
    return x.with_shape(pooled_shape(x.shape, kernel, strides))


# -- NumPy reference: flat argmax index of every window (ONNX MaxPool's Indices)
def _argmax_flat(x: np.ndarray, kernel, strides) -> np.ndarray:
    nsp = len(kernel)
    sp = tuple(range(2, 2 + nsp))
    win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=sp)
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)]   # [N, C, *O, *K]
    out_sp = win.shape[2:2 + nsp]
    arg = win.reshape(win.shape[:2 + nsp] + (-1,)).argmax(-1)          # first maximum in the window
    taps = np.unravel_index(arg, kernel)                               # offsets inside the window
    grids = np.meshgrid(*[np.arange(o) for o in out_sp], indexing="ij")
    pos = [grids[i] * strides[i] + taps[i] for i in range(nsp)]        # spatial position of the max
    n, c = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[1]), indexing="ij")
    n = n.reshape(n.shape + (1,) * nsp)
    c = c.reshape(c.shape + (1,) * nsp)
    return np.ravel_multi_index((n, c, *pos), x.shape).astype(np.int64)


def _pool_np(x, kernel, strides):
    return x.reshape(-1)[_argmax_flat(x, kernel, strides)]


def _grad_np(x, g, kernel, strides):
    out = np.zeros(x.size, dtype=x.dtype)
    np.add.at(out, _argmax_flat(x, kernel, strides).reshape(-1), g.reshape(-1))
    return out.reshape(x.shape)


def _pick_np(x, h, kernel, strides):
    return h.reshape(-1)[_argmax_flat(x, kernel, strides)]


# -- ONNX: MaxPool, with its Indices output for the gradient ---------------------
def _maxpool(b, x, kernel, strides, indices=False):
    """The forward value is a plain MaxPool (ORT runs it blocked, NCHWc), shared with
    the gradient of disjoint windows; overlapping windows' scatter and gather share
    one MaxPool with its Indices output per (input, window) (ORT's indices kernel is
    several times slower, so only they pay for it)."""
    key = ("MaxPool+indices" if indices else "MaxPool", x, tuple(kernel), tuple(strides))
    if key not in b._cache:
        b._cache[key] = b.op("MaxPool", x, _outputs=2 if indices else 1, kernel_shape=list(kernel),
                             strides=list(strides))
    return b._cache[key]


def _split_tap(b, x, shape, ax, k):
    """x of shape `shape` (already pooled before spatial axis ax) -> the k window taps
    along that axis: [.., O k, ..] -> k of [.., O, ..]; a Split moves contiguous runs."""
    o = shape[2 + ax] // k
    split = tuple(shape[:2 + ax]) + (o, k) + tuple(shape[3 + ax:])
    parts = b.op("Split", b.Reshape(x, b.dims(split)), _outputs=k, axis=3 + ax, num_outputs=k)
    parts = [parts] if k == 1 else parts
    return [b.Reshape(t, b.dims(tuple(shape[:2 + ax]) + (o,) + tuple(shape[3 + ax:]))) for t in parts], \
        tuple(shape[:2 + ax]) + (o,) + tuple(shape[3 + ax:])


def _grad_disjoint(b, x, g, kernel):
    """S_x g for windows that tile x (kernel = strides): tap t of each window gets g
    where it equals the window's max and no earlier tap did (the first maximum):
    r ← g;  d_t = r · [tap_t = max];  r ← r − d_t;  the last tap gets what is left.
    Then the pieces interleave back into x's layout (and the cropped edge is 0)."""
    y = _maxpool(b, x, kernel, kernel)
    pooled = tuple(g.shape)
    whole = tuple(x.shape[:2]) + tuple(o * k for o, k in zip(pooled[2:], kernel))
    xc = x
    if whole != tuple(x.shape):        # floor: rows / columns past the last window
        nsp = len(kernel)
        xc = b.Slice(x, b.ints([0] * nsp), b.ints(whole[2:]), b.ints(range(2, 2 + nsp)))
    taps, shape = [xc], whole
    for ax, k in enumerate(kernel):
        if k == 1:                     # a window one entry wide along ax: nothing to cut
            continue
        nxt = []
        for t in taps:
            parts, new_shape = _split_tap(b, t, shape, ax, k)
            nxt.extend(parts)
        taps, shape = nxt, new_shape
    one = b.onnx_dtype(g.dtype)
    rest, ds = g, []
    for t in taps[:-1]:
        d = b.Mul(rest, b.Cast(b.Equal(t, y), to=one))
        rest = b.Sub(rest, d)
        ds.append(d)
    ds.append(rest)
    # interleave: innermost window axis first, [.., O, k] -> [.., O k]
    for ax in reversed(range(len(kernel))):
        k = kernel[ax]
        if k == 1:
            continue
        shape = tuple(shape[:2 + ax]) + (shape[2 + ax] * k,) + tuple(shape[3 + ax:])
        merged = []
        for i in range(0, len(ds), k):
            group = [b.Unsqueeze(d, b.ints([3 + ax])) for d in ds[i:i + k]]
            merged.append(b.Reshape(b.Concat(*group, axis=3 + ax) if k > 1 else group[0], b.dims(shape)))
        ds = merged
    (dx,) = ds
    if whole != tuple(x.shape):
        pads = [0] * len(x.shape) + [0, 0] + [n - w for n, w in zip(x.shape[2:], whole[2:])]
        dx = b.Pad(dx, b.ints(pads))
    return dx


def _grad_onnx(b, x, g, kernel, strides):
    if tuple(kernel) == tuple(strides) and all(isinstance(d, int) for d in x.shape[2:]):
        return _grad_disjoint(b, x, g, kernel)
    _, idx = _maxpool(b, x, kernel, strides, indices=True)
    if tuple(kernel) == tuple(strides):          # disjoint windows: each index once
        return b.MaxUnpool(g, idx, b.Shape(x), kernel_shape=list(kernel), strides=list(strides))
    flat = b.ints([-1])                          # overlapping windows: indices repeat, so add
    zeros = b.Reshape(b.ConstantOfShape(b.Shape(x), value=b.tensor([0], b.node.dtype)), flat)
    out = b.ScatterElements(zeros, b.Reshape(idx, flat), b.Reshape(g, flat), axis=0, reduction="add")
    return b.Reshape(out, b.Shape(x))


def _pick_onnx(b, x, h, kernel, strides):
    _, idx = _maxpool(b, x, kernel, strides, indices=True)
    flat = b.ints([-1])
    return b.Reshape(b.GatherElements(b.Reshape(h, flat), b.Reshape(idx, flat), axis=0), b.Shape(idx))


primitive("max_pool", "nn", _pool_shape,
          # dy = dx at the argmax of each window
          vjp=lambda g, out, x, kernel, strides: (P("max_pool_grad", x, g, kernel=kernel, strides=strides),),
          onnx=lambda b, x, kernel, strides: _maxpool(b, x, kernel, strides), np=_pool_np)
primitive("max_pool_grad", "nn", _grad_shape,
          # linear in g with adjoint P_x; the argmax is locally constant in x
          vjp=lambda gg, out, x, g, kernel, strides: (None, P("max_pool_pick", x, gg, kernel=kernel, strides=strides)),
          onnx=_grad_onnx, np=_grad_np)
primitive("max_pool_pick", "nn", _pick_shape,
          # linear in h with adjoint S_x
          vjp=lambda gg, out, x, h, kernel, strides: (None, P("max_pool_grad", x, gg, kernel=kernel, strides=strides)),
          onnx=_pick_onnx, np=_pick_np)


# -- pooling by reductions: mean pooling, and max pooling where MaxPool does not serve --------
def window_reduce(x, ks, ss, how: str):
    """`how` ("max" | "mean") over every window of size ks at strides ss of the
    spatial axes of x [N, C, *S] (valid windows, no padding)."""
    nsp = len(ks)
    sp = tuple(range(2, 2 + nsp))
    outs = [D.add(D.floordiv(D.sub(n, k), s), 1) for n, k, s in zip(x.shape[2:], ks, ss)]   # (n - k) / s + 1
    if tuple(ks) == tuple(ss):
        # disjoint windows: drop the floor remainder, split each axis into
        # (windows, size) and reduce over the size axes
        spec = tuple((ax, 0, D.mul(o, k), 1) for ax, o, k in zip(sp, outs, ks) if D.mul(o, k) != x.shape[ax])
        y = P("slice", x, spec=spec) if spec else x
        split = x.shape[:2] + tuple(d for o, k in zip(outs, ks) for d in (o, k))
        y = P("reshape", y, shape=split)
        axes = tuple(3 + 2 * i for i in range(nsp))
    else:
        # overlapping (or gapped) windows: one strided slice per tap, stacked on a new last axis
        taps = []
        for offs in itertools.product(*(range(k) for k in ks)):
            spec = tuple((ax, t, D.add(t, D.add(D.mul(D.sub(o, 1), s), 1)), s)
                         for ax, t, o, s in zip(sp, offs, outs, ss))
            taps.append(P("unsqueeze", P("slice", x, spec=spec), axes=(x.rank,)))
        y = taps[0] if len(taps) == 1 else P("concat", *taps, axis=x.rank)
        axes = (x.rank,)
    return P(how, y, axes=axes, keepdims=False)
