"""A conv whose input's patches the graph already holds is a matmul over them
(a pattern of one row; training graphs hold them for the weight gradient,
ops/nn.py _conv_dw):

    conv(x, w)  ->  reshape(w' @ im2col(x))   with w'[o, (c, t)] = w[o, c, t]

so the forward and the weight gradient read x's patches once."""
from __future__ import annotations

from ..ir.node import Node, apply as P
from .rewrite import rebuild
from .scans import find_ops


def _key(x: Node, kernel, strides, pads, dilations) -> tuple:
    return (x.id, tuple(kernel), tuple(strides), tuple(map(tuple, pads)), tuple(dilations))


def conv_patches(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    have = {_key(n.inputs[0], **n.attrs): n for n in find_ops(roots, ("im2col",))}
    if not have:
        return roots, False
    convs = {n.id: have.get(_key(n.inputs[0], n.inputs[1].shape[2:], n.attrs["strides"], n.attrs["pads"],
                                 n.attrs["dilations"]))
             for n in find_ops(roots, ("conv",))}
    if not any(convs.values()):
        return roots, False
    new_cols: dict[int, Node] = {}

    def fn(n, ins):
        if n.op == "im2col":
            new_cols[n.id] = n.with_inputs(ins)
            return new_cols[n.id]
        cols = convs.get(n.id)
        if cols is None:
            return None
        x, w = ins
        cols = new_cols.get(cols.id) or cols.with_inputs((x,))
        wt = P("reshape", w, shape=(w.shape[0], cols.shape[1]), loc=n.loc)     # [O, C, *K] -> [O, (c, t)]
        return P("reshape", wt @ cols, shape=n.shape, loc=n.loc)
    return rebuild(roots, fn)
