"""Statements of model and layer bodies: one handler per statement kind
(LANGUAGE.md §5), looked up in `HANDLERS`."""
from __future__ import annotations

from ..errors import SpecError, suggest
from ..init import INITIALIZERS
from ..ir.dims import show_shape
from ..ir.node import Node, at, const
from ..ir.types import is_float
from ..ir.model import Loss
from ..ops.leaves import input_, param as param_leaf, state as state_leaf
from ..syntax import ast as A
from .dims import declared_type
from .exprs import ev
from .values import POISON, describe

MODEL_ONLY = (A.Input, A.Output, A.Loss, A.Metric)


def run_stmt(s, scope) -> None:
    if scope.kind == "layer" and isinstance(s, MODEL_ONLY):
        raise SpecError(f"`{_keyword(s)}` is only allowed in a model, not in a layer", s.loc)
    if scope.kind == "model" and isinstance(s, A.Return):
        raise SpecError("`return` is only allowed in a layer; a model names its results with "
                        "`output`, `loss` and `metric`", s.loc)
    HANDLERS[type(s)](s, scope)


def run_layer_body(L: A.Layer, scope):
    for s in L.body:
        if scope.result is not None:
            raise SpecError("statements after `return` are never run", s.loc)
        run_stmt(s, scope)
    if scope.result is None:
        raise SpecError(f"layer `{L.name}` has no `return`", L.loc)
    return scope.result[0] if len(scope.result) == 1 else tuple(scope.result)


def _keyword(s) -> str:
    return {A.Input: "input", A.Output: "output", A.Loss: "loss", A.Metric: "metric"}[type(s)]


# -- leaves ----------------------------------------------------------------------

def _input(s: A.Input, scope):
    ty = declared_type(s.type, scope, bind_new=True)
    with scope.at(s.loc):
        node = input_(s.name, ty)
    scope.ctx.inputs[s.name] = node
    scope.bind(s.name, node, s.loc)


def init_spec(e, scope) -> tuple:
    """`glorot_uniform`, `normal(0.1)`, `constant(c)` -> ("normal", 0.1)."""
    if isinstance(e, A.Name):
        kind, args, loc = e.id, [], e.loc
    elif isinstance(e, A.Call) and isinstance(e.func, A.Name) and not e.kwargs and e.as_name is None:
        kind, args, loc = e.func.id, e.args, e.func.loc
    else:
        raise SpecError(f"an initializer is one of {', '.join(INITIALIZERS)}, optionally with "
                        f"arguments like `normal(0.1)`", e.loc)
    if kind not in INITIALIZERS:
        raise SpecError(f"unknown initializer `{kind}`" + suggest(kind, INITIALIZERS), loc)
    lo, hi = INITIALIZERS[kind]
    if not lo <= len(args) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise SpecError(f"initializer `{kind}` takes {want} argument(s), found {len(args)}", e.loc)
    vals = []
    for a in args:
        v = ev(a, scope)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SpecError(f"an initializer's argument must be a number, found {describe(v)}", a.loc)
        vals.append(float(v))
    if kind == "normal" and vals and vals[0] < 0:
        raise SpecError(f"normal's standard deviation must not be negative, found {vals[0]}", args[0].loc)
    if kind == "uniform" and len(vals) == 1:
        raise SpecError(f"uniform(a, b) needs both bounds, found one: write uniform({-abs(vals[0])}, "
                        f"{abs(vals[0])}) for U(-{abs(vals[0])}, {abs(vals[0])})", e.loc)
    if kind == "uniform" and vals and not vals[0] < vals[1]:
        raise SpecError(f"uniform(a, b) needs a < b, found a = {vals[0]}, b = {vals[1]}", args[0].loc)
    return (kind, *vals)


def _leaf(s, scope, table: dict, make, kind: str):
    ty = declared_type(s.type, scope, bind_new=False)
    if not all(isinstance(d, int) for d in ty.shape):
        raise SpecError(f"{kind} `{scope.path(s.name)}` has the symbolic shape {show_shape(ty.shape)}: "
                        f"a {kind}'s sizes must be known when compiling (ints or consts, not dims "
                        f"like B that only the data fixes)", s.loc)
    init = init_spec(s.init, scope)
    path = scope.path(s.name)
    if path in table:                     # a shared instance: the same leaf again
        node = table[path]
        if node.type != ty:
            raise SpecError(f"{kind} `{path}` of a shared instance is {ty} here but {node.type} "
                            f"where it was first made", s.loc)
    else:
        with scope.at(s.loc):
            node = make(path, ty, init)
        table[path] = node
    scope.bind(s.name, node, s.loc, kind=kind)
    return path


def _param(s: A.ParamDecl, scope):
    _poison_on_error(s, scope, lambda: _leaf(s, scope, scope.ctx.params, param_leaf, "param"))


def _state(s: A.StateDecl, scope):
    scope.states[s.name] = _poison_on_error(s, scope, lambda: _leaf(s, scope, scope.ctx.states, state_leaf, "state"))


