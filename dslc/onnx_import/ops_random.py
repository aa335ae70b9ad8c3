"""ONNX random ops -> IR draws (dslc/ops/random.py), scaled and shifted:

    RandomNormal(Like):   y = mean + scale z,        z ~ N(0, 1)
    RandomUniform(Like):  y = low + (high - low) u,  u ~ U[0, 1)

`shape` (an attribute) or the input's shape gives the shape; `dtype` defaults to
float (the input's for the *Like ops). A `seed` attribute stays on the draw, so
the re-exported inference graph draws the numbers the original draws (ONNX
Runtime seeds its generator from it); in a training graph the draws are dslc's
own counter-based ones, fresh at every step."""
from __future__ import annotations

import onnx

from ..ops.random import random
from .context import DTYPE, Unsupported, is_static
from .table import op


def _dtype(cx, like=None) -> str:
    to = cx.attr("dtype")
    if to is None:
        if like is None:
            return "f32"
        dt = str(like.dtype) if not is_static(like) else {"float32": "f32", "float64": "f64"}.get(str(like.dtype))
    else:
        dt = DTYPE.get(to)
    if dt not in ("f32", "f64"):
        name = onnx.TensorProto.DataType.Name(to) if to is not None else str(like.dtype)
        raise Unsupported(f"{cx.onode.op_type} of type {name} (float or double only)")
    return dt


def _draw(cx, kind, shape, dtype):
    z = random(kind, tuple(shape), dtype, seed=cx.attr("seed"))
    a, b = (cx.attr("mean", 0.0), cx.attr("scale", 1.0)) if kind == "normal" else \
        (cx.attr("low", 0.0), cx.attr("high", 1.0) - cx.attr("low", 0.0))
    if b != 1.0:
        z = z * float(b)
    return z + float(a) if a != 0.0 else z


@op("RandomNormal")
def _random_normal(cx):
    return _draw(cx, "normal", cx.attr("shape"), _dtype(cx))


@op("RandomUniform")
def _random_uniform(cx):
    return _draw(cx, "uniform", cx.attr("shape"), _dtype(cx))


@op("RandomNormalLike")
def _random_normal_like(cx, x):
    return _draw(cx, "normal", x.shape, _dtype(cx, x))


@op("RandomUniformLike")
def _random_uniform_like(cx, x):
    return _draw(cx, "uniform", x.shape, _dtype(cx, x))
