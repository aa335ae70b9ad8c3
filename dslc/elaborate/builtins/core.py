"""The machinery behind the built-in functions (LANGUAGE.md §7): the table,
signatures, argument checking, and the helpers that turn Python numbers into
tensors with the right dtype.

A builtin is a Python function over IR nodes (tensor arguments) and Python
values (static arguments). Its signature is declared beside it as a short
string, `"x:tensor, axis:axes=None, keepdims:bool=False"`, so the elaborator
knows which arguments to evaluate as tensors and which must be static.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import SpecError, suggest
from ...ir.dims import Sym
from ...ir.node import Node, ShapeError, apply as P, const, current_loc
from ...ir.dims import prod  # noqa: F401  (re-exported to the built-ins)
from ...ir.registry import need_float, norm_axes, norm_axis  # noqa: F401  (likewise)
from ...ir.types import DTYPES
from ...optim import REQUIRED


# kinds of arguments: tensors (a Node or a Python number), or static values
KINDS = {
    "tensor": "a tensor or a number",
    "tensors": "a list of tensors",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "dtype": "a dtype name (f32, f64, i64, bool)",
    "shape": "a shape (a list of dims)",
    "axes": "an axis or a list of axes",
    "ints": "an integer or a list of integers",
    "padding": '"same", "valid", an integer or a list of integers',
    "items": "a list of index entries",
}
TENSOR_KINDS = ("tensor", "tensors")


@dataclass(frozen=True)
class Arg:
    """One parameter of a builtin: its name, kind (see KINDS) and default."""
    name: str
    kind: str
    default: object = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Builtin:
    """A built-in function: `fn(*args, **kwargs)` over nodes and static values.

    `args` lists every parameter in positional order; any of them may also be
    passed by keyword. Parameters with a default are optional."""
    name: str
    fn: Callable
    args: tuple
    doc: str = ""

    @property
    def positional(self) -> tuple:
        """Parameter names, in positional order."""
        return tuple(a.name for a in self.args)

    @property
    def keywords(self) -> dict:
        """Optional parameters and their defaults."""
        return {a.name: a.default for a in self.args if not a.required}

    @property
    def tensor_args(self) -> tuple:
        """Names of parameters that take tensors (evaluated as IR)."""
        return tuple(a.name for a in self.args if a.kind in TENSOR_KINDS)

    def arg(self, name: str) -> Arg:
        return next(a for a in self.args if a.name == name)

    def signature(self) -> str:
        parts = [a.name if a.required else f"{a.name} = {a.default!r}" for a in self.args]
        return f"{self.name}({', '.join(parts)})"

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


BUILTINS: dict[str, Builtin] = {}


def _parse_sig(sig: str) -> tuple:
    out = []
    for part in filter(None, (p.strip() for p in sig.split(","))):
        head, _, default = part.partition("=")
        name, _, kind = head.strip().partition(":")
        kind = kind.strip() or "tensor"
        assert kind in KINDS, (sig, kind)
        out.append(Arg(name.strip(), kind, ast.literal_eval(default.strip()) if default else REQUIRED))
    return tuple(out)


def builtin(sig: str, name: str | None = None):
    """Register the decorated function as a builtin with signature `sig`.

    The registered function reports shape complaints (ShapeError) as a
    SpecError at the current spec location, like `apply` does."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except ShapeError as e:
                raise SpecError(str(e), current_loc()) from None
        key = name or fn.__name__.rstrip("_")
        assert key not in BUILTINS, key
        BUILTINS[key] = Builtin(key, wrapped, _parse_sig(sig), (fn.__doc__ or "").strip())
        return wrapped
    return deco


# -- calling by name (the elaborator's entry point) --------------------------

def call_builtin(name: str, args: list, kwargs: dict):
    """Call builtin `name`, checking arity, keyword names and static kinds.

    Returns a Node (or a tuple of Nodes); misuse is a SpecError at the
    current location."""
    loc = current_loc()
    if name not in BUILTINS:
        raise SpecError(f"unknown function `{name}`" + suggest(name, BUILTINS), loc)
    b = BUILTINS[name]
    if len(args) > len(b.args):
        raise SpecError(f"{name} takes at most {len(b.args)} arguments ({', '.join(b.positional)}), "
                        f"found {len(args)}", loc)
    bound = dict(zip(b.positional, args))
    for k, v in kwargs.items():
        if k not in b.positional:
            raise SpecError(f"{name} has no argument `{k}`" + suggest(k, b.positional)
                            + f"; it is {b.signature()}", loc)
        if k in bound:
            raise SpecError(f"{name}: argument `{k}` given twice (by position and by name)", loc)
        bound[k] = v
    for a in b.args:
        if a.name not in bound:
            if a.required:
                raise SpecError(f"{name} needs argument `{a.name}`; it is {b.signature()}", loc)
            continue
        check_kind(name, a, bound[a.name])
    return b.fn(**bound)


