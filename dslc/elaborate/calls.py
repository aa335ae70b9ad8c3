"""Calls: built-in functions, layers (instances), partial calls and the
special forms `repeat`, `scan` and `training`.

Instance naming (LANGUAGE.md §4): a layer call takes, in order of preference,
its `as NAME`; the name it is bound to (the outermost call of `a = ...`, or
`a` of `a, b = ...`); else `<layer>_<k>`, numbered per layer name within the
enclosing scope. `repeat` and `scan` are instances too (`repeat_0`, `scan_0`
when unbound); repeat's applications are `name.0`, `name.1`, ...
"""
from __future__ import annotations

from ..errors import SpecError
from ..ir.node import Node, ShapeError, apply, at, const
from ..ops.scan import scan
from ..syntax import ast as A
from ..syntax.fmt import expr
from .builtins import BUILTINS, call_builtin
from .builtins.core import unify
from .exprs import as_tensor, ev, ev_fn
from .imports import call as call_import
from .layers import instantiate
from .scope import Calls
from .values import BuiltinFn, ImportFn, LayerFn, Partial, RepeatFn, describe


def eval_call(e: A.Call, scope, name):
    head = e.func
    if isinstance(head, A.Name) and head.id in SPECIAL and not scope.has_local(head.id) \
            and head.id not in scope.glob.layers:
        return SPECIAL[head.id](e, scope, name)
    fn = ev(head, scope)
    if isinstance(fn, ImportFn):                      # an imported ONNX model (imports.py)
        args, kwargs = _args(fn, e, scope)
        return call_import(fn, args, kwargs, scope, e.loc)
    if not isinstance(fn, (LayerFn, BuiltinFn, Partial, RepeatFn)):
        raise SpecError(f"`{_text(head)}` is {describe(fn)}, not a function", head.loc)
    args, kwargs = _args(fn, e, scope)
    fn = overload(fn, args, kwargs)
    return call_value(fn, args, kwargs, scope, e.as_name or name, e.loc, shared=e.as_name is not None)


def overload(fn, args, kwargs):
    """A standard layer named like a built-in (`embedding`): the built-in when the
    arguments fit its signature with tensors in all its tensor positions."""
    if not (isinstance(fn, LayerFn) and fn.stdlib and fn.name in BUILTINS):
        return fn
    b = BUILTINS[fn.name]
    if len(args) > len(b.args) or any(k not in b.positional for k in kwargs):
        return fn
    bound = {**dict(zip(b.positional, args)), **kwargs}
    if all(isinstance(bound.get(a.name), Node) for a in b.args if a.kind == "tensor" and a.required):
        return BuiltinFn(fn.name)
    return fn


def partial(e: A.Call, scope):
    """`f(a, k = v)` in a function position."""
    head = e.func
    if isinstance(head, A.Name) and head.id == "repeat" and not scope.has_local("repeat"):
        return _repeat_fn(e, scope)
    fn = ev(head, scope)
    if isinstance(fn, ImportFn):                      # `x |> net()`
        args, kwargs = _args(fn, e, scope)
        return Partial(fn, args, kwargs, e.as_name, e.loc)
    if not isinstance(fn, (LayerFn, BuiltinFn)):
        raise SpecError(f"`{_text(head)}` is {describe(fn)}, not a function", head.loc)
    if isinstance(fn, BuiltinFn) and fn.name in SPECIAL:
        raise SpecError(f"`{fn.name}` cannot be used as a function value", head.loc)
    args, kwargs = _args(fn, e, scope)
    if isinstance(fn, LayerFn) and fn.stdlib and fn.name in BUILTINS and args:
        fn = overload(fn, [args[0], *args], kwargs)   # the open leading tensor counts too
    return Partial(fn, args, kwargs, e.as_name, e.loc)


def _args(fn, e: A.Call, scope):
    """Evaluate a call's arguments; a layer's function-valued args are function positions."""
    fn_args = set()
    if isinstance(fn, LayerFn):
        fn_args = {a.name for a in fn.ast.args if a.kind == "fn"}
    args = [ev(a, scope) for a in e.args]
    kwargs = {}
    for k in e.kwargs:
        kwargs[k.name] = ev_fn(k.value, scope) if k.name in fn_args and isinstance(k.value, A.Call) \
            else ev(k.value, scope)
    return args, kwargs


def apply_fn(fn, lead: list, scope, name, loc):
    """Apply a function value to leading arguments (a pipe, repeat, scan's step)."""
    if isinstance(fn, Partial):
        return call_value(fn.fn, lead + fn.args, fn.kwargs, scope, fn.as_name or name, fn.loc or loc,
                          shared=fn.as_name is not None)
    if isinstance(fn, RepeatFn):
        return _repeat(fn, lead, scope, name, loc)
    return call_value(fn, lead, {}, scope, name, loc)


def call_value(fn, args, kwargs, scope, name, loc, shared: bool = False):
    if isinstance(fn, (Partial, RepeatFn)):
        if kwargs:
            raise SpecError("a partial call takes no more keyword arguments here", loc)
        return apply_fn(fn, args, scope, name, loc)
    if isinstance(fn, ImportFn):
        return call_import(fn, args, kwargs, scope, loc)
    if isinstance(fn, LayerFn):
        inst = name if name is not None else scope.fresh(fn.name)
        return instantiate(fn, args, kwargs, scope, scope.path(inst), loc, shared)
    if fn.name in SPECIAL:
        raise SpecError(f"`{fn.name}` must be called directly, like `{fn.name}(...)`", loc)
    return _builtin(fn.name, args, kwargs, scope.site or loc)


