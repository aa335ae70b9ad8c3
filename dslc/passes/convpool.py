"""A conv followed by disjoint max pooling, as one strided conv over the pool's
taps (one rule; training graphs only, passes.FORWARD):

    max_pool(conv(x, w) + b, k)  ->  reshape(max_pool(reshape(conv(x, w_k, stride k)) + b, (k k, 1)))

for a stride-1, dilation-1 conv and pool windows k = (p, q) that tile the image.
Window tap s = (i, j) of pooled position y reads conv position k y + s, that is
x's patch at k y + s: the conv with the kernel w shifted by s inside a
(kh + p - 1) x (kw + q - 1) window, at stride k:

    w_k[(o, s), c, u] = w[o, c, u - s]     (zero outside w)
    z[n, (o, s), y]   = conv(x, w)[n, o, k y + s]

so the pool reduces over the p q taps of an axis next to the positions: a
(p q, 1) window of [N, O, p q, Y]. The same taps in the same order (the first
maximum wins, as before) and the same products; w_k's extra entries add exact
zeros, so values differ from the plain graph's only by the order of the sums
(float reassociation; none on integer data, tests/test_conv_pool.py).

Why: the pooling gradient then cuts and joins contiguous runs instead of
de-interleaving every other entry (the tap split and merge of ops/pool.py on the
full-size image), and the patches the weight gradient reads (ops/nn.py _conv_dw,
passes/convs.py) hold (kh + p - 1)(kw + q - 1) entries per pooled position
instead of kh kw p q: 36 against 100 for 5 x 5 convs under 2 x 2 pooling.

Only for up to OUT_MAX output channels: measured (A/B, 2 threads) W2's LeNet
step (6 and 16 channels) ran 0.92x; specs/cnn.dl (32 and 64 channels, 3 x 3)
ran 1.6-2x slower, its GEMMs growing by (k + 1)^2 / k^2 = 1.8x outweighing the
smaller patches."""
from __future__ import annotations

import collections

import numpy as np

from ..ir.graph import Graph
from ..ir.node import Node, apply as P, const
from ..ir.types import NUMPY
from .rewrite import rebuild


OUT_MAX = 16        # output channels up to which the rule pays (see above)


def _shifted_kernel(w: Node, p: int, q: int, loc) -> Node:
    """[O, C, kh, kw] -> [O p q, C, kh + p - 1, kw + q - 1], output channel (o, i, j)
    holding w at offset (i, j): one matmul with the 0/1 placement E[t, (s, u)] = [u = t + s]
    (each entry one w times 1: exact), then [O, C, s, u] -> [O, s, C, u]."""
    o, c, kh, kw = w.shape
    big = (kh + p - 1, kw + q - 1)
    e = np.zeros((kh, kw, p, q) + big, dtype=NUMPY[w.dtype])
    for ty, tx, i, j in np.ndindex(kh, kw, p, q):
        e[ty, tx, i, j, ty + i, tx + j] = 1
    placed = P("reshape", w, shape=(o * c, kh * kw), loc=loc) @ const(e.reshape(kh * kw, -1), w.dtype)
    placed = P("reshape", placed, shape=(o, c, p * q, big[0] * big[1]), loc=loc)
    placed = P("transpose", placed, perm=(0, 2, 1, 3), loc=loc)
    return P("reshape", placed, shape=(o * p * q, c) + big, loc=loc)


def _match(n: Node, uses) -> tuple[bool, Node] | None:
    """(has a bias, conv) when n = max_pool(conv(x, w) [+ b]) fits the rule and nothing
    else reads the conv (or the sum)."""
    kernel, strides = tuple(n.attrs["kernel"]), tuple(n.attrs["strides"])
    if len(kernel) != 2 or kernel != strides or kernel == (1, 1):
        return None
    conv, bias = n.inputs[0], None
    if conv.op == "add" and conv.inputs[0].op == "conv" and uses[conv.id] == 1:
        conv, bias = conv.inputs
        if tuple(bias.shape) != (conv.shape[1], 1, 1) or bias.dtype != conv.dtype:
            return None
    if conv.op != "conv" or uses[conv.id] > 1:
        return None
    if tuple(conv.attrs["strides"]) != (1, 1) or tuple(conv.attrs["dilations"]) != (1, 1):
        return None
    x, w = conv.inputs
    if not all(isinstance(d, int) for d in tuple(w.shape) + tuple(x.shape[1:])) or w.shape[0] > OUT_MAX:
        return None
    return bias is not None, conv


def conv_pool(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    uses = collections.Counter(r.id for r in roots.values())     # readers in the top-level graph
    for n in Graph(roots).order():
        uses.update(i.id for i in n.inputs)

    def fn(n, ins):
        m = _match(n, uses) if n.op == "max_pool" and uses[n.id] else None     # top level only
        if m is None:
            return None
        biased, conv = m
        z, bias = (ins[0].inputs[0], ins[0].inputs[1]) if biased else (ins[0], None)   # the rebuilt conv
        x, w = z.inputs
        p, q = n.attrs["kernel"]
        # the stride-k conv's output is the pooled size: floor((S - kh + 1) / p) either way
        z = P("conv", x, _shifted_kernel(w, p, q, conv.loc), strides=(p, q), pads=conv.attrs["pads"],
              dilations=(1, 1), loc=conv.loc)
        z = P("reshape", z, shape=(n.shape[0], w.shape[0], p * q, n.shape[2] * n.shape[3]), loc=conv.loc)
        if bias is not None:
            z = P("add", z, bias, loc=ins[0].loc)
        y = P("max_pool", z, kernel=(p * q, 1), strides=(p * q, 1), loc=n.loc)
        return P("reshape", y, shape=n.shape, loc=n.loc)
    return rebuild(roots, fn)