def _is_dim(v) -> bool:
    return (isinstance(v, (int, np.integer)) and not isinstance(v, bool)) or isinstance(v, Sym)


def check_kind(fname: str, a: Arg, v) -> None:
    """A SpecError unless `v` fits kind `a.kind` (None always fits an optional arg)."""
    if v is None and not a.required and a.default is None:
        return
    ok = {
        "tensor": lambda: isinstance(v, Node) or is_number(v),
        "tensors": lambda: isinstance(v, (list, tuple)) and all(isinstance(x, Node) for x in v),
        "int": lambda: _is_dim(v),
        "float": lambda: is_number(v),
        "bool": lambda: isinstance(v, (bool, np.bool_)),
        "str": lambda: isinstance(v, str),
        "dtype": lambda: v in DTYPES,
        "shape": lambda: isinstance(v, (list, tuple)) and all(_is_dim(d) for d in v),
        "axes": lambda: _is_dim(v) or (isinstance(v, (list, tuple)) and all(_is_dim(d) for d in v)),
        "ints": lambda: _is_dim(v) or (isinstance(v, (list, tuple)) and all(_is_dim(d) for d in v)),
        "padding": lambda: isinstance(v, str) or _is_dim(v)
        or (isinstance(v, (list, tuple)) and all(_is_dim(d) for d in v)),
        "items": lambda: isinstance(v, (list, tuple)),
    }[a.kind]()
    if not ok:
        found = f"a tensor {v.type}" if isinstance(v, Node) else repr(v)
        raise SpecError(f"argument `{a.name}` of {fname} must be {KINDS[a.kind]}, found {found}", current_loc())


# -- numbers and tensors -------------------------------------------------------

def is_number(v) -> bool:
    return isinstance(v, (int, float, bool, np.number, np.bool_))


def lift_to(v, dtype: str, other: Node | None = None) -> Node:
    """A Python number as a scalar const of `dtype` (nodes pass through).

    Int literals join float tensors (`2 * x` is f32); a float literal cannot
    silently turn an integer tensor into a float one."""
    if isinstance(v, Node):
        return v
    if dtype == "bool" and not isinstance(v, (bool, np.bool_)):
        raise ShapeError(f"cannot combine {other.type if other is not None else 'a bool tensor'} "
                         f"with the number {v}")
    if dtype == "i64" and not isinstance(v, (int, np.integer)):
        what = other.type if other is not None else "an i64 tensor"
        raise ShapeError(f"cannot combine {what} with the float {v}: cast the integer tensor "
                         f'first (cast(x, "f32"))')
    if dtype in ("f32", "f64") and not isinstance(v, (bool, np.bool_)):
        big = float(np.finfo(np.float32 if dtype == "f32" else np.float64).max)
        if np.isfinite(float(v)) and abs(float(v)) > big:    # would silently become inf
            raise ShapeError(f"the number {v} does not fit {dtype} (its largest value is about {big:.3g})"
                             + ("; use f64 tensors for it" if dtype == "f32" else ""))
    return const(v, dtype)


def tensor(v, dtype: str = "f32") -> Node:
    """A node from a node or a number (numbers become `dtype` scalars)."""
    return lift_to(v, dtype)


def unify(*vs, what: str = "combine") -> list:
    """Nodes of one dtype: numbers take the dtype of the first tensor among
    vs (f32 when there is none); tensors of different dtypes are an error."""
    nodes = [v for v in vs if isinstance(v, Node)]
    for n in nodes[1:]:
        if n.dtype != nodes[0].dtype:
            raise ShapeError(f"cannot {what} {nodes[0].type} and {n.type}: dtypes differ "
                             f"(use cast to convert one)")
    dtype = nodes[0].dtype if nodes else "f32"
    return [lift_to(v, dtype, nodes[0] if nodes else None) for v in vs]


def per_axis(v, n: int, what: str) -> tuple:
    """An int for every one of n axes, or a list of n ints."""
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ShapeError(f"{what} needs {n} values (one per spatial axis), found {list(v)}")
        return tuple(int(x) for x in v)
    return (int(v),) * n


def known(d) -> bool:
    return isinstance(d, int)


def reduce_all(x: Node, how: str, fname: str) -> Node:
    """A loss's `reduce =`: mean or sum over all elements, or none."""
    if how == "mean":
        return P("mean", x, axes=tuple(range(x.rank)), keepdims=False)
    if how == "sum":
        return P("sum", x, axes=tuple(range(x.rank)), keepdims=False)
    if how == "none":
        return x
    raise ShapeError(f'{fname}: reduce must be "mean", "sum" or "none", found "{how}"'
                     + suggest(str(how), ("mean", "sum", "none")))


__all__ = ["Arg", "BUILTINS", "Builtin", "builtin", "call_builtin", "is_number", "lift_to", "tensor",
           "unify", "need_float", "norm_axis", "norm_axes", "per_axis", "known", "prod", "reduce_all"]
