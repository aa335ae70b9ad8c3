"""Recurrence: the `scan` primitive (LANGUAGE.md §6) and backprop through time.

    carry_0 = init;   for t = 1..T:  carry_t, y_t = f(carry_{t-1}, x_t; θ)
    outputs:  carry_T (final carries)  and  Y = [y_1, ..., y_T] (stacked along axis 0)

`f` is a traced `Body`: a closed sub-graph over placeholder leaves for
carry_{t-1}, x_t and the captured outer values θ (params and any tensor
computed outside the step). The scan node's inputs are (inits, sequences,
captured), so the outer DAG sees every value the loop reads. IR nodes have one
value each, so a scan with K outputs is K `scan` nodes sharing one body and the
same inputs (attribute `index` picks the output); the engines run such a group
once (ONNX: one `Scan` node; NumPy: one loop, memoised per evaluation).

Gradient (BPTT): dslc/bptt.py. Lowering: dslc/lower/scan.py. NumPy: dslc/evaluate_scan.py.
"""
from __future__ import annotations

import itertools

from ..errors import SpecError
from ..ir import dims as D
from ..ir.graph import Graph, Subgraph
from ..ir.node import Node, ShapeError, apply as P, at
from ..ir.types import TensorType
from ..ir.registry import REGISTRY, primitive

_labels = itertools.count(1)


def new_label() -> str:
    """A fresh body label (`scan17`); printouts renumber them by first appearance."""
    return f"scan{next(_labels)}"


def placeholder(label: str, role: str, i: int, ty: TensorType) -> Node:
    """A body's formal argument: an input leaf named uniquely for this body."""
    name = f"{label}.{role}{i}"
    return Node("input", (), {"name": name}, ty, hint=name)


class Body(Subgraph):
    """A traced step f: placeholder leaves `carries` (carry_{t-1}), `xs` (x_t) and
    `consts` (captured outer values); roots `new_carries` (carry_t) and `ys`
    (per-step outputs, stacked by the scan). Closed: every input leaf it
    reaches is one of its placeholders. Hashed by identity (CSE keys)."""

    def __init__(self, carries, xs, consts, new_carries, ys, label: str):
        self.carries, self.xs, self.consts = list(carries), list(xs), list(consts)
        self.new_carries, self.ys = list(new_carries), list(ys)
        self.label = label
        self._order = None
        self._derived: dict = {}          # backward bodies and the like, made once per body

    @property
    def counts(self) -> tuple[int, int, int]:
        return len(self.carries), len(self.xs), len(self.consts)

    def placeholders(self) -> list[Node]:
        return self.carries + self.xs + self.consts

    def roots(self) -> dict[str, Node]:
        out = {f"carry{j}": c for j, c in enumerate(self.new_carries)}
        out.update({f"y{m}": y for m, y in enumerate(self.ys)})
        return out

    def graph(self) -> Graph:
        return Graph(self.roots())

    def order(self) -> list[Node]:
        if self._order is None:
            self._order = self.graph().order()
        return self._order

    def derived(self, key, make):
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def __repr__(self):
        return f"body {self.label}"

    def header(self) -> str:
        def names(ns):
            return " ".join(f"%{n.attrs['name']}:{n.type}".replace(" ", "") for n in ns)
        return f"body {self.label}(carries {names(self.carries)} | xs {names(self.xs)} | " \
               f"captured {names(self.consts)}):"

    def lint(self) -> None:
        g = self.graph()
        g.lint()
        mine = {p.id for p in self.placeholders()}
        stray = [n for n in g.order() if n.op in ("input", "param", "state") and n.id not in mine]
        assert not stray, f"{self!r} is not closed: it reads " + ", ".join(n.attrs["name"] for n in stray)

    def rebuild(self, run) -> "Body":
        ph = self.placeholders()
        roots = {f"p{i}": p for i, p in enumerate(ph)}
        roots.update(self.roots())
        new = run(roots)
        if all(new[k] is v for k, v in roots.items()):
            return self
        nc, nx, _ = self.counts
        p = [new[f"p{i}"] for i in range(len(ph))]
        return Body(p[:nc], p[nc:nc + nx], p[nc + nx:], [new[f"carry{j}"] for j in range(len(self.new_carries))],
                    [new[f"y{m}"] for m in range(len(self.ys))], self.label)


