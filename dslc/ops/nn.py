"""Network primitives: batched matmul and N-d convolution (NCHW / NCL)."""
from __future__ import annotations

import itertools

import numpy as np

from ..ir import dims as D
from ..ir.dims import show
from ..ir.node import ShapeError, apply as P, const
from ..ir.types import NUMPY, TensorType
from ..ir.registry import broadcast_shapes, primitive
from .shape import slice_axis, sum_to


# -- matmul: [..., n, k] @ [..., k, m] -> [..., n, m] ----------------------
def _matmul_shape(types):
    a, b = types
    if a.dtype != b.dtype:
        raise ShapeError(f"cannot multiply {a} by {b}: dtypes differ")
    if a.rank < 2 or b.rank < 2:
        raise ShapeError(f"cannot multiply {a} by {b}: matmul needs matrices")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"cannot multiply {a} by {b}: {show(a.shape[-1])} != {show(b.shape[-2])}")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2], what="batch-multiply")
    return TensorType(a.dtype, batch + (a.shape[-2], b.shape[-1]))


def swap_last(x):
    perm = tuple(range(x.rank - 2)) + (x.rank - 1, x.rank - 2)
    return P("transpose", x, perm=perm)


primitive("matmul", "nn", _matmul_shape,
          # d(AB) = dA B + A dB  =>  gA = g B^T, gB = A^T g (summed over broadcast batches)
          vjp=lambda g, out, a, b: (sum_to(g @ swap_last(b), a.shape), sum_to(swap_last(a) @ g, b.shape)),
          onnx=lambda b, x, y: b.MatMul(x, y), np=np.matmul)


# -- conv: x [N, C, *S], w [O, C, *K] ---------------------------------------
def conv_out(n, k, s, d, pb, pe):
    """(n + pb + pe - d (k - 1) - 1) / s + 1"""
    return D.add(D.floordiv(D.sub(D.add(D.add(n, pb), pe), d * (k - 1) + 1), s), 1)


def _conv_shape(types, strides, pads, dilations):
    x, w = types
    nsp = len(strides)
    if x.rank != nsp + 2:
        raise ShapeError(f"conv over {nsp} spatial dims needs an input of rank {nsp + 2} "
                         f"(N, C, {'H, W' if nsp == 2 else 'L'}), found {x}")
    if w.rank != nsp + 2:
        raise ShapeError(f"conv kernel must be [out, in, {', '.join(['k'] * nsp)}], found {w}")
    if x.dtype != w.dtype:
        raise ShapeError(f"cannot convolve {x} with {w}: dtypes differ")
    if x.shape[1] != w.shape[1]:
        raise ShapeError(f"cannot convolve {x} with kernel {w}: {show(x.shape[1])} input channels "
                         f"!= {show(w.shape[1])}")
    spatial = []
    for n, k, s, d, (pb, pe) in zip(x.shape[2:], w.shape[2:], strides, dilations, pads):
        if not isinstance(k, int):
            raise ShapeError(f"conv kernel sizes must be known numbers, found {w}")
        o = conv_out(n, k, s, d, pb, pe)
        if isinstance(o, int) and o < 1:
            raise ShapeError(f"conv of {x} with kernel {w} leaves no output (spatial size {show(n)} < {d * (k - 1) + 1})")
        spatial.append(o)
    return TensorType(x.dtype, (x.shape[0], w.shape[0]) + tuple(spatial))


def _dilate(g, axis, s):
    # insert s-1 zeros between entries along axis: length n -> (n-1) s + 1
    if s == 1:
        return g
    n = g.shape[axis]
    u = P("unsqueeze", g, axes=(axis + 1,))
    pads = [(0, 0)] * u.rank
    pads[axis + 1] = (0, s - 1)
    u = P("reshape", P("pad", u, pads=tuple(pads)), shape=g.shape[:axis] + (D.mul(n, s),) + g.shape[axis + 1:])
    return slice_axis(u, axis, 0, D.add(D.mul(D.sub(n, 1), s), 1))


PATCHES_MAX = 1 << 17      # im2col entries per example (K C O) up to which the weight gradient uses patches


def _patches_fit(g, w_shape) -> bool:
    """The patches are materialized (and kept from the forward to the backward): only
    where they are small, K C O <= PATCHES_MAX entries per example, of known size."""
    size = int(np.prod(w_shape[1:]))
    for d in g.shape[2:]:
        if not isinstance(d, int):
            return False
        size *= d
    return size <= PATCHES_MAX


