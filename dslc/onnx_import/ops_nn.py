"""ONNX network ops -> IR: Conv, pooling, BatchNormalization (train mode as
PyTorch's, inference mode in exported graphs), Dropout."""
from __future__ import annotations

from ..ir.node import apply as P, const
from ..ops.pool import window_reduce
from ..ops.random import random
from .context import Unsupported, ir
from .table import op


def _spatial_attrs(cx, x, kernel):
    nsp = x.rank - 2
    strides = tuple(cx.attr("strides") or [1] * nsp)
    dil = tuple(cx.attr("dilations") or [1] * nsp)
    pads = list(cx.attr("pads") or [0] * (2 * nsp))
    auto = cx.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nsp)
        for i, (n, k, s, d) in enumerate(zip(x.shape[2:], kernel, strides, dil)):
            if not isinstance(n, int):
                raise Unsupported(f"auto_pad {auto} over a symbolic spatial size")
            out = -(-n // s)
            total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
            lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pads[i], pads[i + nsp] = lo, total - lo
    elif auto not in ("NOTSET", "VALID"):
        raise Unsupported(f"auto_pad {auto}")
    return strides, dil, tuple((pads[i], pads[i + nsp]) for i in range(nsp))


@op("Conv")
def _conv(cx, x, w, b=None):
    """y[n, o] = sum_c w[o, c] * x[n, c] (cross-correlation) + b[o]"""
    x, w = cx.node(x), cx.node(w)
    if cx.attr("group", 1) != 1:
        raise Unsupported(f"grouped Conv (group = {cx.attr('group')})")
    if x.rank not in (3, 4, 5):
        raise Unsupported(f"Conv of a rank-{x.rank} input")
    strides, dil, pads = _spatial_attrs(cx, x, w.shape[2:])
    y = ir(P, "conv", x, w, strides=strides, pads=pads, dilations=dil)
    if b is not None:
        y = y + P("reshape", cx.node(b, like=y), shape=(1, w.shape[0]) + (1,) * (x.rank - 2))
    return y


def _pool_attrs(cx, x):
    ks = tuple(cx.attr("kernel_shape"))
    if cx.attr("ceil_mode", 0):
        raise Unsupported("pooling with ceil_mode = 1")
    if any(d != 1 for d in (cx.attr("dilations") or [])):
        raise Unsupported("dilated pooling")
    strides, _, pads = _spatial_attrs(cx, x, ks)
    return ks, strides, pads


@op("MaxPool")
def _max_pool(cx, x):
    """max over windows; padding counts as -inf (padded with a large negative number)"""
    x = cx.node(x)
    if len(cx.onode.output) > 1 and cx.onode.output[1]:
        raise Unsupported("MaxPool's Indices output")
    ks, ss, pads = _pool_attrs(cx, x)
    if any(p != (0, 0) for p in pads):
        full = ((0, 0), (0, 0)) + pads
        inside = P("pad", P("fill", value=1.0, shape=x.shape, dtype=x.dtype), pads=full)
        x = P("pad", x, pads=full) + (inside - 1.0) * 1e30
    return window_reduce(x, ks, ss, "max")


@op("AveragePool")
def _avg_pool(cx, x):
    """mean over windows; with count_include_pad = 0 the mean of the entries inside"""
    x = cx.node(x)
    ks, ss, pads = _pool_attrs(cx, x)
    if all(p == (0, 0) for p in pads):
        return window_reduce(x, ks, ss, "mean")
    full = ((0, 0), (0, 0)) + pads
    y = window_reduce(P("pad", x, pads=full), ks, ss, "mean")
    if cx.attr("count_include_pad", 0):
        return y
    inside = P("pad", P("fill", value=1.0, shape=x.shape, dtype=x.dtype), pads=full)
    return y / window_reduce(inside, ks, ss, "mean")       # sum / count = mean / (count / size)


@op("GlobalAveragePool")
def _gap(cx, x):
    x = cx.node(x)
    return P("mean", x, axes=tuple(range(2, x.rank)), keepdims=True)


@op("GlobalMaxPool")
def _gmp(cx, x):
    x = cx.node(x)
    return P("max", x, axes=tuple(range(2, x.rank)), keepdims=True)


@op("BatchNormalization")
def _batch_norm(cx, x, scale, bias, mean, var):
    """per channel (axis 1): y = (x - mu) / sqrt(v + eps) * scale + bias, where
    training:  mu, v = the batch mean and biased variance; the running statistics become
               m mean + (1 - m) mu and m var + (1 - m) v n / (n - 1)  (n entries per channel;
               ONNX momentum m = 1 - PyTorch's)
    inference: mu, v = the running statistics."""
    x = cx.node(x)
    eps, m = cx.attr("epsilon", 1e-5), cx.attr("momentum", 0.9)
    if len([o for o in cx.onode.output if o]) > 1:
        raise Unsupported("BatchNormalization's running-statistics outputs (a training-mode export)")
    C = x.shape[1]
    ch = (1, C) + (1,) * (x.rank - 2)
    s, b = (P("reshape", cx.node(v, like=x), shape=ch) for v in (scale, bias))
    rm, rv = cx.state_of(mean), cx.state_of(var)
    axes = (0,) + tuple(range(2, x.rank))
    mu = P("mean", x, axes=axes, keepdims=True)
    d = x - mu
    v = P("mean", d * d, axes=axes, keepdims=True)
    y_train = d / P("sqrt", v + eps) * s + b
    y_infer = (x - P("reshape", rm, shape=ch)) / P("sqrt", P("reshape", rv, shape=ch) + eps) * s + b
    n = P("size", x, axes=axes, dtype=x.dtype)
    mu_s, v_s = (P("stop_gradient", P("reshape", t, shape=(C,))) for t in (mu, v))
    cx.update(mean, m * rm + (1.0 - m) * mu_s)
    cx.update(var, m * rv + (1.0 - m) * v_s * n / (n - 1.0))
    return P("training", y_train, y_infer)


@op("Dropout")
def _dropout(cx, x, ratio=None, training_mode=None):
    """training: x * mask / (1 - p), mask ~ Bernoulli(1 - p); inference: x"""
    x = cx.node(x)
    if len([o for o in cx.onode.output if o]) > 1:
        raise Unsupported("Dropout's mask output")
    p = float(cx.static(ratio, "Dropout's ratio").reshape(-1)[0]) if ratio is not None else cx.attr("ratio", 0.5)
    if p == 0:
        return x
    keep = P("cast", P("ge", random("uniform", x.shape, x.dtype), const(p, x.dtype)), dtype=x.dtype)
    return P("training", x * keep / (1.0 - p), x)