def _poison_on_error(s, scope, declare):
    """A declaration that fails still binds its name (to POISON): one error, not one per use."""
    try:
        return declare()
    except Exception:
        if not scope.has_local(s.name):
            scope.bind(s.name, POISON, s.loc)
        raise


# -- bindings and results --------------------------------------------------------

def _assign(s: A.Assign, scope):
    try:
        v = ev(s.expr, scope, name=s.targets[0])
    except Exception:
        for t, loc in zip(s.targets, s.target_locs or [s.loc] * len(s.targets)):
            if not scope.has_local(t):
                scope.bind(t, POISON, loc)
        raise
    locs = s.target_locs or [s.loc] * len(s.targets)
    if len(s.targets) > 1:
        n = len(v) if isinstance(v, tuple) else 1
        if n != len(s.targets):
            raise SpecError(f"cannot unpack {n} value{'s' if n != 1 else ''} into {len(s.targets)} names",
                            s.loc)
        for t, x, loc in zip(s.targets, v, locs):
            scope.bind(t, x, loc)
        return
    if isinstance(v, tuple):
        raise SpecError(f"the expression gives {len(v)} values; bind them all: "
                        f"`{', '.join(f'v{i}' for i in range(len(v)))} = ...`", s.loc)
    scope.bind(s.targets[0], v, locs[0])


def _tensor(v, e, what: str, scope=None) -> Node:
    if isinstance(v, tuple):
        raise SpecError(f"{what} must be one tensor, found {len(v)} values", e.loc)
    if isinstance(v, bool) or isinstance(v, (int, float)):
        with at(scope.site or e.loc if scope else e.loc):
            return const(v, "bool" if isinstance(v, bool) else "f32")
    if not isinstance(v, Node):
        raise SpecError(f"{what} must be a tensor, found {describe(v)}", e.loc)
    return v


def _unique_result(name: str, scope, loc):
    m = scope.result_names
    if name in m:
        raise SpecError(f"`{name}` is already a result of this model (line {m[name].line})", loc)
    m[name] = loc


def _output(s: A.Output, scope):
    if s.expr is None:
        node = _tensor(scope.lookup(s.name, s.loc), s, f"output `{s.name}`")
    else:
        try:
            node = _tensor(ev(s.expr, scope, name=s.name), s.expr, f"output `{s.name}`")
        except Exception:
            if not scope.has_local(s.name):        # later uses are skipped, not reported again
                scope.bind(s.name, POISON, s.loc)
            raise
    _unique_result(s.name, scope, s.loc)
    scope.outputs[s.name] = node
    if s.expr is not None:
        scope.bind(s.name, node, s.loc)


def _loss(s: A.Loss, scope):
    name = s.name or "loss"
    node = _tensor(ev(s.expr, scope), s.expr, "a loss")
    if node.shape != ():
        raise SpecError(f"loss must be a scalar, found {node.type}; reduce it first (e.g. with mean)",
                        s.expr.loc)
    if not is_float(node.dtype):
        raise SpecError(f"loss must be a float, found {node.type}", s.expr.loc)
    wrt = None
    if s.wrt:
        ctx = scope.ctx
        groups = set(ctx.instances) | set(ctx.params)
        for g, loc in zip(s.wrt, s.wrt_locs or [s.loc] * len(s.wrt)):
            if not (g in ctx.instances or any(p == g or p.startswith(g + ".") for p in ctx.params)):
                raise SpecError(f"`wrt {g}`: no instance or param named `{g}`" + suggest(g, groups), loc)
        wrt = list(s.wrt)
    _unique_result(name, scope, s.loc)
    scope.losses[name] = Loss(name, node, wrt, s.loc)


def _metric(s: A.Metric, scope):
    node = _tensor(ev(s.expr, scope), s.expr, f"metric `{s.name}`")
    _unique_result(s.name, scope, s.loc)
    scope.metrics[s.name] = node


def _return(s: A.Return, scope):
    vals = []
    for e in s.exprs:
        v = ev(e, scope)
        if isinstance(v, tuple):
            raise SpecError("a returned expression must be one value", e.loc)
        vals.append(v)
    scope.result = vals


def _update(s, scope):
    """update NAME = expr: the state's new value in training mode."""
    if s.name not in scope.states:
        raise SpecError(f"`update {s.name}`: `{s.name}` is not a state declared here"
                        + suggest(s.name, scope.states), s.loc)
    path = scope.states[s.name]
    old = scope.ctx.states[path]
    node = _tensor(ev(s.expr, scope), s.expr, f"the new value of `{s.name}`")
    if node.type != old.type:
        raise SpecError(f"the new value of state `{s.name}` is {node.type}, but the state is {old.type}",
                        s.expr.loc)
    scope.ctx.state_updates[path] = node     # a shared instance: the last call's update


HANDLERS = {
    A.Input: _input, A.ParamDecl: _param, A.StateDecl: _state, A.Assign: _assign,
    A.Output: _output, A.Loss: _loss, A.Metric: _metric, A.Return: _return,
}
if hasattr(A, "Update"):
    HANDLERS[A.Update] = _update