def _conv_dw(x, g, w_shape, strides, pads, dilations):
    """dw[o, c, t] = sum_n sum_j g[n, o, j] xpad[n, c, j s + t d]: one small matmul
    per example against x's patches, summed over the batch,
        dw[o, (c, t)] = sum_n g[n, o, :] @ im2col(x)[n, (c, t), :]^T,
    (the conv's forward reuses the same patches, passes/convs.py); where the
    patches would be large or have no known adjoint (symbolic sizes), a conv with
    batch and channels swapped, stride d, dilation s, cropped to the kernel size."""
    nsp = len(w_shape) - 2
    sp = tuple(range(2, 2 + nsp))
    kernel = tuple(w_shape[2:])
    fits = _patches_fit(g, w_shape) and _transpose_pad(x.shape, g.shape, w_shape, strides, pads, dilations) is not None
    if fits:
        cols = P("im2col", x, kernel=kernel, strides=tuple(strides), pads=tuple(pads), dilations=tuple(dilations))
        n, o = g.shape[0], g.shape[1]
        g3 = P("reshape", g, shape=(n, o, cols.shape[2]))
        dw = P("sum", g3 @ swap_last(cols), axes=(0,), keepdims=False)             # [O, (c, t)]
        return P("reshape", dw, shape=(o, x.shape[1]) + kernel)
    swap = (1, 0) + sp
    dwt = P("conv", P("transpose", x, perm=swap), P("transpose", g, perm=swap),
            strides=tuple(dilations), pads=tuple(pads), dilations=tuple(strides))
    spec = tuple((ax, 0, w_shape[ax], 1) for ax in sp if dwt.shape[ax] != w_shape[ax])
    if spec:
        dwt = P("slice", dwt, spec=spec)
    return P("transpose", dwt, perm=swap)


def _transpose_pad(x_shape, g_shape, w_shape, strides, pads, dilations):
    """output_padding r that makes conv_transpose(g) exactly x's size (the floor's
    remainder): x = (g - 1) s + d (k - 1) + 1 - pb - pe + r; None when not a known number."""
    out = []
    for i, ax in enumerate(range(2, len(w_shape))):
        full = D.add(D.mul(D.sub(g_shape[ax], 1), strides[i]), dilations[i] * (w_shape[ax] - 1) + 1)
        r = D.sub(D.add(D.add(x_shape[ax], pads[i][0]), pads[i][1]), full)
        if not isinstance(r, int) or not 0 <= r < max(strides[i], dilations[i]):
            return None
        out.append(r)
    return tuple(out)


def onnx_pads(pads) -> list:
    """((b1, e1), (b2, e2), ..) -> ONNX's [b1, b2, .., e1, e2, ..]."""
    return [p[0] for p in pads] + [p[1] for p in pads]


def _unit_axis(strides, dilations, pads):
    """The same window over one more, leading, spatial axis of size 1 (ORT runs some ops
    better, or only, at that rank): stride 1, dilation 1, no padding there."""
    return (1,) + tuple(strides), (1,) + tuple(dilations), ((0, 0),) + tuple(pads)


def _conv_vjp(g, out, x, w, strides, pads, dilations):
    nsp = len(strides)
    sp = tuple(range(2, 2 + nsp))
    out_pad = _transpose_pad(x.shape, g.shape, w.shape, strides, pads, dilations)
    if out_pad is not None:
        # dx = conv^T g: ONNX ConvTranspose with the same kernel and attributes
        dx = P("conv_transpose", g, w, strides=strides, pads=pads, dilations=dilations, out_pad=out_pad)
        return dx, _conv_dw(x, g, w.shape, strides, pads, dilations)
    # dx: a stride-1 convolution of the stride-dilated gradient with the flipped,
    # in/out-swapped kernel, over padded coordinates; then crop the padding.
    gd = g
    for ax, s in zip(sp, strides):
        gd = _dilate(gd, ax, s)
    wf = P("flip", P("transpose", w, perm=(1, 0) + sp), axes=sp)
    full_pads = []
    for i, ax in enumerate(sp):
        k, d, (pb, pe) = w.shape[ax], dilations[i], pads[i]
        span = D.add(D.add(x.shape[ax], pb), pe)
        right = D.sub(span, gd.shape[ax])
        if not isinstance(right, int):
            raise ShapeError("the gradient of a strided conv needs known spatial sizes")
        full_pads.append(((k - 1) * d, right))
    dxp = P("conv", gd, wf, strides=(1,) * nsp, pads=tuple(full_pads), dilations=tuple(dilations))
    spec = tuple((ax, pads[i][0], D.add(pads[i][0], x.shape[ax]), 1) for i, ax in enumerate(sp)
                 if pads[i] != (0, 0))
    dx = P("slice", dxp, spec=spec) if spec else dxp
    return dx, _conv_dw(x, g, w.shape, strides, pads, dilations)


