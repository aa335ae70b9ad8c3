"""LoRA export: fold trained adapters into the weights they adapt.

The inference graph of a model with `lora = {...}` (dslc/elaborate/finetune.py)
computes W + D U from three initializers `W`, `W.lora_down`, `W.lora_up`.
`merge_adapters` evaluates that sum once, stores it as `W`, and drops the
adapters: the merged model has the original model's initializers and outputs."""
from __future__ import annotations

import onnx
from onnx import numpy_helper

def merge_adapters(proto):
    """An inference ModelProto with each `W + W.lora_down @ W.lora_up` (all initializers)
    folded into the initializer W; the adapters' initializers are dropped."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    drop_nodes, renames = set(), {}
    for n in g.node:
        if n.op_type != "Add" or len(n.input) != 2:
            continue
        for w, mm in (n.input, n.input[::-1]):
            mmn = producer.get(mm)
            if w in inits and mmn is not None and mmn.op_type == "MatMul" \
                    and tuple(mmn.input) == (f"{w}.lora_down", f"{w}.lora_up") \
                    and all(i in inits for i in mmn.input):
                a, d, u = (numpy_helper.to_array(inits[k]) for k in (w, *mmn.input))
                inits[w].CopyFrom(numpy_helper.from_array((a + d @ u).astype(a.dtype), w))
                drop_nodes |= {id(n), id(mmn)}
                renames[n.output[0]] = w
                break
    if not renames:
        return proto
    keep = [n for n in g.node if id(n) not in drop_nodes]
    keep = [_copy(n) for n in keep]
    del out.graph.node[:]
    for m in keep:
        for k, i in enumerate(m.input):
            if i in renames:
                m.input[k] = renames[i]
        out.graph.node.append(m)
    for o in out.graph.output:
        if o.name in renames:
            raise AssertionError("a merged adapter is a graph output")
    used = {i for n in out.graph.node for i in n.input}
    kept = [_copy(inits[k]) for k in inits if k in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    return out


def _copy(proto):
    c = type(proto)()
    c.CopyFrom(proto)
    return c
