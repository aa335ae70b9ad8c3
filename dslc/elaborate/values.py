"""The values an expression can have while a spec is elaborated.

Tensors are IR `Node`s; numbers are Python ints/floats/bools; dims are ints or
`Sym`s; strings, lists and dicts are Python ones. Functions are one of the
classes below. `POISON` marks a binding whose statement failed, so that later
uses of it are skipped instead of reported again.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Loc
from ..ir.dims import Sym, show
from ..ir.node import Node
from ..syntax import ast as A


@dataclass(eq=False)
class LayerFn:
    """A layer (user or standard), with the global scope its body sees."""
    ast: A.Layer
    glob: object            # scope.Globals
    stdlib: bool = False

    @property
    def name(self) -> str:
        return self.ast.name


@dataclass(frozen=True)
class BuiltinFn:
    """A built-in function of LANGUAGE.md §7 (dslc.ops.builtins) or a special form."""
    name: str


@dataclass(eq=False)
class Partial:
    """`f(a, k = v)` in a function position: f(·, a, k = v), leading tensors left open."""
    fn: object
    args: list
    kwargs: dict
    as_name: str | None = None
    loc: Loc | None = None


@dataclass(eq=False)
class RepeatFn:
    """`repeat(k, f)`: f applied k times, each application its own instance."""
    k: int
    fn: object
    loc: Loc | None = None


@dataclass(eq=False)
class ImportFn:
    """`import "model.onnx" as NAME`: an ONNX model (dslc.onnx_import.OnnxModel) called
    like a layer (imports.py)."""
    name: str
    model: object
    loc: Loc | None = None
    input_names: list = field(default_factory=list)
    output_names: list = field(default_factory=list)


FUNCTIONS = (LayerFn, BuiltinFn, Partial, RepeatFn, ImportFn)


class _Poison:
    def __repr__(self):
        return "<poison>"


POISON = _Poison()


class Skip(Exception):
    """A statement uses a binding whose own statement failed: already reported."""


def describe(v) -> str:
    """How an error message names a value's kind."""
    if isinstance(v, Node):
        return f"a tensor {v.type}"
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, (int, float)):
        return f"the number {v}"
    if isinstance(v, Sym):
        return f"the dim {show(v)}"
    if isinstance(v, str):
        return f'the string "{v}"'
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, dict):
        return "a dict"
    if isinstance(v, LayerFn):
        return f"the layer `{v.name}`"
    if isinstance(v, BuiltinFn):
        return f"the function `{v.name}`"
    if isinstance(v, (Partial, RepeatFn)):
        return "a function"
    if isinstance(v, ImportFn):
        return f"the imported model `{v.name}`"
    return type(v).__name__
