"""`import "model.onnx" as net` (LANGUAGE.md §4): an ONNX model used as a layer.

`net(x)` builds the imported graph over the call's tensors (inputs by position,
or by their ONNX names as keywords). It returns the one output, or all of them
as a tuple (`a, b = net(x)`) that also answers to output names (`net(x).logits`).
Every call is the instance `net`: its params are `net.<initializer>` (sanitized,
dslc.onnx_import.sanitize) and are shared by all calls, like `as net`.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import SpecError, suggest
from ..ir import dims as D
from ..ir.node import Node, const
from ..onnx_import import OnnxModel, leaf_maker, sanitize
from ..syntax import ast as A
from .values import ImportFn, describe


class Outputs(tuple):
    """An imported model's outputs: a tuple that also has them by name (`net(x).logits`)."""

    def __new__(cls, values, names, fn_name):
        t = super().__new__(cls, values)
        t.names, t.fn_name = list(names), fn_name
        return t

    def get(self, name: str, loc):
        if name in self.names:
            return self[self.names.index(name)]
        raise SpecError(f"`{self.fn_name}` has no output `{name}`" + suggest(name, self.names)
                        + f"; its outputs are {', '.join(self.names)}", loc)


def define(item: A.Import, glob, filename: str) -> None:
    """Read the ONNX file (relative to the spec) and bind its name as a layer-like function."""
    base = Path(filename).parent if filename and not filename.startswith("<") else Path(".")
    path = base / item.path
    if not path.exists():
        raise SpecError(f'cannot import "{item.path}": no such file ({path})', item.loc)
    m = OnnxModel.load(path, item.loc)
    bad = m.unsupported()
    if bad:
        ops = sorted({o for o, _ in bad})
        first = bad[0]
        raise SpecError(f'cannot import "{item.path}": ONNX op{"s" if len(ops) > 1 else ""} '
                        f'{", ".join(ops)} (opset {m.opset}; first at node `{first[1] or "?"}`) '
                        f"{'have' if len(ops) > 1 else 'has'} no converter in dslc", item.loc)
    for p in m.inputs:
        if p.dtype is None:
            raise SpecError(f'cannot import "{item.path}": its input `{p.name}` is {p.onnx_type}, '
                            "which dslc cannot feed", item.loc)
    fn = ImportFn(item.name, m, item.loc, [sanitize(p.name).replace(".", "_") for p in m.inputs],
                  [sanitize(p.name).replace(".", "_") for p in m.outputs])
    glob.layers[item.name] = fn


def call(fn: ImportFn, args: list, kwargs: dict, scope, loc):
    """`net(x, ...)`: the imported graph over the given tensors."""
    m = fn.model
    names = fn.input_names
    if len(args) > len(names):
        raise SpecError(f"`{fn.name}` takes {len(names)} input{'s' if len(names) != 1 else ''} "
                        f"({', '.join(names)}), found {len(args)}", loc)
    bound = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise SpecError(f"`{fn.name}` has no input `{k}`" + suggest(k, names)
                            + f"; its inputs are {', '.join(names)}", loc)
        if k in bound:
            raise SpecError(f"input `{k}` of `{fn.name}` is given twice", loc)
        bound[k] = v
    inputs = {}
    for port, nm in zip(m.inputs, names):
        if nm not in bound:
            raise SpecError(f"`{fn.name}` needs input `{nm}`: {_port_text(port)}", loc)
        v = bound[nm]
        if not isinstance(v, Node):
            raise SpecError(f"input `{nm}` of `{fn.name}` must be a tensor {_port_text(port)}, found "
                            f"{describe(v)}", loc)
        _check(fn, nm, port, v, loc)
        inputs[port.name] = v
    path = scope.path(fn.name)
    ctx = scope.ctx
    owner = ctx.instances.get(path)
    if owner is not None and owner != f"import {fn.name}":
        raise SpecError(f"instance `{path}` is already a `{owner}`; it cannot also be the import `{fn.name}`", loc)
    ctx.instances[path] = f"import {fn.name}"
    leaf = leaf_maker(path, ctx.params, ctx.states, str(m.path))
    with scope.at(loc):
        outs, updates = m.build(inputs, leaf, scope.site or loc)
    ctx.state_updates.update(updates)
    vals = []
    for k, v in outs.items():
        if not isinstance(v, Node):
            v = const(v, {"f": "f32", "i": "i64", "b": "bool"}.get(v.dtype.kind, "f32"))
        vals.append(v)
    if len(vals) == 1:
        return vals[0]
    return Outputs(vals, fn.output_names, fn.name)


def _port_text(p) -> str:
    shape = ", ".join("?" if d is None else D.show(d) for d in (p.shape or ()))
    return f"{p.dtype}[{shape}]"


def _check(fn, nm, port, v: Node, loc):
    """dtype and rank as the ONNX graph declares; its fixed dims must agree (symbolic ones are the caller's)."""
    if v.dtype != port.dtype:
        raise SpecError(f"input `{nm}` of `{fn.name}` must be {_port_text(port)}, found {v.type}", loc)
    if port.shape is None:
        return
    if v.rank != len(port.shape):
        raise SpecError(f"input `{nm}` of `{fn.name}` must be {_port_text(port)} (rank {len(port.shape)}), "
                        f"found {v.type}", loc)
    for a, (want, got) in enumerate(zip(port.shape, v.shape)):
        if isinstance(want, int) and want != got:
            raise SpecError(f"input `{nm}` of `{fn.name}` must be {_port_text(port)}, found {v.type}: "
                            f"dim {a} is {D.show(got)}, not {want}", loc)
