"""ONNX ops that make tensors from their sizes -> IR `range` and `trilu` (or folded
at import when static): Range, whose limit may be a symbolic dim (a position
index over a sequence of length T), and Trilu."""
from __future__ import annotations

import numpy as np

from ..ir import dims as D
from ..ir.node import apply as P, const
from .context import Unsupported, canon, ir, is_static, is_symbolic
from .table import op


def _scalar(cx, v, what):
    """A static scalar: an int, a float or a symbolic dim (Sym)."""
    a = cx.static(v, f"Range's {what}")
    if a.size != 1:
        raise Unsupported(f"Range's {what} of shape {list(a.shape)} (a scalar expected)")
    x = a.reshape(-1)[0]
    return x if isinstance(x, (D.Sym, int)) else x.item()


def _count(start, limit, delta):
    """ONNX: n = max(ceil((limit - start) / delta), 0); ceil(a / d) = floor((a + d - 1) / d) for d > 0
    (a symbolic count is taken to be >= 0: a length)."""
    if delta < 0:
        start, limit, delta = D.sub(0, start), D.sub(0, limit), -delta      # (l - s)/d = (-l - -s)/(-d)
    n = D.floordiv(D.add(D.sub(limit, start), delta - 1), delta)
    return max(n, 0) if isinstance(n, int) else n


@op("Range")
def _range(cx, s, e, d):
    """out[i] = start + i delta for i < max(ceil((limit - start) / delta), 0)"""
    if not all(is_static(v) for v in (s, e, d)):
        raise Unsupported("Range with bounds computed at run time")
    if not any(is_symbolic(canon(v)) for v in (s, e, d)):
        a = canon(s)
        return np.arange(a.reshape(-1)[0], canon(e).reshape(-1)[0], canon(d).reshape(-1)[0]).astype(a.dtype)
    start, limit, delta = (_scalar(cx, v, w) for v, w in ((s, "start"), (e, "limit"), (d, "delta")))
    if not isinstance(delta, int) or delta == 0:
        raise Unsupported(f"Range with a symbolic limit and step {delta} (a nonzero int expected)")
    n = _count(start, limit, delta)
    if isinstance(n, int):                          # a fixed count: the values stay static (maybe Syms)
        out = np.empty(n, dtype=object)
        for i in range(n):
            out[i] = D.add(start, i * delta)
        return canon(out)
    r = ir(P, "range", n=n, dtype="i64")
    if delta != 1:
        r = r * const(delta, "i64")
    if not (isinstance(start, int) and start == 0):
        r = r + cx.node(canon(np.asarray(start, dtype=object)))
    return r


@op("Trilu")
def _trilu(cx, x, k=None):
    """upper: keep x[.., i, j] with j - i >= k; lower: j - i <= k (the last two axes)"""
    upper = bool(cx.attr("upper", 1))
    kk = 0 if k is None else cx.static(k, "Trilu's k").reshape(-1)[0]
    if isinstance(kk, D.Sym):
        raise Unsupported("Trilu with a symbolic diagonal offset k")
    if is_static(x) and not is_symbolic(canon(x)):
        return (np.triu if upper else np.tril)(canon(x), int(kk))
    return ir(P, "trilu", cx.node(x), k=int(kk), upper=upper)
