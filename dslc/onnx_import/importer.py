"""An ONNX model read for import: its inputs, outputs and initializers, and
`build`, which turns its graph into IR over given input nodes.

Initializers become leaves: float tensors of rank >= 1 are params (trained),
BatchNormalization's running statistics are states (updated in training), and
the rest (integer tensors, scalars) are static constants folded at import.
Leaves are made on first use through the `leaf(kind, onnx_name, array)`
callback, so the front end names them (`net.<sanitized name>`, see `sanitize`).
"""
from __future__ import annotations

import re
from collections import ChainMap
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import Loc, SpecError
from ..ir import dims as D
from ..ir.node import Node, apply as P, at, const
from . import (ops_construct, ops_control, ops_index, ops_math, ops_nn, ops_random,  # noqa: F401
               ops_rnn, ops_shape)                                                   # (registration)
from .context import DTYPE, Ctx, Unsupported, canon
from .table import CONVERTERS, key, supported

OPSETS = (13, 21)     # the opsets the converters follow


def sanitize(name: str) -> str:
    """An ONNX name as a dslc path below the import: dots separate path parts;
    any other character outside [A-Za-z0-9_] becomes `_`; empty parts become `_`
    (`onnx::MatMul_345` -> `onnx__MatMul_345`, `/enc/Add_output_0` -> `_enc_Add_output_0`)."""
    parts = [re.sub(r"[^A-Za-z0-9_]", "_", p) or "_" for p in name.split(".")]
    return ".".join(parts)


def symbol(name: str) -> str:
    """An ONNX symbolic dim (`batch_size`, `unk__3`) as a .dl dim name."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if re.match(r"[A-Za-z_]", s) else "_" + s


@dataclass
class Port:
    """A graph input or output: ONNX name, dtype (None if not an IR dtype) and shape (ints / Syms / None)."""
    name: str
    dtype: str | None
    shape: tuple | None
    onnx_type: str = ""


def _bodies(n: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The sub-graphs of node n (a Scan's body, an If's branches)."""
    return [g for a in n.attribute for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs))]


def outer_names(graph: onnx.GraphProto) -> set[str]:
    """The names a sub-graph (a Scan body) reads but does not define: values of the
    enclosing scopes (ONNX lets a body see them; dslc's scan passes hoist loop
    invariants out of the body, so its exported bodies rely on it). Nested bodies count."""
    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    used = set()
    for n in graph.node:
        used |= {i for i in n.input if i}
        for g in _bodies(n):
            used |= outer_names(g)
        defined |= {o for o in n.output if o}
    used |= {o.name for o in graph.output}
    return used - defined


def _reads(n: onnx.NodeProto) -> list[str]:
    """Every value node n reads: its inputs and its bodies' outer-scope names."""
    out = [i for i in n.input if i]
    for g in _bodies(n):
        out += sorted(outer_names(g))
    return out


def _port(vi: onnx.ValueInfoProto) -> Port:
    t = vi.type.tensor_type
    dt = DTYPE.get(t.elem_type)
    if t.elem_type in (onnx.TensorProto.INT32, onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.UINT8):
        dt = None                            # run-time small ints: not an IR dtype
    shape = None
    if t.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else
                      (D.Sym.var(symbol(d.dim_param)) if d.dim_param else None) for d in t.shape.dim)
    tname = onnx.TensorProto.DataType.Name(t.elem_type).lower() if t.elem_type else "?"
    return Port(vi.name, dt, shape, tname)


