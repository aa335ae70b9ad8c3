"""The ONNX lowering of `scan` (ops/scan.py): one `Scan` node per group of scan
nodes sharing a body and inputs; the body becomes the Scan's graph attribute,
its captured values outer-scope references."""
from __future__ import annotations

import onnx

from ..ops.scan import SCAN
from .driver import lower_subgraph


def scan_onnx(b, *names, body, index, reverse):
    key = ("scan", id(body), reverse, names)
    if key not in b._cache:                  # one Scan node for all outputs of the group
        nc, nx, _ = body.counts
        outer = {p.id: nm for p, nm in zip(body.consts, names[nc + nx:])}   # outer-scope references
        g = lower_subgraph(b, body.new_carries + body.ys, body.carries + body.xs, outer,
                           name=body.label.replace(".", "_"))
        k = nc + len(body.ys)
        outs = b.op("Scan", *names[:nc + nx], _outputs=k, body=_outputs_in_place(g), num_scan_inputs=nx,
                    scan_input_directions=[1] * nx if reverse else None,
                    scan_output_directions=[1] * len(body.ys) if reverse and body.ys else None)
        b._cache[key] = outs if k > 1 else [outs]
    return b._cache[key][index]


def _outputs_in_place(g: onnx.GraphProto) -> onnx.GraphProto:
    """The body with each output written by the node that computes it: an
    `Identity(v) -> out` goes, and v is renamed out, where v is made by a node of
    the body (a value that is two outputs keeps one copy). A Scan runs its body T
    times, so a copy per output per step is worth removing."""
    made = {o for n in g.node for o in n.output}
    outs = {o.name for o in g.output}
    rename = {}
    for n in g.node:
        if n.op_type == "Identity" and n.output[0] in outs and n.input[0] in made and n.input[0] not in outs:
            rename.setdefault(n.input[0], n.output[0])
    if not rename:
        return g
    nodes = []
    for n in g.node:
        if n.op_type == "Identity" and n.input[0] in rename and n.output[0] == rename[n.input[0]]:
            continue
        m = onnx.NodeProto()
        m.CopyFrom(n)
        m.input[:] = [rename.get(i, i) for i in n.input]
        m.output[:] = [rename.get(o, o) for o in n.output]
        nodes.append(m)
    out = onnx.GraphProto()
    out.CopyFrom(g)
    del out.node[:]
    out.node.extend(nodes)
    return out


SCAN.onnx = scan_onnx
