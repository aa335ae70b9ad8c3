"""The lowering driver: IR nodes in topological order, each through its
primitive's `onnx` rule, into one ONNX graph."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir import dims as D
from ..ir.graph import Graph
from ..ir.node import Node
from ..ir.types import NUMPY, TensorType
from ..ir.registry import get
from .builder import ONNX_DTYPE, OnnxBuilder, Value

OPSET = 18          # ONNX opset the compiler targets
IR_VERSION = 9


def value_info(name: str, ty: TensorType, doc: str = "") -> onnx.ValueInfoProto:
    shape = [d if isinstance(d, int) else D.show(d) for d in ty.shape]
    vi = helper.make_tensor_value_info(name, ONNX_DTYPE[ty.dtype], shape)
    if doc:
        vi.doc_string = doc
    return vi


def draw_numbers(outputs: dict[str, Node]) -> dict[int, int]:
    """The numbers lowering gives the random draws of `outputs`: their topological order."""
    uids = [n.attrs["uid"] for n in Graph(outputs).order() if n.op.startswith("random_")]
    return {u: i for i, u in enumerate(dict.fromkeys(uids))}


def dim_sources(inputs: list[Node]) -> dict[str, tuple[str, int]]:
    """Each plain symbol, the first graph input and axis where it appears."""
    out: dict[str, tuple[str, int]] = {}
    for n in inputs:
        for axis, d in enumerate(n.shape):
            name = D.plain_name(d)
            if name is not None:
                out.setdefault(name, (n.attrs["name"], axis))
    return out


def lower_graph(outputs: dict[str, Node], inputs: list[Node], initializers: dict[str, np.ndarray] | None = None,
                name: str = "dslc", doc: str = "", base_seed: int = 0,
                rng_counter: str | None = None, rng_seed: str | None = None,
                rng_row_offset: str | None = None, rng_batch=None,
                draws: dict[int, int] | None = None) -> onnx.GraphProto:
    """One ONNX graph computing `outputs` from `inputs` (input/param/state/leaf
    nodes that become graph inputs under their names). Leaves that are not
    inputs must have a value in `initializers` (they become constants).
    `draws` fixes the numbers of random draws (uid -> number) so that two graphs
    sharing draws draw the same noise; by default they are numbered in order."""
    initializers = dict(initializers or {})
    b = OnnxBuilder(dim_sources(inputs), base_seed, rng_counter)
    b.rng_seed, b.rng_row_offset, b.rng_batch = rng_seed, rng_row_offset, rng_batch
    b.draws = dict(draws or {})
    names: dict[int, str] = {}
    input_names = set()
    for n in inputs:
        names[n.id] = n.attrs["name"]
        input_names.add(n.attrs["name"])
    _emit(b, Graph(outputs).order(), names, set(initializers) | input_names)
    # each output is written by the node that produces it (its output renamed);
    # Identity copies only for graph inputs and values that two outputs share
    produced = {o for nd in b.nodes for o in nd.output}
    renamed: dict[str, str] = {}
    outs, copies = [], []
    for oname, n in outputs.items():
        src = names[n.id]
        if src in produced and src not in renamed and src not in initializers:
            renamed[src] = oname
        else:
            copies.append(helper.make_node("Identity", [renamed.get(src, src)], [oname]))
        outs.append(value_info(oname, n.type))
    _rename(b.nodes, renamed)
    b.nodes.extend(copies)
    graph = helper.make_graph(
        live(b.nodes, [o.name for o in outs]), name,
        inputs=[value_info(n.attrs["name"], n.type) for n in inputs],
        outputs=outs,
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()],
        doc_string=doc)
    return graph


def _reads(nd) -> set[str]:
    """The names a node reads: its inputs and, through its sub-graphs, outer-scope names."""
    names = set(nd.input)
    for a in nd.attribute:
        for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            for sub in g.node:
                names |= _reads(sub)
    return names


def live(nodes, outputs) -> list:
    """The nodes the outputs need, in order: ONNX Runtime runs every node of a graph, used
    or not (a rule's helper value a later rule did not take, say)."""
    need, kept = set(outputs), []
    for nd in reversed(nodes):
        if any(o in need for o in nd.output if o):
            kept.append(nd)
            need |= _reads(nd)
    return kept[::-1]


def _rename(nodes, renamed: dict[str, str]) -> None:
    """Rename values in place, in nested graphs (Scan/Loop bodies read outer names) too."""
    if not renamed:
        return
    for nd in nodes:
        for i, nm in enumerate(nd.input):
            if nm in renamed:
                nd.input[i] = renamed[nm]
        for i, nm in enumerate(nd.output):
            if nm in renamed:
                nd.output[i] = renamed[nm]
        for a in nd.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _rename(a.g.node, renamed)
                for o in a.g.output:
                    if o.name in renamed:
                        o.name = renamed[o.name]
            for sub in a.graphs:
                _rename(sub.node, renamed)


def split_groups(order: list[Node]) -> dict[int, tuple[int, tuple[int, ...], int]]:
    """Slices of one value along one axis whose windows tile that axis exactly (the
    gates of a recurrent cell): slice id -> (axis, the windows' sizes, its window).
    They lower as one ONNX Split, one pass and one kernel, in place of one Slice
    each (ops/shape.py); inside a Scan body that is a kernel less per step each."""
    groups: dict[tuple[Node, int], dict[tuple[int, int], list[int]]] = {}      # Nodes hash by identity
    for n in order:
        if n.op != "slice" or len(n.attrs["spec"]) != 1:
            continue
        axis, start, end, step = n.attrs["spec"][0]
        if step == 1 and isinstance(start, int) and isinstance(end, int) and isinstance(n.inputs[0].shape[axis], int):
            groups.setdefault((n.inputs[0], axis), {}).setdefault((start, end), []).append(n.id)
    out = {}
    for (x, axis), ranges in groups.items():
        spans = sorted(ranges)
        bounds = [0] + [e for _, e in spans]
        if len(spans) > 1 and [st for st, _ in spans] == bounds[:-1] and bounds[-1] == x.shape[axis]:
            sizes = tuple(e - st for st, e in spans)
            out.update({i: (axis, sizes, k) for k, span in enumerate(spans) for i in ranges[span]})
    return out


def _emit(b: OnnxBuilder, order: list[Node], names: dict[int, str], known: set[str]) -> None:
    """Lower each node not yet named through its primitive's `onnx` rule.
    Leaves must be named already or carry a name in `known`."""
    b.split_of.update(split_groups(order))
    for n in order:
        if n.id in names:
            continue
        b.node = n
        if n.op in ("input", "param", "state"):
            nm = n.attrs["name"]
            if nm not in known:
                raise AssertionError(f"{n.op} `{nm}` is neither a graph input nor an initializer")
            names[n.id] = nm
            continue
        prim = get(n.op)
        assert prim.onnx is not None, f"primitive {n.op} has no ONNX lowering (specialise it away first)"
        names[n.id] = prim.onnx(b, *[Value(names[i.id], i.type) for i in n.inputs], **n.attrs)
    b.node = None


def lower_subgraph(b: OnnxBuilder, outputs: list[Node], inputs: list[Node], outer: dict[int, str],
                   name: str = "body") -> onnx.GraphProto:
    """A nested graph (the body of a Scan or Loop) lowered inside builder `b`:
    `inputs` become its formal inputs (fresh names, in order), the leaves in
    `outer` (node id -> name) read values of the enclosing graph by name
    (outer-scope references), and `outputs` become its outputs, in order."""
    sub = b.child()
    names = dict(outer)
    for n in inputs:
        names[n.id] = sub.fresh("in")
    _emit(sub, Graph({str(i): o for i, o in enumerate(outputs)}).order(), names, set())
    outs = []
    for n in outputs:
        oname = sub.fresh("out")
        sub.nodes.append(helper.make_node("Identity", [names[n.id]], [oname]))
        outs.append(value_info(oname, n.type))
    return helper.make_graph(live(sub.nodes, [o.name for o in outs]), name,
                             inputs=[value_info(names[n.id], n.type) for n in inputs], outputs=outs)


def make_model(graph: onnx.GraphProto, metadata: dict[str, str] | None = None, doc: str = "") -> onnx.ModelProto:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="dslc", producer_version="0.1")
    m.ir_version = IR_VERSION
    if doc:
        m.doc_string = doc
    for k, v in (metadata or {}).items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    return m


def lower_function(outputs: dict[str, Node], inputs: list[Node], base_seed: int = 0) -> onnx.ModelProto:
    """A standalone model: every leaf in `inputs` is a graph input."""
    return make_model(lower_graph(outputs, inputs, base_seed=base_seed))