def _conv_onnx(b, x, w, strides, pads, dilations):
    return b.Conv(x, w, strides=list(strides), dilations=list(dilations), pads=onnx_pads(pads))


def _conv_np(x, w, strides, pads, dilations):
    nsp = len(strides)
    xp = np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads])
    k = w.shape[2:]
    span = [d * (kk - 1) + 1 for kk, d in zip(k, dilations)]
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=tuple(range(2, 2 + nsp)))
    # keep every stride-th window start and every dilation-th tap
    idx = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) \
        + tuple(slice(None, None, d) for d in dilations)
    win = win[idx]  # [N, C, *O, *K]
    letters = "ijklmn"[:nsp]
    taps = "pqrstu"[:nsp]
    return np.einsum(f"bc{letters}{taps},oc{taps}->bo{letters}", win, w).astype(x.dtype)


primitive("conv", "nn", _conv_shape, vjp=_conv_vjp, onnx=_conv_onnx, np=_conv_np)


# -- conv_transpose: the adjoint of conv in x; g [N, O, *S'], w [O, C, *K] -> [N, C, *S]
def _conv_t_shape(types, strides, pads, dilations, out_pad):
    g, w = types
    if g.rank != w.rank or g.rank != len(strides) + 2 or g.shape[1] != w.shape[0] or g.dtype != w.dtype:
        raise ShapeError(f"conv_transpose of {g} with kernel {w}: shapes do not fit")
    spatial = tuple(D.add(D.sub(D.add(D.mul(D.sub(n, 1), s), d * (k - 1) + 1), pb + pe), r)
                    for n, k, s, d, (pb, pe), r in zip(g.shape[2:], w.shape[2:], strides, dilations, pads, out_pad))
    return TensorType(g.dtype, (g.shape[0], w.shape[1]) + spatial)


def _conv_t_vjp(h, out, g, w, strides, pads, dilations, out_pad):
    # <h, conv^T_w g> = <conv_w h, g>: linear in g with adjoint conv, and in w as conv's weight gradient
    return (P("conv", h, w, strides=strides, pads=pads, dilations=dilations),
            _conv_dw(h, g, w.shape, strides, pads, dilations))


def _conv_t_onnx(b, g, w, strides, pads, dilations, out_pad):
    """1-D and 2-D: x = col2im(W'^T @ g) with W'[o, (c, t)] = w[o, c, t], one matmul over
    the whole batch, then ONNX Col2Im (_col2im_onnx; the image size is the output's, so
    out_pad needs nothing). ORT runs this 2.3-2.6x faster than its ConvTranspose on
    LeNet's shapes, to the same bits; 3-D stays ConvTranspose."""
    if len(strides) <= 2 and isinstance(w.shape[0], int):
        o = w.shape[0]
        cols = b.MatMul(b.Transpose(b.Reshape(w, b.ints([o, -1])), perm=[1, 0]), b.Reshape(g, b.ints([0, o, -1])))
        return _col2im_onnx(b, cols, tuple(w.shape[2:]), strides, pads, dilations, b.node.shape[2:])
    return b.ConvTranspose(g, w, strides=list(strides), dilations=list(dilations), output_padding=list(out_pad),
                           pads=onnx_pads(pads))


def _conv_t_np(g, w, strides, pads, dilations, out_pad):
    # xpad[n, c, j s + t d] += sum_o w[o, c, t] g[n, o, j], then crop the padding
    nsp = len(strides)
    ks, gs = w.shape[2:], g.shape[2:]
    full = [(n - 1) * s + d * (k - 1) + 1 + r for n, k, s, d, r in zip(gs, ks, strides, dilations, out_pad)]
    xp = np.zeros((g.shape[0], w.shape[1], *full), dtype=g.dtype)
    letters = "ijklmn"[:nsp]
    for t in itertools.product(*(range(k) for k in ks)):
        part = np.einsum(f"no{letters},oc->nc{letters}", g, w[(slice(None), slice(None)) + t])
        idx = tuple(slice(ti * d, ti * d + (n - 1) * s + 1, s) for ti, d, n, s in zip(t, dilations, gs, strides))
        xp[(slice(None), slice(None)) + idx] += part
    crop = tuple(slice(pb, f - pe) for (pb, pe), f in zip(pads, full))
    return xp[(slice(None), slice(None)) + crop].astype(g.dtype)


