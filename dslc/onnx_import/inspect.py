"""`dslc inspect MODEL.onnx`: an ONNX model's inputs, outputs, params (at the
paths an `import ... as net` gives them) and whether every op can be imported."""
from __future__ import annotations

from collections import Counter

from ..ir import dims as D
from .importer import OPSETS, OnnxModel, sanitize


def _type(p) -> str:
    if p.shape is None:
        return f"{p.dtype or p.onnx_type}[?]"
    return f"{p.dtype or p.onnx_type}[{', '.join('?' if d is None else D.show(d) for d in p.shape)}]"


def describe(path, name: str = "net") -> tuple[str, bool]:
    """The report, and whether dslc can import every op."""
    m = OnnxModel.load(path)
    pr = m.proto
    lines = [f"{path}: opset {m.opset}" + (f", made by {pr.producer_name} {pr.producer_version}".rstrip()
                                          if pr.producer_name else "")]
    if not OPSETS[0] <= m.opset <= OPSETS[1]:
        lines.append(f"  note: dslc's converters follow opsets {OPSETS[0]}-{OPSETS[1]}")
    lines.append("  inputs:  " + (", ".join(f"{p.name}: {_type(p)}" for p in m.inputs) or "none"))
    lines.append("  outputs: " + (", ".join(f"{p.name}: {_type(p)}" for p in m.outputs) or "none"))
    rows = [(f"{name}.{sanitize(k)}", list(v.shape), f"{v.size:,}", k) for k, v in m.params.items()]
    rows += [(f"{name}.{sanitize(k)}", list(v.shape), "(state)", k) for k, v in m.states.items()]
    lines.append(f"  params (as `import \"...\" as {name}`):")
    w = max([len(r[0]) for r in rows] + [4])
    for path_, shape, count, orig in rows:
        shown = str(shape).replace(" ", "")
        lines.append(f"    {path_:<{w}}  {shown:<14} {count:>10}" + (f"   ONNX `{orig}`" if sanitize(orig) != orig else ""))
    lines.append(f"  total params: {m.param_count():,}" + (f"; {len(m.statics)} constant initializers" if m.statics else ""))
    ops = Counter((n.domain + ":" if n.domain not in ("", "ai.onnx") else "") + n.op_type for n in pr.graph.node)
    lines.append("  ops: " + ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(ops.items())))
    bad = m.unsupported()
    if bad:
        names = Counter(o for o, _ in bad)
        lines.append("  NOT importable: no converter for " + ", ".join(
            f"{o} ({', '.join(n or '?' for op_, n in bad if op_ == o)[:60]})" for o in sorted(names)))
    else:
        lines.append("  every op is supported: `import` can use this model")
    return "\n".join(lines), not bad
