"""Built-ins, part 2: network functions (softmax, conv, pooling, embedding,
dropout), random draws, losses and metrics, and `grad`. All are compositions
of primitives."""
from __future__ import annotations

from ...autodiff import grad as _grad
from ...errors import suggest
from ...ir import dims as D
from ...ir.dims import show_shape
from ...ir.node import Node, ShapeError, apply as P, current_loc
from .core import builtin, known, need_float, norm_axis, per_axis, reduce_all, tensor, unify
from ...ir.registry import broadcast_shapes
from ...ops.pool import window_reduce
from ...ops.random import random


# -- softmax --------------------------------------------------------------------

@builtin("x:tensor, axis:int=-1")
def softmax(x, axis=-1):
    """softmax(x)_i = exp(x_i - logsumexp(x))"""
    return P("exp", log_softmax(x, axis))


@builtin("x:tensor, axis:int=-1")
def log_softmax(x, axis=-1):
    """log softmax(x)_i = x_i - logsumexp(x)"""
    x = tensor(x)
    need_float(x, "log_softmax")
    return P("log_softmax", x, axis=norm_axis(axis, x.rank, x, "softmax"))     # ONNX LogSoftmax


# -- convolution and pooling (NCL / NCHW) ----------------------------------------

def _spatial(x: Node, fname: str) -> int:
    if x.rank not in (3, 4):
        raise ShapeError(f"{fname} needs an NCL (rank 3) or NCHW (rank 4) input, found {x.type}")
    return x.rank - 2


@builtin("x:tensor, w:tensor, stride:ints=1, padding:padding='valid', dilation:ints=1")
def conv(x, w, stride=1, padding="valid", dilation=1):
    """cross-correlation y[n, o, i] = sum_c sum_t w[o, c, t] x[n, c, i s + t d] (1-d or 2-d)"""
    x, w = unify(x, w, what="convolve")
    need_float(x, "conv")
    nsp = _spatial(x, "conv")
    if w.rank != x.rank:
        ks = ", ".join(["k"] * nsp)
        raise ShapeError(f"conv of {x.type} needs a kernel [out, in, {ks}] of rank {x.rank}, found {w.type}")
    strides = per_axis(stride, nsp, "conv stride")
    dilations = per_axis(dilation, nsp, "conv dilation")
    ks = w.shape[2:]
    if not all(known(k) for k in ks):
        raise ShapeError(f"conv kernel sizes must be known numbers, found {w.type}")
    if isinstance(padding, str):
        if padding == "same":
            # total padding d (k - 1) keeps the size at stride 1; the odd one goes after
            if any(s != 1 for s in strides):
                raise ShapeError(f'conv padding "same" needs stride 1, found stride {list(strides)}; '
                                 'use padding "valid" or a number')
            pads = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(ks, dilations))
        elif padding == "valid":
            pads = ((0, 0),) * nsp
        else:
            raise ShapeError(f'conv padding must be "same", "valid" or a number, found "{padding}"'
                             + suggest(padding, ("same", "valid")))
    else:
        pads = tuple((p, p) for p in per_axis(padding, nsp, "conv padding"))
    if any(p < 0 for pp in pads for p in pp) or any(s < 1 for s in strides) or any(d < 1 for d in dilations):
        raise ShapeError(f"conv needs positive strides and dilations and non-negative padding, found "
                         f"stride {list(strides)}, padding {padding}, dilation {list(dilations)}")
    return P("conv", x, w, strides=strides, pads=pads, dilations=dilations)


def _pool(x, size, stride, fname: str, how: str):
    x = tensor(x)
    need_float(x, fname)
    nsp = _spatial(x, fname)
    ks = per_axis(size, nsp, f"{fname} size")
    ss = per_axis(stride, nsp, f"{fname} stride") if stride is not None else ks
    if any(k < 1 for k in ks) or any(s < 1 for s in ss):
        raise ShapeError(f"{fname} needs positive sizes and strides, found size {list(ks)}, stride {list(ss)}")
    for n, k, s in zip(x.shape[2:], ks, ss):
        o = D.add(D.floordiv(D.sub(n, k), s), 1)             # (n - k) / s + 1 windows
        if known(o) and o < 1:
            raise ShapeError(f"{fname} of size {list(ks)} does not fit in {x.type}")
    if how == "max":            # ONNX MaxPool (its gradient: ops/pool.py)
        return P("max_pool", x, kernel=tuple(ks), strides=tuple(ss))
    return window_reduce(x, ks, ss, how)


