"""The standard layers' reference, generated from their `.dl` sources in dslc/stdlib/:
each layer's signature, its doc comment, and its params and state. `dslc check
--layers` prints it as text; docs/layers.md is the same reference in Markdown
(a test keeps the file equal to what this module writes)."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from .syntax import ast as A
from .syntax.fmt import arg_text, expr, stmt_text
from .syntax.parser import parse


@dataclass
class LayerDoc:
    name: str
    file: str                   # the stdlib file it is defined in: dense.dl
    signature: str              # layer dense(x: [*, n], m: int, act = identity)
    doc: str                    # its doc comment, without the leading `#`s
    decls: list[str]            # param W: [n, m] ~ glorot_uniform, state ...
    parts: list[str]            # the standard layers it calls, by instance name: q = dense(x, d)


def _calls(layer: A.Layer, names: set[str]) -> list[str]:
    """`name = layer(...)` statements (and `return layer(...) as name`): the sub-instances
    whose params the layer owns under `name.`."""
    out = []
    for s in layer.body:
        e = s.expr if isinstance(s, A.Assign) else (s.exprs[0] if isinstance(s, A.Return) and len(s.exprs) == 1 else None)
        if isinstance(e, A.Call) and isinstance(e.func, A.Name) and e.func.id in names:
            if isinstance(s, A.Assign):
                out.append(f"{', '.join(s.targets)} = {expr(e)}")
            elif e.as_name:
                out.append(f"return {expr(e)}")
    return out


def stdlib_docs() -> list[LayerDoc]:
    """Every standard layer, file by file (sorted), in source order."""
    files = sorted(p for p in resources.files("dslc.stdlib").iterdir() if p.name.endswith(".dl"))
    layers = [(p.name, it) for p in files
              for it in parse(p.read_text(encoding="utf-8"), f"<stdlib:{p.name}>").items if isinstance(it, A.Layer)]
    # the layers that own params (their own, or their parts'); embedding(ids, table) inside is the built-in
    names = {it.name for _, it in layers if any(isinstance(s, (A.ParamDecl, A.StateDecl)) for s in it.body)}
    names.discard("embedding")
    while True:
        more = {it.name for _, it in layers if _calls(it, names)} - names
        if not more:
            break
        names |= more
    return [LayerDoc(it.name, file, f"{it.name}({', '.join(arg_text(a) for a in it.args)})", it.doc or "",
                     [stmt_text(s) for s in it.body if isinstance(s, (A.ParamDecl, A.StateDecl))],
                     _calls(it, names))
            for file, it in layers]


def layers_text(names: list[str] | None = None) -> str:
    """The reference as plain text (`dslc check --layers [NAME ...]`)."""
    docs = [d for d in stdlib_docs() if not names or d.name in names]
    lines = []
    for d in docs:
        lines.append(f"{d.signature}    [{d.file}]")
        lines += ["    " + ln for ln in d.doc.splitlines()]
        lines += ["      " + ln for ln in d.decls]
        lines += ["      uses " + ln for ln in d.parts]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


HEADER = """\
# Standard layers

<!-- Generated from dslc/stdlib/*.dl by dslc.layerdoc (tests/test_layerdoc.py checks
     that this file is up to date); `dslc check --layers` prints the same. -->

The standard layers are written in `.dl` and ship with the compiler
(`dslc/stdlib/`). A call site owns the layer's params, named by its binding:
`h1 = dense(x, 128)` owns `h1.W` and `h1.b` (LANGUAGE.md §4). Tensor arguments
with a shape pattern bind its dims (`x: [*, n]` binds `n` to the last axis);
`int`/`float` arguments are numbers; `act = relu` takes a function.

**`embedding`, the layer and the built-in.** The layer `embedding(ids, vocab, d)`
owns its table (`param table: [vocab, d] ~ normal(1.0)`); the built-in
`embedding(ids, table)` looks rows up in a table you declare yourself (a
different initializer, or a table shared with an output layer). A call whose
second argument is a tensor is the built-in; one with the sizes is the layer.
"""


def layers_markdown() -> str:
    """docs/layers.md: the header, then one section per stdlib file."""
    out, current = [HEADER], None
    for d in stdlib_docs():
        if d.file != current:
            current = d.file
            out.append(f"\n## `{d.file}`\n")
        out.append(f"\n### `{d.name}`\n\n```\nlayer {d.signature}\n```\n")
        if d.doc:
            out.append("\n" + d.doc + "\n")
        if d.decls or d.parts:
            out.append("\n" + "\n".join([f"- `{s}`" for s in d.decls] + [f"- uses `{s}`" for s in d.parts]) + "\n")
    return "".join(out)


def main() -> None:     # python -m dslc.layerdoc > docs/layers.md
    print(layers_markdown(), end="")


if __name__ == "__main__":
    main()
