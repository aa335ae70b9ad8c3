"""Layer instances: binding a call's arguments, checking them against the
signature, and running the body in a fresh scope whose param paths start with
the instance path (`h1.W`, `enc.h1.W`)."""
from __future__ import annotations

import dataclasses

from ..errors import SpecError, suggest
from ..ir.dims import Sym
from ..ir.node import Node, const
from ..syntax import ast as A
from .dims import is_dim, match
from .exprs import ev, ev_fn
from .scope import Scope
from .stmts import run_layer_body
from .values import FUNCTIONS, describe

MAX_DEPTH = 50


def instantiate(fn, args: list, kwargs: dict, caller: Scope, path: str, loc, shared: bool):
    """Call layer `fn` as instance `path`; returns one value or a tuple of them."""
    L: A.Layer = fn.ast
    if L.name in caller.stack or len(caller.stack) >= MAX_DEPTH:
        raise SpecError(f"layer `{L.name}` calls itself; layers cannot be recursive", loc)
    ctx = caller.ctx
    owner = ctx.instances.get(path)
    if owner is not None and owner != L.name:
        raise SpecError(f"instance `{path}` is already a `{owner}`; it cannot also be a `{L.name}`", loc)
    ctx.instances[path] = L.name
    bound = _bind_args(L, args, kwargs, loc)
    site = caller.site or (loc if fn.stdlib else None)
    scope = Scope(fn.glob, ctx, prefix=path + ".", kind="layer", stack=caller.stack + (L.name,), site=site)
    try:
        _bind_signature(L, bound, scope, loc)
        return run_layer_body(L, scope)
    except SpecError as err:
        if fn.stdlib and err.loc is not None and err.loc.filename.startswith("<stdlib"):
            # a standard layer's error is the caller's: report it at the call
            raise SpecError(err.message, loc, notes=[f"in the standard layer `{L.name}`"]) from None
        raise


def _bind_args(L: A.Layer, args: list, kwargs: dict, loc) -> dict:
    names = [a.name for a in L.args]
    sig = f"{L.name}({', '.join(names)})"
    if len(args) > len(names):
        raise SpecError(f"`{L.name}` takes {len(names)} argument{'s' if len(names) != 1 else ''}, "
                        f"found {len(args)}; it is {sig}", loc)
    bound = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise SpecError(f"`{L.name}` has no argument `{k}`" + suggest(k, names) + f"; it is {sig}", loc)
        if k in bound:
            raise SpecError(f"argument `{k}` of `{L.name}` is given twice (by position and by name)", loc)
        bound[k] = v
    for a in L.args:
        if a.name not in bound and a.default is None:
            raise SpecError(f"`{L.name}` needs argument `{a.name}`; it is {sig}", loc)
    return bound


def _bind_signature(L: A.Layer, bound: dict, scope: Scope, loc) -> None:
    """Scalars and functions first (patterns may use them), then tensor patterns in order."""
    tensors = []
    for a in L.args:
        if a.name in bound:
            v = bound[a.name]
        elif a.kind == "fn" or isinstance(a.default, A.Call):
            v = ev_fn(a.default, scope)
        else:
            v = ev(a.default, scope)
        what = f"argument `{a.name}` of `{L.name}`"
        if a.kind == "tensor":
            if isinstance(v, bool) or isinstance(v, (int, float)):
                v = const(v, "f32")
            if not isinstance(v, Node):
                raise SpecError(f"{what} must be a tensor, found {describe(v)}", loc)
            tensors.append((a, v))
            continue
        if a.kind == "int" and (isinstance(v, bool) or not is_dim(v)):
            raise SpecError(f"{what} must be an integer, found {describe(v)}", loc)
        if a.kind == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise SpecError(f"{what} must be a number, found {describe(v)}", loc)
            v = float(v)
        if a.kind == "fn" and not isinstance(v, FUNCTIONS):
            raise SpecError(f"{what} must be a function, found {describe(v)}", loc)
        scope.bind(a.name, v, a.loc, kind="arg")
    for a, v in tensors:
        scope.bind(a.name, v, a.loc, kind="arg")
        match(a.type, v, scope, f"argument `{a.name}` of `{L.name}`", loc)
