"""A graph: named roots and every node reachable from them.

Graph algorithms come from networkx: `to_nx()` gives the DiGraph (edges go
from an input to its user). `order()` is the deterministic topological order
(ties broken by creation), so printouts are stable and golden-testable. A
node is made after its inputs, so ids increase along every edge and the
reachable nodes sorted by id are exactly networkx's lexicographical
topological order; it is computed once per root set and cached (nodes are
immutable, so the order of what a set of roots reaches never changes).
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from .dims import show_shape
from .node import Node
from .registry import REGISTRY

LEAVES = ("input", "param", "state", "const")
_ORDERS: dict[tuple, list] = {}       # root ids -> topological order (recent root sets)
_ORDERS_MAX = 64


class Subgraph:
    """A node attribute holding a closed sub-graph (e.g. a scan's step body).

    Generic hooks for the engines: `graph()` is the sub-graph (printed indented
    under its node and linted with the outer graph), `header()` its first
    printed line, `rebuild(run)` the same sub-graph with a whole-graph rebuild
    `run(roots) -> roots` applied inside (passes see through bodies); it returns
    self when nothing changed. Identity is by object (hashable CSE keys)."""

    def graph(self) -> "Graph":
        raise NotImplementedError

    def header(self) -> str:
        return repr(self)

    def lint(self) -> None:
        self.graph().lint()

    def rebuild(self, run) -> "Subgraph":
        raise NotImplementedError


def subgraphs(n: Node) -> list[Subgraph]:
    return [v for v in n.attrs.values() if isinstance(v, Subgraph)]


class Graph:
    """Roots by name (outputs, losses, metrics, new state...) over a DAG of Nodes."""

    def __init__(self, roots: dict[str, Node]):
        self.roots = dict(roots)

    def to_nx(self) -> nx.DiGraph:
        g = nx.DiGraph()
        stack, seen = list(self.roots.values()), set()
        while stack:
            n = stack.pop()
            if n.id in seen:
                continue
            seen.add(n.id)
            g.add_node(n.id, node=n)
            for i in n.inputs:
                g.add_edge(i.id, n.id)
                stack.append(i)
        return g

    def order(self) -> list[Node]:
        key = tuple(sorted({n.id for n in self.roots.values()}))
        got = _ORDERS.get(key)
        if got is None:
            seen: dict[int, Node] = {}
            stack = list(self.roots.values())
            while stack:
                n = stack.pop()
                if n.id not in seen:
                    seen[n.id] = n
                    stack.extend(i for i in n.inputs if i.id not in seen)
            got = [seen[i] for i in sorted(seen)]      # ids increase along edges
            if len(_ORDERS) >= _ORDERS_MAX:
                _ORDERS.pop(next(iter(_ORDERS)))
            _ORDERS[key] = got
        return list(got)

    # -- printing ----------------------------------------------------------
    def names(self) -> dict[int, str]:
        """SSA names: leaves by their own name, others %0, %1, ... in order."""
        out, k = {}, 0
        for n in self.order():
            if n.op in ("input", "param", "state"):
                out[n.id] = "%" + n.attrs["name"]
            else:
                out[n.id] = f"%{k}"
                k += 1
        return out

    def print(self, locs: bool = True, _top: bool = True) -> str:
        """Typed SSA, one node per line, with the spec line it came from.
        A sub-graph attribute (a scan body) prints indented under its first user."""
        names = self.names()
        lines, shown = [], set()
        for n in self.order():
            lhs = f"{names[n.id]}:{n.dtype}{show_shape(n.shape).replace(' ', '')}"
            args = " ".join(names[i.id] for i in n.inputs)
            attrs = _attrs_text(n)
            rhs = " ".join(p for p in (n.op, args, attrs) if p)
            line = f"{lhs} = {rhs}"
            if locs and n.loc is not None:
                line = f"{line:<44} # {n.loc.filename.rsplit('/', 1)[-1]}:{n.loc.line}"
            lines.append(line)
            for sg in subgraphs(n):
                if id(sg) not in shown:
                    shown.add(id(sg))
                    lines.append("    " + sg.header())
                    lines.extend("    " + ln for ln in sg.graph().print(locs, False).splitlines())
        for name, n in self.roots.items():
            lines.append(f"return {name} = {names[n.id]}")
        text = "\n".join(lines)
        return _renumber_labels(text) if _top else text

    __str__ = print

    # -- checking ----------------------------------------------------------
    def lint(self) -> None:
        """Assert the IR invariants: registered ops, unique ids, unique leaf names
        (one node per input/param/state name), inputs defined before use, and
        every stored type equal to its recomputed type."""
        problems = []
        seen: set[int] = set()
        leaf_names: dict[str, Node] = {}
        for n in self.order():
            if n.id in seen:
                problems.append(f"%{n.id} appears twice")
            if n.op in ("input", "param", "state"):
                other = leaf_names.setdefault(n.attrs["name"], n)
                if other is not n:
                    problems.append(f"%{n.id}: {n.op} name `{n.attrs['name']}` is also %{other.id}")
            if n.op not in REGISTRY:
                problems.append(f"%{n.id}: unregistered op {n.op!r}")
            for i in n.inputs:
                if i.id not in seen:
                    problems.append(f"%{n.id}: input %{i.id} used before definition")
            seen.add(n.id)
            if n.op in REGISTRY and n.op not in LEAVES:
                try:
                    ty = REGISTRY[n.op].shape([i.type for i in n.inputs], **n.attrs)
                except Exception as e:  # noqa: BLE001 - reported below
                    problems.append(f"%{n.id}: shape rule fails: {e}")
                else:
                    if ty != n.type:
                        problems.append(f"%{n.id}: stored type {n.type} != recomputed {ty}")
            for sg in subgraphs(n):
                try:
                    sg.lint()
                except AssertionError as e:
                    problems.append(f"%{n.id}: in {sg!r}: {e}")
        if problems:
            raise AssertionError("lint failed:\n  " + "\n  ".join(problems) + "\n" + self.print())


def substitute(root: Node, mapping: dict[int, Node]) -> Node:
    """`root` with the nodes whose ids are in `mapping` replaced (x := mapping[x.id])."""
    return substitute_roots({"root": root}, mapping)["root"]


def substitute_roots(roots: dict[str, Node], mapping: dict[int, Node]) -> dict[str, Node]:
    """Every root with the nodes whose ids are in `mapping` replaced, in one shared rebuild."""
    memo: dict[int, Node] = {}
    for n in Graph(roots).order():
        memo[n.id] = mapping[n.id] if n.id in mapping else n.with_inputs(memo[i.id] for i in n.inputs)
    return {k: memo[v.id] for k, v in roots.items()}


def _renumber_labels(text: str) -> str:
    """Sub-graph labels (`scan17`) come from a process-wide counter; number them
    by first appearance so equal graphs print equally."""
    import re
    seen: dict[str, str] = {}
    draws: dict[str, str] = {}

    def sub(m):
        return seen.setdefault(m.group(0), f"{m.group(1)}{len(seen) + 1}")
    text = re.sub(r"\b(scan)(\d+)\b", sub, text)
    return re.sub(r"\buid=(\d+)", lambda m: draws.setdefault(m.group(0), f"uid={len(draws)}"), text)


def _attrs_text(n: Node) -> str:
    parts = []
    for k, v in sorted(n.attrs.items()):
        if k == "name" and n.op in ("input", "param", "state"):
            continue
        if isinstance(v, np.ndarray):
            v = v.item() if v.size == 1 else f"<{v.dtype}{list(v.shape)}>"
        elif isinstance(v, tuple) and any(not isinstance(x, (int, str, float, type(None))) for x in v):
            v = show_shape(v) if all(not isinstance(x, tuple) for x in v) else v
        parts.append(f"{k}={v}")
    return "{" + ", ".join(parts) + "}" if parts else ""
