"""Scopes: what a name means at a point of the spec.

Lookup order: the local bindings of the scope (args, params, bindings, dims),
then the globals (consts, layers, built-in functions). Names are bound once per
scope. A `ModelCtx` collects what one model's elaboration creates: its inputs,
params and state by path, and the instance paths that exist (for `wrt`,
`lr_scale` and weight sharing)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import Loc, SpecError, suggest
from ..ir.node import at
from .builtins import BUILTINS
from .values import POISON, BuiltinFn, Skip

# functions handled by the elaborator itself (they take functions or switch modes)
SPECIAL_FORMS = ("scan", "repeat", "training")


@dataclass
class Binding:
    value: object
    loc: Loc | None
    kind: str = "value"     # value | dim | param | state | arg


@dataclass(frozen=True)
class Calls:
    """The call machinery of elaborate/calls.py, handed to expressions through
    Globals so that the modules form one line, exprs <- stmts <- layers <- calls:
    an expression calls a layer, whose statements evaluate expressions."""
    eval_call: Callable        # (call, scope, name) -> value
    partial: Callable          # (call, scope) -> function value
    apply_fn: Callable         # (fn, leading args, scope, name, loc) -> value


@dataclass
class Globals:
    """Item-level names: consts, layers (user layers shadow the standard ones), builtins."""
    calls: Calls                                   # how calls are evaluated
    consts: dict = field(default_factory=dict)     # name -> Binding
    layers: dict = field(default_factory=dict)     # name -> LayerFn
    builtins_first: bool = False                   # the standard library's own view

    def lookup(self, name: str):
        if name in self.consts:
            return self.consts[name].value
        if self.builtins_first and (name in BUILTINS or name in SPECIAL_FORMS):
            return BuiltinFn(name)
        if name in self.layers:
            return self.layers[name]
        if name in BUILTINS or name in SPECIAL_FORMS:
            return BuiltinFn(name)
        raise KeyError(name)

    def known(self):
        return [*self.consts, *self.layers, *BUILTINS, *SPECIAL_FORMS]


@dataclass
class ModelCtx:
    """Everything one model's elaboration creates, by path."""
    name: str
    inputs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    states: dict = field(default_factory=dict)
    state_updates: dict = field(default_factory=dict)
    instances: dict = field(default_factory=dict)   # path -> layer name


class Scope:
    """One model body or one layer instance: local bindings and instance numbering."""

    def __init__(self, glob: Globals, ctx: ModelCtx, prefix: str = "", kind: str = "model",
                 stack: tuple = (), site=None):
        self.glob, self.ctx, self.prefix, self.kind, self.stack = glob, ctx, prefix, kind, stack
        # inside a standard layer: the user's call site, which every node made here records
        self.site = site
        self.names: dict[str, Binding] = {}
        self.counters: dict[str, int] = {}
        self.states: dict[str, str] = {}      # local state name -> path
        self.result = None                    # a layer's returned values

    def bind(self, name: str, value, loc: Loc | None, kind: str = "value") -> None:
        old = self.names.get(name)
        if old is None and name in self.glob.consts and self.kind == "model":
            old = self.glob.consts[name]
        if old is not None:
            where = f" at line {old.loc.line}" if old.loc is not None else ""
            raise SpecError(f"`{name}` is already bound{where}; a name is bound once per scope "
                            f"(choose a new name)", loc)
        self.names[name] = Binding(value, loc, kind)

    def lookup(self, name: str, loc: Loc | None):
        b = self.names.get(name)
        if b is not None:
            if b.value is POISON:
                raise Skip(name)
            return b.value
        try:
            return self.glob.lookup(name)
        except KeyError:
            pass
        raise SpecError(f"unknown name `{name}`" + suggest(name, [*self.names, *self.glob.known()]), loc)

    def has_local(self, name: str) -> bool:
        return name in self.names

    def at(self, loc):
        """`with scope.at(loc):` makes nodes at loc (at the call site inside a standard layer)."""
        return at(self.site or loc)

    def path(self, name: str) -> str:
        return self.prefix + name

    def fresh(self, base: str) -> str:
        """The next numbered instance name for calls of `base` in this scope: base_0, base_1..."""
        k = self.counters.get(base, 0)
        self.counters[base] = k + 1
        return f"{base}_{k}"
