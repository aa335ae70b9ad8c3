"""ONNX shape and data-movement ops -> IR (or folded at import when static):
Shape, Constant(OfShape), Cast, Reshape, Flatten, Transpose, (Un)Squeeze,
Concat, Split, Slice, Gather, Where, Expand, Pad, Tile."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..ir import dims as D
from ..ir.node import apply as P, const
from .context import DTYPE, NP, Unsupported, canon, dim_list, ir, is_static, is_symbolic
from .table import op


def _dims(cx, v, what):
    return cx.ints(v, what)


def _rank_of(v):
    return v.ndim if is_static(v) else v.rank


def _shape_of(v):
    return tuple(v.shape)


# -- shapes and constants ---------------------------------------------------------------
@op("Shape")
def _shape(cx, x):
    """x's shape as a static 1-d array (symbolic dims stay symbols); opset 15 start/end"""
    dims = dim_list(_shape_of(x))
    start, end = cx.attr("start", 0), cx.attr("end")
    return dims[start:end]


@op("Size")
def _size(cx, x):
    n = 1
    for d in _shape_of(x):
        n = D.mul(n, d)
    return canon(np.asarray(n, dtype=object))


@op("Constant")
def _constant(cx):
    for k in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if k in cx.attrs:
            v = cx.attrs[k]
            return canon(numpy_helper.to_array(v) if k == "value" else np.asarray(
                v, dtype=np.float32 if "float" in k else np.int64))
    raise Unsupported(f"Constant with attribute {', '.join(cx.attrs)}")


@op("ConstantOfShape")
def _constant_of_shape(cx, shape):
    dims = _dims(cx, shape, "ConstantOfShape's shape")
    v = cx.attrs.get("value")
    val = canon(numpy_helper.to_array(v)).reshape(-1)[0] if v is not None else np.float32(0)
    if all(isinstance(d, int) for d in dims):
        return np.full(dims, val, dtype=canon(np.asarray(val)).dtype)
    dt = {"f": "f32", "i": "i64", "b": "bool"}[np.asarray(val).dtype.kind]
    if np.asarray(val).dtype == np.float64:
        dt = "f64"
    return P("fill", value=val.item(), shape=tuple(dims), dtype=dt)


@op("Cast")
def _cast(cx, x):
    to = cx.attr("to")
    if to not in DTYPE:
        raise Unsupported(f"Cast to {onnx.TensorProto.DataType.Name(to)}")
    dt = DTYPE[to]
    if is_static(x):
        a = canon(x)
        if is_symbolic(a):
            if dt == "i64":
                return a
            raise Unsupported(f"a symbolic dim cast to {dt}")
        return canon(a.astype(NP[dt]))
    return x if x.dtype == dt else P("cast", x, dtype=dt)


# -- reshapes -------------------------------------------------------------------------
def _reshape_dims(cx, in_shape, target, allowzero):
    """ONNX Reshape: 0 copies the input dim (unless allowzero), one -1 is inferred."""
    out = []
    for i, d in enumerate(target):
        if isinstance(d, int) and d == 0 and not allowzero:
            out.append(in_shape[i])
        else:
            out.append(d)
    if any(isinstance(d, int) and d == -1 for d in out):
        k = next(i for i, d in enumerate(out) if isinstance(d, int) and d == -1)
        total = 1
        for d in in_shape:
            total = D.mul(total, d)
        known = 1
        for i, d in enumerate(out):
            if i != k:
                known = D.mul(known, d)
        rest = _exact_div(total, known)
        if rest is None:
            raise Unsupported(f"cannot infer the -1 of reshape {target} from shape {D.show_shape(in_shape)}")
        out[k] = rest
    return tuple(out)


