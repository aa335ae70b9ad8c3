"""ONNX element-wise indexing -> IR `take_along_axis` and `scatter_along`
(dslc/ops/index.py): GatherElements, ScatterElements. ONNX lets the indices be
shorter than the data on the other axes (they address its leading part there);
the IR's gathers take indices of the data's shape, so the data is cropped (gather)
or the scatter padded back to it."""
from __future__ import annotations

import numpy as np

from ..ir import dims as D
from ..ir.node import apply as P, const
from .context import Unsupported, canon, ir, is_static
from .table import op


def _gather_elements_np(data, idx, axis):
    d = data.shape[axis]
    idx = np.where(idx < 0, idx + d, idx)
    # indices may be shorter than data on the other axes: those read data's leading part
    data = data[tuple(slice(0, n) if a != axis else slice(None) for a, n in enumerate(idx.shape))]
    return np.take_along_axis(data, idx, axis)


@op("GatherElements", fold=lambda cx, x, i: _gather_elements_np(x, i, cx.attr("axis", 0) % x.ndim))
def _gather_elements(cx, data, indices):
    """out[.., j, ..] = data[.., indices[.., j, ..], ..] along axis (out has the indices' shape;
    negative indices count from the end) = take_along_axis"""
    data = cx.node(data)
    axis = cx.attr("axis", 0) % data.rank
    ids = cx.index(indices)
    if ids.rank != data.rank:
        raise Unsupported(f"GatherElements indices of rank {ids.rank} for data of rank {data.rank}")
    crop = tuple((a, 0, n, 1) for a, (n, d) in enumerate(zip(ids.shape, data.shape))
                 if a != axis and n != d)
    if crop:                             # indices shorter than data on another axis: data[:n] there
        data = ir(P, "slice", data, spec=crop)
    return ir(P, "take_along_axis", data, ids, axis=axis)


def _is_zeros(v) -> bool:
    if is_static(v):
        return not canon(v).any()
    return v.op == "fill" and v.attrs["value"] == 0


@op("ScatterElements")
def _scatter_elements(cx, data, indices, updates):
    """out = data, then out[.., indices[.., j, ..], ..] = updates[.., j, ..] along axis
    (reduction "add": +=); scatter_along(i, u) = zeros with u added at i, so
      add:   out = data + scatter_along(i, u)
      none:  out = where(scatter_along(i, 1) != 0, scatter_along(i, u), data)"""
    how = cx.attr("reduction", "none")
    if how not in ("none", "add"):
        raise Unsupported(f'ScatterElements reduction "{how}" (only "none" and "add")')
    x = cx.node(data)
    axis = cx.attr("axis", 0) % x.rank
    ids, upd = cx.index(indices), cx.node(updates, like=x)
    # indices shorter than data on another axis write data's leading part there: scatter into
    # that part, then pad with zeros to data's shape
    part = tuple(d if a == axis else n for a, (n, d) in enumerate(zip(ids.shape, x.shape)))
    pads = tuple((0, D.sub(d, n)) for n, d in zip(part, x.shape))

    def scatter(u):
        s = ir(P, "scatter_along", ids, u, shape=part, axis=axis)
        return s if part == tuple(x.shape) else P("pad", s, pads=pads)
    added = scatter(upd)
    if how == "add":
        return added if _is_zeros(data) else x + added
    hit = scatter(P("fill", value=1.0, shape=tuple(ids.shape), dtype="f32"))
    return ir(P, "where", P("ne", hit, const(0.0, "f32")), added, x)
