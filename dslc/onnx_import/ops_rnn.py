"""ONNX recurrent ops (LSTM, GRU, RNN) -> IR `scan` cells, so BPTT comes from
the scan's own gradient. The input projection X W^T + Wb is computed for all
steps at once outside the loop; the step adds H R^T + Rb (ONNX equations,
default activations; W, R, B carry a leading direction axis)."""
from __future__ import annotations

from ..ir import dims as D
from ..ir.node import apply as P
from ..ops.scan import scan
from .context import Unsupported
from .table import op

ACT = {"Sigmoid": lambda x: P("sigmoid", x), "Tanh": lambda x: P("tanh", x), "Relu": lambda x: P("relu", x)}


def _acts(cx, defaults):
    names = cx.attr("activations") or defaults
    names = [n.decode() if isinstance(n, bytes) else n for n in names]
    for n in names:
        if n not in ACT:
            raise Unsupported(f"recurrent activation {n}")
    if cx.attr("clip") is not None:
        raise Unsupported("recurrent cell clipping")
    return [ACT[n] for n in names]


def _block(t, k, h, axis=-1):
    """the k-th block of size h along axis (gates are stacked blocks)"""
    axis = axis % t.rank
    return P("slice", t, spec=((axis, k * h, (k + 1) * h, 1),))


def _last(hs):
    """hs[T-1] of a stacked [T, ...] sequence, keeping a unit axis: [1, ...]"""
    T = hs.shape[0]
    return P("slice", hs, spec=((0, D.sub(T, 1), T, 1),))


def _run(cx, x, W, R, B, seq_lens, inits, gates, cell):
    """Both directions as asked; returns (Y [T, dirs, B, H], finals [dirs, B, H] per carry)."""
    if seq_lens is not None:
        raise Unsupported("recurrent sequence_lens (variable-length batches)")
    x = cx.node(x)
    if cx.attr("layout", 0):
        x = P("transpose", x, perm=(1, 0, 2))
    W, R = cx.node(W, like=x), cx.node(R, like=x)
    H = cx.attr("hidden_size") or R.shape[-1]
    direction = cx.attr("direction", "forward")
    dirs = ["forward", "reverse"] if direction == "bidirectional" else [direction]
    T, Bn = x.shape[0], x.shape[1]
    ys, finals = [], [[] for _ in inits]
    for d, how in enumerate(dirs):
        w = P("squeeze", P("slice", W, spec=((0, d, d + 1, 1),)), axes=(0,))      # [gH, I]
        r = P("squeeze", P("slice", R, spec=((0, d, d + 1, 1),)), axes=(0,))      # [gH, H]
        xw = x @ P("transpose", w, perm=(1, 0))                                    # [T, B, gH]
        rb = None
        if B is not None:
            b = P("squeeze", P("slice", cx.node(B, like=x), spec=((0, d, d + 1, 1),)), axes=(0,))
            wb, rb = _block(b, 0, gates * H), _block(b, 1, gates * H)
            xw = xw + wb
        hs0 = []
        for k, init in enumerate(inits):
            if init is None:
                hs0.append(P("fill", value=0.0, shape=(Bn, H), dtype=x.dtype))
            else:
                v = cx.node(init, like=x)
                hs0.append(P("squeeze", P("slice", v, spec=((0, d, d + 1, 1),)), axes=(0,)))
        seq = P("flip", xw, axes=(0,)) if how == "reverse" else xw
        rt = P("transpose", r, perm=(1, 0))
        outs = scan(lambda carries, xt: cell(carries, xt, rt, rb, H), seq, hs0, cx.loc)
        outs = [P("flip", o, axes=(0,)) if how == "reverse" else o for o in outs]
        ys.append(P("unsqueeze", outs[0], axes=(1,)))
        for k, o in enumerate(outs):
            # the final carry: the last step (the first of the flipped sequence when reversed)
            finals[k].append(P("slice", o, spec=((0, 0, 1, 1),)) if how == "reverse" else _last(o))
    Y = ys[0] if len(ys) == 1 else P("concat", *ys, axis=1)
    fin = [f[0] if len(f) == 1 else P("concat", *f, axis=0) for f in finals]
    if cx.attr("layout", 0):
        Y = P("transpose", Y, perm=(2, 0, 1, 3))
        fin = [P("transpose", f, perm=(1, 0, 2)) for f in fin]
    return Y, fin


@op("LSTM")
def _lstm(cx, x, W, R, B=None, seq_lens=None, h0=None, c0=None, peep=None):
    """gates (i, o, f, c):  i, o, f = sig(x W^T + h R^T + b);  c~ = tanh(...);
    c' = f c + i c~;  h' = o tanh(c')"""
    if peep is not None:
        raise Unsupported("LSTM peepholes (input P)")
    if cx.attr("input_forget", 0):
        raise Unsupported("LSTM input_forget = 1")
    f, g, h = _acts(cx, ["Sigmoid", "Tanh", "Tanh"])[:3]

    def cell(carries, xt, rt, rb, H):
        hp, cp = carries
        z = xt + hp @ rt
        if rb is not None:
            z = z + rb
        i, o, fg, cc = (_block(z, k, H) for k in range(4))
        c = f(fg) * cp + f(i) * g(cc)
        return [f(o) * h(c), c]
    Y, (Yh, Yc) = _run(cx, x, W, R, B, seq_lens, [h0, c0], 4, cell)
    return [Y, Yh, Yc]


@op("GRU")
def _gru(cx, x, W, R, B=None, seq_lens=None, h0=None):
    """gates (z, r, h):  z, r = sig(x W^T + h R^T + b);
    h~ = tanh(x Wh^T + r (h Rh^T + Rbh) + Wbh)  (linear_before_reset; else (r h) Rh^T + Rbh);
    h' = (1 - z) h~ + z h"""
    f, g = _acts(cx, ["Sigmoid", "Tanh"])[:2]
    lbr = cx.attr("linear_before_reset", 0)

    def cell(carries, xt, rt, rb, H):
        (hp,) = carries
        xz, xr, xh = (_block(xt, k, H) for k in range(3))
        rz, rr, rh = (_block(rt, k, H) for k in range(3))
        bz, br, bh = (_block(rb, k, H) for k in range(3)) if rb is not None else (None,) * 3
        hz, hr = hp @ rz, hp @ rr
        z = f(xz + hz + bz if bz is not None else xz + hz)
        r = f(xr + hr + br if br is not None else xr + hr)
        if lbr:
            hh = hp @ rh
            if bh is not None:
                hh = hh + bh
            n = g(xh + r * hh)
        else:
            hh = (r * hp) @ rh
            n = g(xh + (hh + bh if bh is not None else hh))
        return [(1.0 - z) * n + z * hp]
    Y, (Yh,) = _run(cx, x, W, R, B, seq_lens, [h0], 3, cell)
    return [Y, Yh]


@op("RNN")
def _rnn(cx, x, W, R, B=None, seq_lens=None, h0=None):
    """h' = tanh(x W^T + h R^T + Wb + Rb)"""
    (f,) = _acts(cx, ["Tanh"])[:1]

    def cell(carries, xt, rt, rb, H):
        (hp,) = carries
        z = xt + hp @ rt
        return [f(z + rb if rb is not None else z)]
    Y, (Yh,) = _run(cx, x, W, R, B, seq_lens, [h0], 1, cell)
    return [Y, Yh]