def _exact_div(a, b):
    """a / b when it divides exactly (dims: cancel common symbolic factors)."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b if b and a % b == 0 else None
    q = D.floordiv(a, b) if isinstance(b, int) else None
    if q is not None and D.mul(q, b) == a:
        return q
    # symbolic divisor: try each monomial factorisation a = q * b with q from a's terms
    if isinstance(a, D.Sym):
        for (mono, c) in a.terms:
            for (bm, bc) in (b.terms if isinstance(b, D.Sym) else [((), b)]):
                if bc and c % bc == 0 and all(mono.count(x) >= bm.count(x) for x in bm):
                    rest = list(mono)
                    for x in bm:
                        rest.remove(x)
                    qq = c // bc
                    for x in rest:
                        qq = D.mul(qq, D.Sym.var(x) if isinstance(x, str) else D.Sym({(x,): 1}))
                    if D.mul(qq, b) == a:
                        return qq
    return None


@op("Reshape")
def _reshape(cx, x, shape):
    target = _dims(cx, shape, "Reshape's shape")
    out = _reshape_dims(cx, _shape_of(x), target, cx.attr("allowzero", 0))
    if is_static(x):
        if is_symbolic(canon(x)) or any(not isinstance(d, int) for d in out):
            if canon(x).size == int(np.prod([d for d in out if isinstance(d, int)] or [1])) and \
                    all(isinstance(d, int) for d in out):
                return canon(x).reshape(out)
            raise Unsupported("a symbolic reshape of a static value")
        return canon(x).reshape(out)
    return x if tuple(x.shape) == out else ir(P, "reshape", x, shape=out)


@op("Flatten")
def _flatten(cx, x):
    """to 2-d: [prod(shape[:axis]), prod(shape[axis:])]"""
    shape = _shape_of(x)
    axis = cx.attr("axis", 1) % (len(shape) + 1) if shape else 0
    a, b = 1, 1
    for d in shape[:axis]:
        a = D.mul(a, d)
    for d in shape[axis:]:
        b = D.mul(b, d)
    if is_static(x):
        return canon(x).reshape((a, b))
    return x if tuple(x.shape) == (a, b) else P("reshape", x, shape=(a, b))


@op("Transpose", fold=lambda cx, x: np.transpose(x, cx.attr("perm")))
def _transpose(cx, x):
    perm = cx.attr("perm") or list(range(x.rank))[::-1]
    return x if list(perm) == list(range(x.rank)) else ir(P, "transpose", x, perm=tuple(int(p) for p in perm))


def _axes_arg(cx, axes_in, what):
    if axes_in is not None:
        return _dims(cx, axes_in, what)
    return cx.attr("axes")


@op("Unsqueeze")
def _unsqueeze(cx, x, axes_in=None):
    axes = _axes_arg(cx, axes_in, "Unsqueeze's axes")
    r = _rank_of(x) + len(axes)
    axes = tuple(sorted(a % r for a in axes))
    if is_static(x):
        return np.expand_dims(canon(x), axes)
    return ir(P, "unsqueeze", x, axes=axes)


@op("Squeeze")
def _squeeze(cx, x, axes_in=None):
    axes = _axes_arg(cx, axes_in, "Squeeze's axes")
    shape = _shape_of(x)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = tuple(sorted(a % len(shape) for a in axes))
    if is_static(x):
        return np.squeeze(canon(x), axes)
    return ir(P, "squeeze", x, axes=axes)


# -- joining and splitting ---------------------------------------------------------------
@op("Concat")
def _concat(cx, *xs):
    xs = [x for x in xs if x is not None]
    axis = cx.attr("axis") % _rank_of(xs[0])
    if all(is_static(x) for x in xs):
        arrs = [canon(x) for x in xs]
        if any(is_symbolic(a) for a in arrs):
            arrs = [a.astype(object) for a in arrs]
        return canon(np.concatenate(arrs, axis=axis))
    nodes = [cx.node(x) for x in xs]
    nodes = [n for n in nodes if n.shape[axis] != 0]
    return nodes[0] if len(nodes) == 1 else ir(P, "concat", *nodes, axis=axis)


def _split_sizes(cx, x, split_in, n_out):
    shape = _shape_of(x)
    axis = cx.attr("axis", 0) % len(shape)
    if split_in is not None:
        sizes = _dims(cx, split_in, "Split's sizes")
    elif cx.attr("split"):
        sizes = list(cx.attr("split"))
    else:
        n = cx.attr("num_outputs", n_out)
        total = shape[axis]
        if not isinstance(total, int):
            raise Unsupported("an even Split of a symbolic axis")
        k = -(-total // n)
        sizes = [min(k, total - i * k) for i in range(n)]
    return axis, sizes


@op("Split")
def _split(cx, x, split_in=None):
    axis, sizes = _split_sizes(cx, x, split_in, len(cx.onode.output))
    outs, start = [], 0
    for s in sizes:
        end = D.add(start, s)
        if is_static(x):
            outs.append(np.take(canon(x), np.arange(start, end), axis=axis))
        else:
            outs.append(P("slice", x, spec=((axis, start, end, 1),)))
        start = end
    return outs


# -- slicing and gathering -----------------------------------------------------------------
INT_MAX = 2 ** 62


def _clamp(v, d, step):
    """ONNX Slice bounds: negative counts from the end, then clamped to [0, d] ([-1, d-1] for step < 0)."""
    if isinstance(v, int) and v < 0:
        v = D.add(d, v) if not (isinstance(d, int) and v < -d) else (0 if step > 0 else -1)
    if isinstance(v, int) and isinstance(d, int):
        v = min(max(v, 0), d) if step > 0 else min(max(v, -1), d - 1)
    elif isinstance(v, int) and v >= INT_MAX // 2:
        v = d if step > 0 else D.sub(d, 1)
    return v


@op("Slice")
def _slice(cx, x, starts, ends, axes=None, steps=None):
    if cx.opset < 10:
        raise Unsupported("Slice before opset 10")
    starts = _dims(cx, starts, "Slice's starts")
    ends = _dims(cx, ends, "Slice's ends")
    shape = _shape_of(x)
    r = len(shape)
    axes = [a % r for a in _dims(cx, axes, "Slice's axes")] if axes is not None else list(range(len(starts)))
    steps = _dims(cx, steps, "Slice's steps") if steps is not None else [1] * len(starts)
    if is_static(x):
        idx = [slice(None)] * r
        for a, s, e, st in zip(axes, starts, ends, steps):
            if not all(isinstance(v, int) for v in (s, e)):
                e = shape[a] if not isinstance(e, int) else e
            idx[a] = slice(s, min(e, INT_MAX) if isinstance(e, int) else e, st)
        return canon(x)[tuple(idx)]
    spec, flips = [], []
    for a, s, e, st in zip(axes, starts, ends, steps):
        d = shape[a]
        if st < 0:                       # x[s:e:-k] = flip(x)[d-1-s : d-1-e : k]
            s, e = _clamp(s, d, st), _clamp(e, d, st)
            flips.append(a)
            s, e, st = D.sub(D.sub(d, 1), s), D.sub(D.sub(d, 1), e), -st
        else:
            s, e = _clamp(s, d, st), _clamp(e, d, st)
        if s == 0 and e == d and st == 1:
            continue
        spec.append((a, s, e, st))
    if flips:
        x = P("flip", x, axes=tuple(flips))
    return ir(P, "slice", x, spec=tuple(spec)) if spec else x


def _gather_axis0(table, ids):
    return P("gather", table, ids)


@op("Gather")
def _gather(cx, data, indices):
    """out = take(data, indices, axis): negative indices count from the end"""
    axis = cx.attr("axis", 0) % _rank_of(data)
    shape = _shape_of(data)
    if is_static(data) and is_static(indices):
        idx = canon(indices)
        return np.take(canon(data), idx, axis=axis)
    if is_static(indices):
        idx = canon(indices).astype(np.int64)
        d = shape[axis]
        if (idx < 0).any():
            if not isinstance(d, int):
                raise Unsupported("negative Gather indices on a symbolic axis")
            idx = np.where(idx < 0, idx + d, idx)
        if idx.ndim == 0:                # one entry: a slice, without the axis
            i = int(idx)
            return P("squeeze", P("slice", data, spec=((axis, i, i + 1, 1),)), axes=(axis,))
        indices = const(idx, "i64")
    data, ids = cx.node(data), cx.index(indices)
    if axis == 0:
        return ir(_gather_axis0, data, ids)
    # move the axis to the front, gather rows, move the new axes back to where the axis was
    perm = (axis,) + tuple(i for i in range(data.rank) if i != axis)
    g = _gather_axis0(P("transpose", data, perm=perm), ids)       # [*ids, rest...]
    k = ids.rank
    back = tuple(range(k, k + axis)) + tuple(range(k)) + tuple(range(k + axis, g.rank))
    return P("transpose", g, perm=back)


@op("ai.onnx.ml:ArrayFeatureExtractor")
def _array_feature_extractor(cx, x, idx):
    """x[..., idx] (skl2onnx: class labels picked by the argmax)"""
    x, ids = cx.node(x), cx.node(idx)
    if x.rank == 1:
        return _gather_axis0(x, ids)
    flat = P("reshape", ids, shape=(ids.shape[-1] if ids.rank else 1,)) if ids.rank != 1 else ids
    axis = x.rank - 1
    g = _gather_axis0(P("transpose", x, perm=(axis,) + tuple(range(axis))), flat)
    return P("transpose", g, perm=tuple(range(1, axis + 1)) + (0,))


@op("Where", fold=lambda cx, c, a, b: np.where(c, a, b))
def _where(cx, c, a, b):
    cond = cx.node(c)
    x, y = (cx.node(a), cx.node(b, like=cx.node(a))) if not is_static(a) else (None, cx.node(b))
    if x is None:
        x = cx.node(a, like=y)
    if cond.dtype != "bool":
        cond = P("cast", cond, dtype="bool")
    return ir(P, "where", cond, x, y)


@op("Expand")
def _expand(cx, x, shape):
    target = _dims(cx, shape, "Expand's shape")
    xs = _shape_of(x)
    # ONNX Expand broadcasts both ways: a 1 in the target keeps the input's dim
    r = max(len(xs), len(target))
    xs_p = (1,) * (r - len(xs)) + tuple(xs)
    tg = (1,) * (r - len(target)) + tuple(target)
    out = tuple(a if (isinstance(b, int) and b == 1) else b for a, b in zip(xs_p, tg))
    if is_static(x) and all(isinstance(d, int) for d in out):
        return np.broadcast_to(canon(x), out).copy()
    x = cx.node(x)
    return x if tuple(x.shape) == out else ir(P, "expand", x, shape=out)


@op("Tile", fold=lambda cx, x, reps: np.tile(x, reps))
def _tile(cx, x, reps):
    reps = _dims(cx, reps, "Tile's repeats")
    x = cx.node(x)
    for a, k in enumerate(reps):
        if k != 1:
            x = P("concat", *([x] * k), axis=a)
    return x


@op("Pad")
def _pad(cx, x, pads=None, value=None, axes=None):
    """constant mode: pads = [b_1..b_r, e_1..e_r]; negative pads crop; y = pad(x - c) + c"""
    mode = cx.attr("mode", "constant")
    if mode != "constant":
        raise Unsupported(f'Pad mode "{mode}" (only "constant")')
    r = _rank_of(x)
    p = _dims(cx, pads, "Pad's pads") if pads is not None else list(cx.attr("pads"))
    ax = [a % r for a in _dims(cx, axes, "Pad's axes")] if axes is not None else list(range(r))
    before, after = [0] * r, [0] * r
    for i, a in enumerate(ax):
        before[a], after[a] = p[i], p[i + len(ax)]
    c = 0.0
    if value is not None:
        c = float(cx.static(value, "Pad's constant value").reshape(-1)[0]) if cx.static(value, "Pad's value").size else 0.0
    elif cx.opset < 11:
        c = cx.attr("value", 0.0)
    x = cx.node(x)
    crop = tuple((a, -before[a] if before[a] < 0 else 0,
                  D.add(x.shape[a], after[a]) if after[a] < 0 else x.shape[a], 1)
                 for a in range(r) if before[a] < 0 or after[a] < 0)
    if crop:
        x = P("slice", x, spec=crop)
    pp = tuple((max(b, 0), max(e, 0)) for b, e in zip(before, after))
    if all(q == (0, 0) for q in pp):
        return x
    if c == 0.0:
        return P("pad", x, pads=pp)
    return P("pad", x - c, pads=pp) + c