primitive("conv_transpose", "nn", _conv_t_shape, vjp=_conv_t_vjp, onnx=_conv_t_onnx, np=_conv_t_np)


# -- im2col: the patches a conv reads; x [N, C, *S] -> [N, K C, O] ----------------------
# cols[n, (c, t), p] = xpad[n, c, p s + t d], channels, then the taps t of the kernel in
# row-major order (w's own layout, and ONNX Col2Im's); p runs over the output positions
# (K = prod(kernel), O = prod(out)). conv(x, w)[n, o, p] = sum_(c, t) w[o, c, t] cols[n, (c, t), p]:
# a matmul with w reshaped to [O, C K].
def _im2col_shape(types, kernel, strides, pads, dilations):
    (x,) = types
    out = _conv_shape([x, TensorType(x.dtype, (1, x.shape[1]) + tuple(kernel))], strides, pads, dilations)
    taps = int(np.prod(kernel))
    size = 1
    for d in out.shape[2:]:
        size = D.mul(size, d)
    return TensorType(x.dtype, (x.shape[0], D.mul(taps, x.shape[1]), size))


def _im2col_vjp(g, out, x, kernel, strides, pads, dilations):
    # the adjoint adds every patch entry back where it was read: col2im
    if not all(isinstance(d, int) for d in x.shape[1:]):
        raise ShapeError("the gradient of im2col needs known channel and spatial sizes")
    return (P("col2im", g, kernel=kernel, strides=strides, pads=pads, dilations=dilations, image=x.shape[2:]),)


def _im2col_onnx(b, x, kernel, strides, pads, dilations):
    """A known channel count C: one grouped Conv (group C) with the one-hot kernel
    E[(c, t), 0, t'] = [t = t'], output channel (c, t) reading channel c's tap t
    (1 x + 0 y: the same numbers; an inf in x also makes its window's other entries
    NaN, as the conv over them would). ORT runs it threaded: 1.3-1.6x faster than the
    slices on the spec corpus's 2-D shapes (LeNet conv2: 0.85 against 1.11 ms).
    Otherwise pad, then one axis at a time from the last: k strided slices along it,
    concatenated on the channel axis, taps outermost; then (t, c) -> (c, t)."""
    nsp, c = len(kernel), x.shape[1]
    if isinstance(c, int):
        taps = int(np.prod(kernel))
        e = np.tile(np.eye(taps, dtype=NUMPY[x.dtype]), (c, 1)).reshape((c * taps, 1) + tuple(kernel))
        if c == 1 and nsp == 2:
            # as a 3-D Conv over a unit axis: ORT blocks a 2-D ungrouped Conv (NCHWc), and
            # reordering its output back took 0.33 of conv1's 0.75 ms on LeNet
            x, e = b.Unsqueeze(x, b.ints([2])), e[:, :, None]
            strides, dilations, pads = _unit_axis(strides, dilations, pads)
        t = b.Conv(x, b.tensor_const(e), group=c, strides=list(strides), dilations=list(dilations),
                   pads=onnx_pads(pads))
        return b.Reshape(t, b.dims(b.node.shape))
    out = _conv_shape([x.type, TensorType(x.dtype, (1, c) + tuple(kernel))], strides, pads, dilations)
    t = x
    if any(p != (0, 0) for p in pads):
        t = b.Pad(x, b.dims(onnx_pads(((0, 0), (0, 0)) + tuple(pads))))
    for ax in reversed(range(nsp)):
        k, s, d, o = kernel[ax], strides[ax], dilations[ax], out.shape[2 + ax]
        parts = [b.Slice(t, b.dims([i * d]), b.dims([D.add(i * d, D.add(D.mul(D.sub(o, 1), s), 1))]),
                         b.ints([2 + ax]), b.ints([s])) for i in range(k)]
        t = b.Concat(*parts, axis=1) if k > 1 else parts[0]
    n, size = b.node.shape[0], b.node.shape[2]
    t = b.Transpose(b.Reshape(t, b.dims((n, int(np.prod(kernel)), c, size))), perm=[0, 2, 1, 3])
    return b.Reshape(t, b.dims(b.node.shape))


def _im2col_np(x, kernel, strides, pads, dilations):
    nsp = len(kernel)
    xp = np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads])
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=tuple(range(2, 2 + nsp)))
    idx = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) \
        + tuple(slice(None, None, d) for d in dilations)
    win = win[idx]                                                   # [N, C, *O, *K]
    perm = (0, 1) + tuple(range(2 + nsp, 2 + 2 * nsp)) + tuple(range(2, 2 + nsp))
    win = np.transpose(win, perm)                                    # [N, C, *K, *O]
    n = x.shape[0]
    return np.ascontiguousarray(win).reshape(n, -1, int(np.prod(win.shape[2 + nsp:], dtype=np.int64))).astype(x.dtype)


