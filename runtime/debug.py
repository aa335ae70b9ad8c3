"""Finding where a NaN/Inf came from: re-run one step through a copy of the
graph in which every node output is also a graph output, and report the first
node (in graph order) whose output is non-finite."""
from __future__ import annotations

import numpy as np
import onnx

from .session import make_session


def expose_all_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose graph outputs also include every top-level node output."""
    debug = onnx.ModelProto()
    debug.CopyFrom(model)
    g = debug.graph
    have = {o.name for o in g.output}
    for node in g.node:
        for name in node.output:
            if name and name not in have:
                g.output.add().name = name   # no type: onnxruntime infers it
                have.add(name)
    return debug


def _non_finite(value) -> bool:
    arr = np.asarray(value)
    return arr.dtype.kind in "fc" and not np.all(np.isfinite(arr))


def describe_node(node: onnx.NodeProto) -> dict:
    return {"name": node.name, "op_type": node.op_type, "doc_string": node.doc_string}


def find_first_non_finite(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                          device="cpu", threads=None) -> dict | None:
    """The first node whose output is non-finite when `model` runs on `feeds`,
    as {name, op_type, doc_string, output}; an input already non-finite is
    reported as {op_type: "input", name, output}. None when nothing is found."""
    for name, value in feeds.items():
        if _non_finite(value):
            return {"name": name, "op_type": "input", "doc_string": "", "output": name}
    debug = expose_all_outputs(model)
    sess = make_session(debug, device=device, threads=threads, optimize=False)
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(names, feeds)))
    for node in model.graph.node:
        for out in node.output:
            if out and out in values and _non_finite(values[out]):
                return dict(describe_node(node), output=out)
    return None


def describe(found: dict | None) -> str:
    """A phrase naming the culprit for an error message."""
    if found is None:
        return "no single node was found (the non-finite value may come from a subgraph)"
    if found["op_type"] == "input":
        return f"input `{found['name']}` was already non-finite"
    where = found["doc_string"] or "no source location"
    label = f" `{found['name']}`" if found["name"] else ""
    return f"first non-finite value from {found['op_type']} node{label} ({where}), output `{found['output']}`"