@builtin("x:tensor, size:ints, stride:ints=None")
def max_pool(x, size, stride=None):
    """the largest entry of each window (stride defaults to the window size)"""
    return _pool(x, size, stride, "max_pool", "max")


@builtin("x:tensor, size:ints, stride:ints=None")
def avg_pool(x, size, stride=None):
    """the mean of each window (stride defaults to the window size)"""
    return _pool(x, size, stride, "avg_pool", "mean")


# -- embedding, dropout, random draws ---------------------------------------------

@builtin("ids:tensor, table:tensor")
def embedding(ids, table):
    """rows of `table` picked by i64 `ids`: [*ids, d]"""
    ids, table = tensor(ids, "i64"), tensor(table)
    if ids.dtype != "i64":
        raise ShapeError(f"embedding ids must be i64 indices, found {ids.type}")
    if table.rank < 1:
        raise ShapeError(f"embedding table must be [rows, d], found {table.type}")
    return P("gather", table, ids)


@builtin("labels:tensor, depth:int, dtype:dtype='f32'")
def one_hot(labels, depth, dtype="f32"):
    """one_hot(y, K)[..., k] = 1 if y == k else 0"""
    labels = tensor(labels, "i64")
    if int(depth) < 1:
        raise ShapeError(f"one_hot needs at least one class, found depth {depth}")
    return P("one_hot", labels, depth=int(depth), dtype=dtype)


@builtin("x:tensor, p:float")
def dropout(x, p):
    """training: x * mask / (1 - p) with mask ~ Bernoulli(1 - p); inference: x"""
    x = tensor(x)
    need_float(x, "dropout")
    if not 0 <= p < 1:
        raise ShapeError(f"dropout probability must be in [0, 1), found {p}")
    if p == 0:
        return x
    keep = P("cast", P("ge", random("uniform", x.shape, x.dtype), tensor(float(p), x.dtype)), dtype=x.dtype)
    return P("training", x * keep / (1.0 - p), x)


@builtin("shape:shape, mean:float=0.0, std:float=1.0, dtype:dtype='f32'")
def normal(shape, mean=0.0, std=1.0, dtype="f32"):
    """a fresh draw from N(mean, std^2) at every step"""
    z = random("normal", tuple(shape), dtype)
    z = z * std if std != 1 else z
    return z + mean if mean != 0 else z


@builtin("shape:shape, low:float=0.0, high:float=1.0, dtype:dtype='f32'")
def uniform(shape, low=0.0, high=1.0, dtype="f32"):
    """a fresh draw from U[low, high) at every step"""
    u = random("uniform", tuple(shape), dtype)
    u = u * (high - low) if high - low != 1 else u
    return u + low if low != 0 else u


@builtin("p:tensor, shape:shape, dtype:dtype='f32'")
def bernoulli(p, shape, dtype="f32"):
    """1 with probability p, else 0: cast(u < p), u ~ U[0, 1)"""
    u = random("uniform", tuple(shape), p.dtype if isinstance(p, Node) else "f32")
    return P("cast", P("lt", *unify(u, p, what="compare")), dtype=dtype)


# -- losses (reduce = "mean" | "sum" | "none") -------------------------------------

def _same_shape(a: Node, b: Node, fname: str):
    if a.shape != b.shape and b.rank and a.rank:
        # broadcasting is allowed, but a likely mix-up (e.g. [B] vs [B, 1]) is not
        try:
            out = broadcast_shapes(a.shape, b.shape)
        except ShapeError:
            out = None
        if out != a.shape:
            raise ShapeError(f"{fname} needs predictions and targets of the same shape, "
                             f"found {a.type} and {b.type}")


@builtin("a:tensor, b:tensor, reduce:str='mean'")
def mse(a, b, reduce="mean"):
    """(a - b)^2"""
    a, b = unify(a, b, what="compare")
    need_float(a, "mse")
    _same_shape(a, b, "mse")
    d = a - b
    return reduce_all(d * d, reduce, "mse")


