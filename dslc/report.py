"""Human-readable summaries of programs: `dslc check` output and DOT drawings."""
from __future__ import annotations

from .ir.dims import show_shape
from .ir.graph import Graph
from .ir.model import Program


def _count(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def describe_program(prog: Program) -> str:
    """Per model: inputs, outputs, losses, metrics, params (path, shape, count) and the total."""
    lines = []
    for m in prog.models.values():
        lines.append(f"model {m.name}")
        lines.append("  inputs:  " + (", ".join(f"{k}: {v.type}" for k, v in m.inputs.items()) or "none"))
        lines.append("  outputs: " + (", ".join(f"{k}: {v.type}" for k, v in m.outputs.items()) or "none"))
        if m.losses:
            lines.append("  losses:  " + ", ".join(
                k + (f" (wrt {', '.join(l.wrt)})" if l.wrt else "") for k, l in m.losses.items()))
        if m.metrics:
            lines.append("  metrics: " + ", ".join(m.metrics))
        lines.append("  params:")
        width = max([len(p) for p in [*m.params, *m.states]] + [4])
        total = 0
        for path, p in m.params.items():
            n = _count(p.shape)
            total += n
            lines.append(f"    {path:<{width}}  {show_shape(p.shape):<16} {n:>10,}")
        frozen = 0
        for path, s in m.states.items():
            kind = "(frozen)" if s.attrs.get("frozen") else "(state)"
            frozen += _count(s.shape) if s.attrs.get("frozen") else 0
            lines.append(f"    {path:<{width}}  {show_shape(s.shape):<16} {kind:>10}")
        lines.append(f"  total params: {total:,}" + (f" trained, {frozen:,} frozen" if frozen else ""))
        if m.name in prog.trains:
            t = prog.trains[m.name]
            lines.append(f"  train: {t.optimizer.kind}, batch {t.batch}, epochs {t.epochs}"
                         + (f", data {t.data}" if t.data else ""))
    return "\n".join(lines)


def to_dot(roots: dict, name: str = "dslc") -> str:
    """The IR as a Graphviz digraph: one box per node, labelled `op : type`."""
    g = Graph(roots)
    names = g.names()
    out = [f'digraph "{name}" {{', "  rankdir=TB; node [shape=box, fontname=monospace, fontsize=10];"]
    for n in g.order():
        label = f"{names[n.id]} = {n.op}\\n{n.type}"
        style = ', style=filled, fillcolor="#dde8ff"' if n.op in ("input", "param", "state") else ""
        out.append(f'  n{n.id} [label="{label}"{style}];')
        for i in n.inputs:
            out.append(f"  n{i.id} -> n{n.id};")
    for k, n in roots.items():
        out.append(f'  "{k}" [shape=ellipse]; n{n.id} -> "{k}";')
    out.append("}")
    return "\n".join(out)
