"""Built-ins: more elementwise functions (`erf sin cos log1p gelu leaky_relu
elu silu`), reductions (`var std prod`) and shape functions (`pad tile
split`) (LANGUAGE.md §7). Compositions of primitives."""
from __future__ import annotations

import math

from ..ir import dims as D
from ..ir.dims import show, show_shape
from ..ir.node import ShapeError, apply as P, const
from .builtins_core import builtin, is_number, known, need_float, norm_axes, norm_axis, tensor


# -- elementwise ------------------------------------------------------------------

def _float(x, fname):
    x = tensor(x)
    need_float(x, fname)
    return x


def _unary(op):
    def fn(x):
        return P(op, _float(x, op))
    fn.__name__ = op
    fn.__doc__ = f"{op}(x), elementwise"
    return builtin("x:tensor", name=op)(fn)


erf = _unary("erf")
sin = _unary("sin")
cos = _unary("cos")
log1p = _unary("log1p")          # log(1 + x), accurate for small x


@builtin("x:tensor")
def gelu(x):
    """x Φ(x) = x/2 (1 + erf(x / sqrt 2)), the exact (erf) form"""
    x = _float(x, "gelu")
    return 0.5 * x * (1.0 + P("erf", x * (1.0 / math.sqrt(2.0))))


@builtin("x:tensor, alpha:float=0.01")
def leaky_relu(x, alpha=0.01):
    """x if x > 0 else alpha x"""
    x = _float(x, "leaky_relu")
    return P("where", P("gt", x, const(0, x.dtype)), x, x * float(alpha))


@builtin("x:tensor, alpha:float=1.0")
def elu(x, alpha=1.0):
    """x if x > 0 else alpha (e^x - 1) (e^min(x, 0): no overflow in the branch not taken)"""
    x = _float(x, "elu")
    zero = const(0, x.dtype)
    neg = float(alpha) * (P("exp", P("minimum", x, zero)) - 1.0)
    return P("where", P("gt", x, zero), x, neg)


@builtin("x:tensor")
def silu(x):
    """x sigmoid(x) (swish)"""
    x = _float(x, "silu")
    return x * P("sigmoid", x)


# -- reductions ---------------------------------------------------------------------

@builtin("x:tensor, axis:axes=None, keepdims:bool=False, unbiased:bool=False")
def var(x, axis=None, keepdims=False, unbiased=False):
    """mean((x - mean x)^2) over axis; unbiased: sum(...) / (n - 1)"""
    x = _float(x, "var")
    axes = norm_axes(axis, x, "var")
    d = x - P("mean", x, axes=axes, keepdims=True)
    sq = P("sum", d * d, axes=axes, keepdims=bool(keepdims))
    n = P("size", x, axes=axes, dtype=x.dtype)
    return sq / (n - 1.0 if unbiased else n)


@builtin("x:tensor, axis:axes=None, keepdims:bool=False, unbiased:bool=False")
def std(x, axis=None, keepdims=False, unbiased=False):
    """sqrt(var(x, axis, keepdims, unbiased))"""
    return P("sqrt", var(x, axis, keepdims, unbiased))


@builtin("x:tensor, axis:axes=None, keepdims:bool=False")
def prod_(x, axis=None, keepdims=False):
    """the product over axis (None: all axes); its gradient is exact with zeros"""
    x = tensor(x)
    if x.dtype == "bool":
        raise ShapeError(f"prod needs a number tensor, found {x.type} (cast it first)")
    return P("prod", x, axes=norm_axes(axis, x, "prod"), keepdims=bool(keepdims))


# -- shape ---------------------------------------------------------------------------