def _labels(logits: Node, labels, fname: str) -> Node:
    labels = tensor(labels, "i64")
    if labels.dtype != "i64":
        raise ShapeError(f"{fname} needs labels as i64 class indices, found {labels.type} "
                         f"(float labels are not class indices)")
    if logits.rank < 1 or labels.shape != logits.shape[:-1]:
        raise ShapeError(f"{fname}: labels {labels.type} do not match logits {logits.type} "
                         f"(expected labels of shape {show_shape(logits.shape[:-1])})")
    return labels


@builtin("logits:tensor, labels:tensor, reduce:str='mean'")
def cross_entropy(logits, labels, reduce="mean"):
    """-log softmax(z)[y] = logsumexp(z) - z[y], per example"""
    z = tensor(logits)
    need_float(z, "cross_entropy")
    y = _labels(z, labels, "cross_entropy")
    k = z.shape[-1]
    if not known(k):
        raise ShapeError(f"cross_entropy needs a known number of classes, found {z.type}")
    # -sum_k onehot(y)_k log softmax(z)_k: LogSoftmax, one-hot, multiply, sum
    picked = P("sum", P("log_softmax", z, axis=z.rank - 1) * P("one_hot", y, depth=k, dtype=z.dtype),
               axes=(z.rank - 1,), keepdims=False)
    return reduce_all(-picked, reduce, "cross_entropy")


@builtin("z:tensor, t:tensor, reduce:str='mean'")
def bce_logits(z, t, reduce="mean"):
    """-t log s(z) - (1 - t) log(1 - s(z)) = softplus(z) - t z"""
    z, t = unify(z, t, what="compare")
    need_float(z, "bce_logits")
    _same_shape(z, t, "bce_logits")
    return reduce_all(P("softplus", z) - t * z, reduce, "bce_logits")


@builtin("s:tensor, t:tensor, reduce:str='mean'")
def hinge(s, t, reduce="mean"):
    """max(0, 1 - t s), targets t = ±1"""
    s, t = unify(s, t, what="compare")
    need_float(s, "hinge")
    _same_shape(s, t, "hinge")
    return reduce_all(P("relu", 1.0 - t * s), reduce, "hinge")


@builtin("mu:tensor, logvar:tensor, reduce:str='mean'")
def kl_normal(mu, logvar, reduce="mean"):
    """KL(N(mu, e^logvar) || N(0, 1)) = -1/2 (1 + logvar - mu^2 - e^logvar)"""
    mu, logvar = unify(mu, logvar, what="combine")
    need_float(mu, "kl_normal")
    if mu.shape != logvar.shape:
        raise ShapeError(f"kl_normal needs mu and logvar of one shape, found {mu.type} and {logvar.type}")
    return reduce_all(-0.5 * (1.0 + logvar - mu * mu - P("exp", logvar)), reduce, "kl_normal")


@builtin("x:tensor")
def l1(x):
    """sum |x|"""
    x = tensor(x)
    return P("sum", P("abs", x), axes=tuple(range(x.rank)), keepdims=False)


@builtin("x:tensor")
def l2(x):
    """sum x^2 (the squared norm)"""
    x = tensor(x)
    return P("sum", x * x, axes=tuple(range(x.rank)), keepdims=False)


@builtin("logits:tensor, labels:tensor")
def accuracy(logits, labels):
    """the fraction of examples whose argmax equals the label (f32 scalar)"""
    z = tensor(logits)
    y = _labels(z, labels, "accuracy")
    hit = P("cast", P("eq", P("argmax", z, axis=z.rank - 1, keepdims=False), y), dtype="f32")
    return P("mean", hit, axes=tuple(range(hit.rank)), keepdims=False)


# -- differentiation inside a spec ---------------------------------------------------

@builtin("f:tensor, x:tensor")
def grad(f, x):
    """d f / d x for a scalar f (differentiable again)"""
    if not isinstance(f, Node) or not isinstance(x, Node):
        raise ShapeError("grad needs a scalar tensor expression and a tensor to differentiate by")
    if f.shape != ():
        raise ShapeError(f"grad needs a scalar function, found {f.type}; reduce it first (e.g. with sum)")
    return _grad(f, [x], loc=current_loc())[0]

