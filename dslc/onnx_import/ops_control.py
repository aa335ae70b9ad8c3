"""ONNX control flow -> IR: `Scan` (opset >= 9) as the IR's `scan` (dslc's own
exported recurrences round-trip through it).

    state_0 = initial states;  for t:  state_t, y_t = body(state_{t-1}, x_t)
    outputs: the final states, then each y stacked along axis 0

The body is converted with placeholders for state_{t-1} and x_t; the outer
values it reads (params, tensors computed outside) are captured, as for a scan
written in a spec (dslc/ops/scan.py)."""
from __future__ import annotations

import itertools

from ..ir.node import apply as P
from ..ops.scan import _close, placeholder as _placeholder
from .context import Unsupported
from .table import op

_labels = itertools.count(1)


@op("Scan")
def _scan(cx, *ins):
    if cx.opset < 9:
        raise Unsupported("Scan before opset 9 (with a batch axis)")
    body = cx.attrs["body"]
    m = cx.attr("num_scan_inputs")
    nc = len(ins) - m
    for k in ("scan_input_axes", "scan_output_axes"):
        if any(a != 0 for a in (cx.attr(k) or [])):
            raise Unsupported(f"Scan {k} other than 0")
    k = len(body.output) - nc
    dirs = set(cx.attr("scan_input_directions") or [0] * m) | set(cx.attr("scan_output_directions") or [0] * k)
    if len(dirs) > 1:
        raise Unsupported("Scan with mixed directions (some forward, some reverse)")
    reverse = dirs == {1}
    inits = [cx.node(v) for v in ins[:nc]]
    seqs = [cx.node(v) for v in ins[nc:]]
    if not seqs:
        raise Unsupported("Scan without scan inputs")
    label = f"onnxscan{next(_labels)}"
    carries = [_placeholder(label, "carry", j, c.type) for j, c in enumerate(inits)]
    xs = [_placeholder(label, "x", j, s.type.with_shape(s.shape[1:])) for j, s in enumerate(seqs)]
    mark = (carries + xs)[0].id                  # nodes made before this are outer values
    names = [i.name for i in body.input]
    outs = cx.outer.run_subgraph(body, dict(zip(names, carries + xs)), cx.loc)
    outs = [cx.node(o) for o in outs]
    new, ys = outs[:nc], outs[nc:]
    for j, (a, c) in enumerate(zip(new, carries)):
        if a.type != c.type:
            raise Unsupported(f"Scan body returns {a.type} for state {j}, which starts as {c.type}")
    b, captured = _close(label, carries, xs, new, ys, mark, cx.loc)
    args = (*inits, *seqs, *captured)
    return [P("scan", *args, body=b, index=i, reverse=reverse) for i in range(nc + len(ys))]