primitive("im2col", "nn", _im2col_shape, vjp=_im2col_vjp, onnx=_im2col_onnx, np=_im2col_np)


# -- col2im: im2col's adjoint; cols [N, C K, O] -> x [N, C, *image] --------------------------
# x[n, c, j s + t d - pb] += cols[n, (c, t), j]: every patch entry added back where it was read
def _col2im_shape(types, kernel, strides, pads, dilations, image):
    (cols,) = types
    taps = int(np.prod(kernel))
    if cols.rank != 3 or not isinstance(cols.shape[1], int) or cols.shape[1] % taps:
        raise ShapeError(f"col2im of {cols} with a {'x'.join(map(str, kernel))} kernel: expected "
                         f"[N, C * {taps}, positions]")
    x = TensorType(cols.dtype, (cols.shape[0], cols.shape[1] // taps) + tuple(image))
    want = _im2col_shape([x], kernel, strides, pads, dilations)
    if want.shape[2] != cols.shape[2]:
        raise ShapeError(f"col2im of {cols} into {show(tuple(image))}: expected {show(want.shape[2])} positions")
    return x


def _col2im_onnx(b, cols, kernel, strides, pads, dilations, image):
    """ONNX Col2Im in 1-D and 2-D; onnxruntime 1.32's Col2Im is wrong with a 1-D dilation
    and in 3-D (checked against ConvTranspose), so 1-D runs as 2-D over a unit axis and
    3-D as ConvTranspose with the one-hot kernel E[(c, t), c', t'] = [c = c'][t = t']."""
    nsp, shape = len(kernel), b.node.shape
    if nsp == 3:
        c, taps = shape[1], int(np.prod(kernel))
        e = np.zeros((c, taps, c) + tuple(kernel), dtype=NUMPY[cols.dtype])
        for t, tap in enumerate(np.ndindex(*kernel)):
            e[(np.arange(c), t, np.arange(c)) + tap] = 1
        ck = cols.shape[1]                                  # C K: the one-hot kernel's input channels
        spatial = _conv_shape([TensorType(cols.dtype, shape), TensorType(cols.dtype, (1, c) + tuple(kernel))],
                              strides, pads, dilations).shape[2:]
        g_shape = (shape[0], ck) + tuple(spatial)
        g = b.Reshape(cols, b.dims(g_shape))
        out_pad = _transpose_pad(shape, g_shape, (ck, c) + tuple(kernel), strides, pads, dilations)
        return b.ConvTranspose(g, b.tensor_const(e.reshape((c * taps, c) + tuple(kernel))), strides=list(strides),
                               dilations=list(dilations), output_padding=list(out_pad), pads=onnx_pads(pads))
    image, kernel = list(image), list(kernel)
    if nsp == 1:                # [H] -> [1, H]
        image, kernel = [1] + image, [1] + kernel
        strides, dilations, pads = _unit_axis(strides, dilations, pads)
    x = b.Col2Im(cols, b.dims(image), b.ints(kernel), strides=list(strides), dilations=list(dilations),
                 pads=onnx_pads(pads))
    return b.Reshape(x, b.dims(shape)) if nsp == 1 else x


def _col2im_np(cols, kernel, strides, pads, dilations, image):
    n, c = cols.shape[0], cols.shape[1] // int(np.prod(kernel))
    full = [i + pb + pe for i, (pb, pe) in zip(image, pads)]
    outs = [(f - d * (k - 1) - 1) // s + 1 for f, k, s, d in zip(full, kernel, strides, dilations)]
    cols = cols.reshape((n, c) + tuple(kernel) + tuple(outs))
    xp = np.zeros((n, c) + tuple(full), dtype=cols.dtype)
    for tap in np.ndindex(*kernel):
        idx = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(tap, dilations, outs, strides))
        xp[(slice(None), slice(None)) + idx] += cols[(slice(None), slice(None)) + tap]
    crop = tuple(slice(pb, f - pe) for (pb, pe), f in zip(pads, full))
    return xp[(slice(None), slice(None)) + crop]


primitive("col2im", "nn", _col2im_shape,
          # linear, the adjoint of im2col: its own adjoint is im2col
          vjp=lambda g, out, cols, kernel, strides, pads, dilations, image:
              (P("im2col", g, kernel=kernel, strides=strides, pads=pads, dilations=dilations),),
          onnx=_col2im_onnx, np=_col2im_np)
