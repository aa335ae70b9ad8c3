"""The ONNX lowering of `scan` (ops/scan.py): one `Scan` node per group of scan
nodes sharing a body and inputs; the body becomes the Scan's graph attribute,
its captured values outer-scope references."""
from __future__ import annotations

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
        outs = b.op("Scan", *names[:nc + nx], _outputs=k, body=g, num_scan_inputs=nx,
                    scan_input_directions=[1] * nx if reverse else None,
                    scan_output_directions=[1] * len(body.ys) if reverse and body.ys else None)
        b._cache[key] = outs if k > 1 else [outs]
    return b._cache[key][index]


SCAN.onnx = scan_onnx