def _builtin(fname, args, kwargs, loc):
    b = BUILTINS[fname]
    kinds = {a.name: a.kind for a in b.args}
    names = list(b.positional)

    def prep(key, v):
        if kinds.get(key) == "tensor":
            return as_tensor(v, loc)
        if kinds.get(key) == "tensors" and isinstance(v, list):
            return [as_tensor(x, loc) for x in v]
        return v
    args = [prep(names[i] if i < len(names) else None, v) for i, v in enumerate(args)]
    kwargs = {k: prep(k, v) for k, v in kwargs.items()}
    with at(loc):
        out = call_builtin(fname, args, kwargs)
    return out


# -- special forms ---------------------------------------------------------------

def _repeat_fn(e: A.Call, scope) -> RepeatFn:
    if e.kwargs or len(e.args) != 2:
        raise SpecError("repeat takes two arguments: repeat(k, f(...)), a count and a function", e.loc)
    k = ev(e.args[0], scope)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SpecError(f"repeat needs a positive integer count, found {describe(k)}", e.args[0].loc)
    if k > 1000:
        raise SpecError(f"repeat count {k} is too large (at most 1000)", e.args[0].loc)
    return RepeatFn(k, ev_fn(e.args[1], scope), e.loc)


def _repeat(fn: RepeatFn, lead, scope, name, loc):
    base = name if name is not None else scope.fresh("repeat")
    scope.ctx.instances.setdefault(scope.path(base), "repeat")
    x = lead
    for i in range(fn.k):
        out = apply_fn(fn.fn, x, scope, f"{base}.{i}", loc)
        x = [out]
        if isinstance(out, tuple):
            raise SpecError("repeat needs a function with one result", loc)
    return x[0]


def _special_repeat(e: A.Call, scope, name):
    """repeat(k, f(a), x) called directly: f(·, a) applied k times to x."""
    if len(e.args) != 3 or e.kwargs:
        raise SpecError("repeat(k, f(...)) goes in a function position, like `x |> repeat(3, dense(64))`;"
                        " called directly it is repeat(k, f(...), x)", e.loc)
    fn = _repeat_fn(A.Call(e.func, e.args[:2], loc=e.loc), scope)
    return _repeat(fn, [ev(e.args[2], scope)], scope, e.as_name or name, e.loc)


def _special_training(e: A.Call, scope, name):
    """training(a, b): a in the training graph, b in inference (same type)."""
    if len(e.args) != 2 or e.kwargs:
        raise SpecError("training takes two arguments: training(in_training, in_inference)", e.loc)
    a, b = (as_tensor(ev(x, scope), x.loc) for x in e.args)
    with scope.at(e.loc):
        try:
            a, b = unify(a, b, what="switch between")
        except ShapeError as err:
            raise SpecError(str(err), e.loc) from None
        if a.type != b.type:
            raise SpecError(f"training(a, b) needs a and b of one type, found {a.type} and {b.type}", e.loc)
        return apply("training", a, b)


def _special_scan(e: A.Call, scope, name):
    """scan(step, xs, init_1, ..., init_k): the k stacked carries, each [T, ...]."""
    if e.kwargs or len(e.args) < 3:
        raise SpecError("scan takes a step layer, a sequence and at least one initial carry: "
                        "scan(step, xs, init, ...)", e.loc)
    step = ev_fn(e.args[0], scope)
    xs = ev(e.args[1], scope)
    if not isinstance(xs, Node) or xs.rank == 0:
        raise SpecError(f"scan runs along the first axis of a tensor, found {describe(xs)}", e.args[1].loc)
    inits = [as_tensor(ev(a, scope), a.loc) for a in e.args[2:]]
    inits = [v if isinstance(v, Node) else _const_like(v) for v in inits]
    inst = name if name is not None else scope.fresh("scan")
    k = len(inits)

    def step_fn(carries, x_t):
        out = apply_fn(step, list(carries) + [x_t], scope, inst, e.args[0].loc)
        outs = list(out) if isinstance(out, tuple) else [out]
        if len(outs) != k:
            raise SpecError(f"the scan step returns {len(outs)} value(s) for {k} carried value(s)", e.args[0].loc)
        for i, (o, c) in enumerate(zip(outs, carries)):
            if not isinstance(o, Node) or o.type != c.type:
                raise SpecError(f"the scan step returns {describe(o)} for carry {i + 1}, whose initial "
                                f"value is {c.type}", e.args[0].loc)
        return outs

    with scope.at(e.loc):
        outs = scan(step_fn, xs, inits, e.loc)
    return outs[0] if k == 1 else tuple(outs)


def _const_like(v):
    return const(v, "f32")


def _text(e) -> str:
    return expr(e)


SPECIAL = {"repeat": _special_repeat, "scan": _special_scan, "training": _special_training}


CALLS = Calls(eval_call, partial, apply_fn)      # what Globals hand to expressions