# -- the public function ------------------------------------------------------
def scan(step_fn, xs: Node, inits: list[Node], loc=None) -> list[Node]:
    """Run `step_fn(carries, x_t) -> new carries` along axis 0 of xs ([T, ...], T
    may be symbolic) from `inits`; returns the stacked carries, each [T, *carry].
    step_fn is called once, to trace the body; params it makes are shared across
    time (passes/unroll.py substitutes the body T times when T is known and small)."""
    inits = list(inits)
    with at(loc):
        if xs.rank < 1:
            raise SpecError(f"scan runs along the first axis of its sequence, found a scalar {xs.type}", loc)
        label = new_label()
        carries = [placeholder(label, "carry", j, c.type) for j, c in enumerate(inits)]
        x = placeholder(label, "x", 0, xs.type.with_shape(xs.shape[1:]))
        mark = (carries[0] if carries else x).id          # nodes made before this are outer values
        new = step_fn(list(carries), x)
        new = list(new) if isinstance(new, (list, tuple)) else [new]
        if len(new) != len(inits):
            raise SpecError(f"the scan step returns {len(new)} values for {len(inits)} carries", loc)
        for j, (c, i) in enumerate(zip(new, inits)):
            if c.type != i.type:
                raise SpecError(f"the scan step returns {c.type} for carry {j + 1}, "
                                f"whose initial value is {i.type}; they must be equal", loc)
        body, captured = _close(label, carries, [x], new, new, mark, loc)
        ins = (*inits, xs, *captured)
        return [P("scan", *ins, body=body, index=len(inits) + j, reverse=False, loc=loc)
                for j in range(len(inits))]


def _close(label, carries, xs, new_carries, ys, mark, loc) -> tuple[Body, list[Node]]:
    """The traced step as a closed Body: every value it reads from outside (made
    before the trace, or a param/input/state leaf) becomes a captured placeholder."""
    formal = {p.id for p in carries + xs}
    captured: dict[int, Node] = {}
    inside: dict[int, Node] = {}
    stack = list(new_carries) + list(ys)
    while stack:
        n = stack.pop()
        if n.id in formal or n.id in captured or n.id in inside:
            continue
        if n.op in ("input", "param", "state") or (n.id < mark and n.op != "const"):
            captured[n.id] = n
            continue
        if REGISTRY[n.op].family == "random":
            raise SpecError("random draws (dropout, normal, uniform, ...) inside a scan step are not "
                            "supported; draw them outside the step and pass them in the sequence", n.loc or loc)
        inside[n.id] = n
        stack.extend(n.inputs)
    outer = [captured[i] for i in sorted(captured)]
    consts = [placeholder(label, "in", k, n.type) for k, n in enumerate(outer)]
    sub = {n.id: p for n, p in zip(outer, consts)}
    for i in sorted(inside):                 # ids increase along every edge: a topological order
        n = inside[i]
        ins = tuple(sub.get(a.id, a) for a in n.inputs)
        sub[i] = n if all(a is b for a, b in zip(ins, n.inputs)) else Node(n.op, ins, n.attrs, n.type, n.loc, n.hint)
    body = Body(carries, xs, consts, [sub.get(c.id, c) for c in new_carries], [sub.get(y.id, y) for y in ys], label)
    return body, outer


# -- the primitive ------------------------------------------------------------
def split(body: Body, ins):
    nc, nx, _ = body.counts
    return ins[:nc], ins[nc:nc + nx], ins[nc + nx:]


def _scan_shape(types, body, index, reverse):
    nc, nx, nk = body.counts
    if len(types) != nc + nx + nk:
        raise ShapeError(f"scan takes {nc + nx + nk} inputs, found {len(types)}")
    inits, seqs, caps = split(body, types)
    for j, (t, p) in enumerate(zip(inits, body.carries)):
        if t != p.type:
            raise ShapeError(f"scan carry {j + 1}: the initial value is {t}, the step takes {p.type}")
    T = None
    for t, p in zip(seqs, body.xs):
        if t.rank < 1 or t.with_shape(t.shape[1:]) != p.type:
            raise ShapeError(f"scan sequence {t} does not hold steps of {p.type}")
        if T is None:
            T = t.shape[0]
        elif t.shape[0] != T:
            raise ShapeError(f"scan sequences differ in length: {D.show(T)} and {D.show(t.shape[0])}")
    for t, p in zip(caps, body.consts):
        if t != p.type:
            raise ShapeError(f"scan captured value {t} where the body reads {p.type}")
    if index < nc:
        return body.new_carries[index].type
    y = body.ys[index - nc].type
    return y.with_shape((T,) + y.shape)


# The engines' rules for scan sit with the engines (primitives depend on the IR only):
# the gradient (BPTT) in dslc/bptt.py, the ONNX `Scan` lowering in dslc/lower/scan.py,
# the NumPy loop in dslc/evaluate_scan.py; each attaches itself to this entry.
SCAN = primitive("scan", "control", _scan_shape,
                 doc="carry_t, y_t = body(carry_{t-1}, x_t; captured); outputs carry_T or stacked y")