@dataclass
class OnnxModel:
    """A loaded ONNX model: `inputs`/`outputs` (Ports), `params`/`states`/`statics`
    (initializers by kind), and the graph to `build`."""
    path: str
    proto: onnx.ModelProto
    opset: int
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    params: dict = field(default_factory=dict)       # onnx name -> array
    states: dict = field(default_factory=dict)
    statics: dict = field(default_factory=dict)

    @staticmethod
    def load(path, loc: Loc | None = None) -> "OnnxModel":
        try:
            proto = onnx.load(str(path))
        except Exception as e:  # noqa: BLE001 - a bad file is the user's error
            raise SpecError(f"cannot read ONNX model {path}: {e}", loc) from None
        try:
            proto = onnx.shape_inference.infer_shapes(proto)
        except Exception:  # noqa: BLE001 - shapes are only a help (the IR computes its own)
            pass
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
        g = proto.graph
        init_names = {i.name for i in g.initializer}
        m = OnnxModel(str(path), proto, opset)
        m.inputs = [_port(v) for v in g.input if v.name not in init_names]
        m.outputs = [_port(v) for v in g.output]
        state_names = set()
        for n in g.node:
            if n.op_type == "BatchNormalization":
                state_names |= set(n.input[3:5])
        for i in g.initializer:
            a = numpy_helper.to_array(i)
            if i.name in state_names:
                m.states[i.name] = a
            elif a.dtype.kind == "f" and a.ndim >= 1 and a.dtype != np.float16:
                m.params[i.name] = a
            else:
                m.statics[i.name] = canon(a)
        return m

    def unsupported(self) -> list[tuple[str, str]]:
        """(op, node name) of every node no converter handles, Scan bodies included."""
        out = []

        def walk(graph):
            for n in graph.node:
                if not supported(n.op_type, n.domain):
                    out.append((key(n.op_type, n.domain), n.name))
                for g in _bodies(n):
                    walk(g)
        walk(self.proto.graph)
        return out

    def param_count(self) -> int:
        return int(sum(a.size for a in self.params.values()))

    # -- building -------------------------------------------------------------------
    def build(self, inputs: dict, leaf, loc: Loc | None, wanted: list[str] | None = None):
        """IR for the outputs `wanted` (default: all) given `inputs` (onnx input name -> Node).
        leaf(kind, name, array) makes the param/state leaf. Returns (outputs: name -> Node,
        state updates: state onnx name -> Node)."""
        g = self.proto.graph
        wanted = wanted or [o.name for o in self.outputs]
        producer = {o: n for n in g.node for o in n.output if o}
        need, stack = set(), list(wanted)
        while stack:                          # only the nodes the wanted outputs depend on
            v = stack.pop()
            n = producer.get(v)
            if n is None or id(n) in need:
                continue
            need.add(id(n))
            stack.extend(_reads(n))
        env: dict = dict(inputs)
        leaves: dict = {}
        updates: dict = {}
        builder = _Outer(self, env, leaves, leaf, updates, inputs)
        with at(loc):
            for n in g.node:
                if id(n) not in need:
                    continue
                ins = [builder.value(i, n) if i else None for i in n.input]
                outs = self._convert(n, ins, loc, builder)
                for name, v in zip(n.output, outs):
                    if name:
                        env[name] = v
            result = {}
            for w in wanted:
                if w not in env:
                    v = builder.value(w, None)
                else:
                    v = env[w]
                result[w] = v
        return result, updates

    def _convert(self, n: onnx.NodeProto, ins: list, loc, outer) -> list:
        k = key(n.op_type, n.domain)
        where = f"node `{n.name or n.output[0]}`, opset {self.opset}"
        if k not in CONVERTERS:
            raise SpecError(f"cannot import ONNX op {k} ({where}): dslc has no converter for it", loc)
        if outer.current is not None and outer.current is not n and outer.depth:
            where += f", inside `{outer.current.name}`"
        while ins and ins[-1] is None:
            ins.pop()
        cx = Ctx(n, self.opset, loc, outer)
        outer.current = n
        try:
            out = CONVERTERS[k](cx, *ins)
        except Unsupported as e:
            raise SpecError(f"cannot import ONNX op {k} ({where}): {e}", loc) from None
        except SpecError as e:
            raise SpecError(f"cannot import ONNX op {k} ({where}): {e.message}", loc) from None
        except TypeError as e:
            raise SpecError(f"cannot import ONNX op {k} ({where}): unexpected inputs ({e})", loc) from None
        except (ValueError, IndexError, KeyError, AttributeError, AssertionError) as e:
            raise SpecError(f"cannot import ONNX op {k} ({where}): its converter failed "
                            f"({type(e).__name__}: {e})", loc) from None
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return [v if v is None or isinstance(v, Node) else
                canon(np.asarray(v, dtype=object) if isinstance(v, D.Sym) else np.asarray(v)) for v in outs]


class _Outer:
    """What converters reach through `cx.outer`: values by name, leaves, state updates, dims."""

    def __init__(self, model: OnnxModel, env, leaves, leaf, updates, inputs, depth: int = 0):
        self.model, self.env, self.leaves, self.leaf, self.updates = model, env, leaves, leaf, updates
        self.inputs = inputs
        self.current = None
        self.depth = depth

    def run_subgraph(self, graph: onnx.GraphProto, bindings: dict, loc) -> list:
        """Convert a sub-graph (a Scan body) whose inputs are `bindings` (name -> value);
        names it does not define are the enclosing graph's (outer scope); its own
        initializers are static constants. Returns its outputs."""
        local = {i.name: canon(numpy_helper.to_array(i)) for i in graph.initializer}
        env = ChainMap({**local, **bindings}, self.env)
        inner = _Outer(self.model, env, self.leaves, self.leaf, self.updates, self.inputs, self.depth + 1)
        for n in graph.node:
            ins = [inner.value(i, n) if i else None for i in n.input]
            outs = self.model._convert(n, ins, loc, inner)
            for name, v in zip(n.output, outs):
                if name:
                    env.maps[0][name] = v
        return [inner.value(o.name, None) for o in graph.output]

    def value(self, name: str, node):
        if name in self.env:
            return self.env[name]
        m = self.model
        if name in m.params:
            v = self.leaf("param", name, m.params[name])
        elif name in m.states:
            v = self.leaf("state", name, m.states[name])
        elif name in m.statics:
            v = m.statics[name]
        else:
            raise SpecError(f"ONNX value `{name}` is used but never defined"
                            + (f" (node `{node.name}`)" if node is not None else ""))
        (self.env.maps[-1] if isinstance(self.env, ChainMap) else self.env)[name] = v
        return v

    def state_of(self, v):
        if not (isinstance(v, Node) and v.op == "state"):
            raise Unsupported("running statistics that are not initializers")
        return v

    def update(self, v, new: Node):
        self.updates[v.attrs["name"]] = new

    def dim_value(self, d):
        """An i64 scalar node holding dim d at run time (read off an input that has it)."""
        if isinstance(d, (int, np.integer)):
            return const(int(d), "i64")
        for x in self.inputs.values():
            for ax, e in enumerate(x.shape):
                if e == d:
                    return P("size", x, axes=(ax,), dtype="i64")
        raise Unsupported(f"the dim {D.show(d)} used as a value")