def _widths(widths, x):
    """An int (every side of every axis), or per axis an int or a [before, after] pair."""
    if is_number(widths):
        widths = [widths] * x.rank
    if not isinstance(widths, (list, tuple)) or len(widths) != x.rank:
        raise ShapeError(f"pad of {x.type} needs {x.rank} widths (one per axis: n or [before, after]), "
                         f"found {widths!r}")
    out = []
    for w in widths:
        pair = tuple(w) if isinstance(w, (list, tuple)) else (w, w)
        if len(pair) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in pair):
            raise ShapeError(f"pad widths must be non-negative integers or [before, after] pairs, found {w!r}")
        out.append(pair)
    return tuple(out)


@builtin("x:tensor, widths:items, value:float=0")
def pad(x, widths, value=0):
    """x surrounded by `value`: widths per axis n or [before, after], or one n for all"""
    x = tensor(x)
    pads = _widths(widths, x)
    if all(p == (0, 0) for p in pads):
        return x
    y = P("pad", x, pads=pads)
    if value == 0:
        return y
    if x.dtype == "i64" and float(value) != int(value):
        raise ShapeError(f"cannot pad {x.type} with the float {value}")
    inside = P("pad", P("fill", value=True, shape=x.shape, dtype="bool"), pads=pads)
    v = const(int(value) if x.dtype == "i64" else value, x.dtype)
    return P("where", inside, y, v)


@builtin("x:tensor, reps:ints")
def tile(x, reps):
    """x repeated reps[i] times along axis i (fewer reps than axes: leading ones are 1, as NumPy)"""
    x = tensor(x)
    reps = (reps,) if not isinstance(reps, (list, tuple)) else tuple(reps)
    if not all(isinstance(r, int) and r >= 1 for r in reps):
        raise ShapeError(f"tile needs positive integer repeat counts, found {list(reps)}")
    r = max(len(reps), x.rank)
    reps = (1,) * (r - len(reps)) + reps
    if r > x.rank:
        x = P("reshape", x, shape=(1,) * (r - x.rank) + x.shape)
    if all(k == 1 for k in reps):
        return x
    # [a, b] -> [1, a, 1, b] -> [r0, a, r1, b] -> [r0 a, r1 b]
    u = P("reshape", x, shape=tuple(d for s in x.shape for d in (1, s)))
    u = P("expand", u, shape=tuple(d for k, s in zip(reps, x.shape) for d in (k, s)))
    return P("reshape", u, shape=tuple(D.mul(k, s) for k, s in zip(reps, x.shape)))


@builtin("x:tensor, sizes:ints, axis:int=0")
def split(x, sizes, axis=0):
    """a tuple of consecutive pieces along axis: sizes a list (summing to the dim) or a count
    of equal parts (`a, b = split(x, 2, -1)`)"""
    x = tensor(x)
    if x.rank < 1:
        raise ShapeError(f"cannot split a scalar {x.type}")
    ax = norm_axis(axis, x.rank, x, "split")
    n = x.shape[ax]
    if not isinstance(sizes, (list, tuple)):
        k = sizes
        if not isinstance(k, int) or k < 1:
            raise ShapeError(f"split needs a positive number of parts, found {show(k)}")
        q = D.floordiv(n, k)
        if D.mul(q, k) != n:
            raise ShapeError(f"cannot split axis {ax} of {x.type} into {k} equal parts")
        sizes = [q] * k
    sizes = list(sizes)
    if any(known(s) and s < 1 for s in sizes):
        raise ShapeError(f"split sizes must be positive, found {[show(s) for s in sizes]}")
    if D.sub(_sum_dims(sizes), n) != 0:
        raise ShapeError(f"split sizes {show_shape(tuple(sizes))} do not add up to axis {ax} of {x.type}")
    parts, start = [], 0
    for s in sizes:
        end = D.add(start, s)
        parts.append(P("slice", x, spec=((ax, start, end, 1),)) if len(sizes) > 1 else x)
        start = end
    return tuple(parts) if len(parts) > 1 else parts[0]


def _sum_dims(ds):
    out = 0
    for d in ds:
        out = D.add(out, d)
    return out
