"""`train NAME { ... }` -> TrainSetup (LANGUAGE.md §9): one validator per
setting in `SETTINGS`, each turning the setting's expression into the value
TrainSetup stores. Hyper-parameters written as expressions of the step
counter `t` become Python functions building IR from the node for t."""
from __future__ import annotations

from ..errors import SpecError, SpecErrors, suggest
from ..ir.model import HyperExpr, Optimizer, TrainSetup
from ..ir.node import Node, at
from ..ir.types import TensorType
from ..ops.leaves import input_
from ..optim import OPTIMIZERS, REQUIRED
from ..syntax import ast as A
from .calls import CALLS
from .errors import Errors
from .exprs import ev
from .finetune import settings as finetune_settings
from .scope import Globals, ModelCtx, Scope
from .values import describe

SCHEDULES = {"constant": 0, "inverse_power": 1, "step": 2, "cosine": 1, "warmup": 1}


class Ctx:
    """What a setting's validator may look at: the program so far, the model,
    its elaboration context and the spec's consts (usable in setting values)."""

    def __init__(self, prog, model, mctx, consts: dict):
        self.prog, self.model, self.mctx, self.consts = prog, model, mctx, dict(consts)

    def scope(self) -> Scope:
        """A scope seeing the consts only (no model names)."""
        return Scope(Globals(CALLS, consts=dict(self.consts)), ModelCtx("<train>"))


def elaborate_train(item: A.Train, prog, models: dict, model_names: list,
                    consts: dict | None = None) -> TrainSetup | None:
    """A validated TrainSetup for `train NAME { ... }` (consts may be used in values)."""
    if item.name not in prog.models:
        if item.name in model_names:
            return None                     # the model had errors, already reported
        raise SpecError(f"`train {item.name}`: there is no model named `{item.name}`"
                        + suggest(item.name, model_names), item.loc)
    model, mctx = prog.models[item.name], models[item.name]
    ctx = Ctx(prog, model, mctx, consts or {})
    setup = TrainSetup(item.name, Optimizer("adam", {}, item.loc), loc=item.loc)
    errors, seen = Errors(), {}
    for s in item.settings:
        if s.name in seen:
            errors.add(SpecError(f"setting `{s.name}` is given twice (first at line {seen[s.name].line})", s.loc))
            continue
        seen[s.name] = s.loc
        if s.name not in SETTINGS:
            errors.add(SpecError(_unknown_setting(s.name), s.loc))
            continue
        errors.guard(_apply, s, setup, ctx)
    if errors.list:
        raise errors.list[0] if len(errors.list) == 1 else SpecErrors(errors.list)
    return setup


def _unknown_setting(name: str) -> str:
    """The message for a misspelt setting; optimizer arguments are suggested too."""
    opt_args = {a: k for k, rule in OPTIMIZERS.items() for a in rule.defaults}
    hint = suggest(name, [*SETTINGS, *opt_args])
    best = hint[len(" (did you mean `"):-len("`?)")] if hint else None
    if best in opt_args:
        return (f"unknown setting `{name}`{hint} — `{best}` is an argument of the optimizer: "
                f"optimizer = {opt_args[best]}(..., {best} = ...)")
    return f"unknown setting `{name}`{hint}; settings are {', '.join(SETTINGS)}"


def _apply(s: A.Setting, setup: TrainSetup, ctx: Ctx):
    field_name, value = SETTINGS[s.name](s.expr, ctx)
    setattr(setup, field_name, value)


# -- value readers ----------------------------------------------------------------

def _static(ctx: Ctx, e):
    """A number, string, bool or list of those, without any model names."""
    return ev(e, ctx.scope())


def number(ctx: Ctx, e, lo=None, hi=None, what="a number", open_lo=False, open_hi=False) -> float:
    v = _static(ctx, e) if not isinstance(e, A.Name) or e.id in ctx.consts else None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecError(f"expected {what}, found {describe(v) if v is not None else f'`{e.id}`'}", e.loc)
    if (lo is not None and (v < lo or (open_lo and v == lo))) or \
            (hi is not None and (v > hi or (open_hi and v == hi))):
        raise SpecError(f"expected {what}, found {v}", e.loc)
    return float(v)


def integer(ctx: Ctx, e, lo=0, what="an integer") -> int:
    v = _static(ctx, e) if not isinstance(e, A.Name) or e.id in ctx.consts else None
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise SpecError(f"expected {what}, found {describe(v) if v is not None else f'`{e.id}`'}", e.loc)
    return v


def _call_parts(e, what: str, known: dict):
    """`f(args)` or `f` -> (name, args, kwargs) with f one of `known`."""
    if isinstance(e, A.Name):
        head, args, kwargs, loc = e.id, [], [], e.loc
    elif isinstance(e, A.Call) and isinstance(e.func, A.Name) and e.as_name is None:
        head, args, kwargs, loc = e.func.id, e.args, e.kwargs, e.func.loc
    else:
        raise SpecError(f"expected {what}: " + ", ".join(f"`{k}`" for k in known), e.loc)
    if head not in known:
        raise SpecError(f"unknown {what} `{head}`" + suggest(head, known) + "; expected one of "
                        + ", ".join(known), loc)
    return head, args, kwargs, loc


def hyper(ctx: Ctx, e, what: str):
    """A number, or an expression of the step counter `t`: IR over a leaf t,
    elaborated once here (compile substitutes the graph's t)."""
    if _mentions_t(e):
        t = input_("t", TensorType("f32", ()))
        scope = ctx.scope()
        scope.bind("t", t, None)
        with at(e.loc):
            out = ev(e, scope)
        if not isinstance(out, Node) or out.shape != () or out.dtype != "f32":
            raise SpecError(f"{what} must be a scalar expression of `t`, found {describe(out)}", e.loc)
        return HyperExpr(out, t)
    return number(ctx, e, what=what)


def _mentions_t(e) -> bool:
    if isinstance(e, A.Name):
        return e.id == "t"
    if isinstance(e, A.Keyword):
        return _mentions_t(e.value)
    kids = []
    for f in getattr(e, "__dataclass_fields__", {}):
        v = getattr(e, f)
        kids += v if isinstance(v, list) else [v]
    return any(_mentions_t(k) for k in kids if isinstance(k, (A.Name, A.BinOp, A.UnaryOp, A.Call,
                                                               A.Keyword, A.Compare, A.Index)))


# -- settings ------------------------------------------------------------------

def _data(e, ctx):
    if isinstance(e, A.Str):
        return "data", e.value
    if isinstance(e, A.Name):
        return "data", e.id                       # a built-in data set name
    raise SpecError('data must be a file name ("data.npz") or a built-in data set name', e.loc)


def _split(e, ctx):
    if isinstance(e, A.Str):
        return "valid", e.value
    return "split", number(ctx, e, 0, 1, "a fraction between 0 and 1 (or a file name)", True, True)


def _optimizer(e, ctx):
    kind, args, kwargs, loc = _call_parts(e, "optimizer", OPTIMIZERS)
    rule = OPTIMIZERS[kind]
    names = list(rule.defaults)
    sig = f"{kind}({', '.join(names)})"
    if len(args) > len(names):
        raise SpecError(f"{kind} takes at most {len(names)} arguments, found {len(args)}; it is {sig}", e.loc)
    given = dict(zip(names, args))
    for k in kwargs:
        if k.name not in names:
            raise SpecError(f"unknown argument `{k.name}` of optimizer {kind}" + suggest(k.name, names)
                            + f"; it is {sig}", k.loc)
        if k.name in given:
            raise SpecError(f"argument `{k.name}` of {kind} is given twice", k.loc)
        given[k.name] = k.value
    for k, d in rule.defaults.items():
        if d is REQUIRED and k not in given:
            raise SpecError(f"optimizer {kind} needs `{k}`, e.g. {kind}({k} = 0.01)", e.loc)
    out = {}
    for k, v in given.items():
        if isinstance(rule.defaults[k], bool):
            b = _static(ctx, v)
            if not isinstance(b, bool):
                raise SpecError(f"`{k}` of {kind} must be true or false, found {describe(b)}", v.loc)
            out[k] = b
        elif k == "lr":
            out[k] = hyper(ctx, v, "the learning rate")
            if not callable(out[k]) and out[k] <= 0:
                raise SpecError(f"the learning rate must be positive, found {out[k]}", v.loc)
        else:
            out[k] = number(ctx, v, 0, None, f"a non-negative number for `{k}`")
    return "optimizer", Optimizer(kind, out, e.loc)


def _schedule(e, ctx):
    if _mentions_t(e):
        return "schedule", hyper(ctx, e, "the schedule")
    kind, args, kwargs, loc = _call_parts(e, "schedule", SCHEDULES)
    if kwargs or len(args) != SCHEDULES[kind]:
        raise SpecError(f"schedule `{kind}` takes {SCHEDULES[kind]} positional argument(s)", e.loc)
    vals = []
    for a in args:
        v = number(ctx, a, 0, None, "a non-negative number", open_lo=kind != "inverse_power")
        vals.append(int(v) if v == int(v) and kind in ("step", "cosine", "warmup") and a is args[0] else v)
    return "schedule", (kind, *vals)


def _penalty(field_name):
    def read(e, ctx):
        return field_name, number(ctx, e, 0, None, f"a non-negative number for `{field_name}`")
    return read


def _clip(e, ctx):
    if isinstance(e, A.Num):
        return "clip", number(ctx, e, 0, None, "a positive number", open_lo=True)
    kind, args, kwargs, loc = _call_parts(e, "clip", {"norm": 1})
    if kwargs or len(args) != 1:
        raise SpecError("clip is norm(c): one positive bound on the gradient's global norm", e.loc)
    return "clip", number(ctx, args[0], 0, None, "a positive number", open_lo=True)


def _average(e, ctx):
    kind, args, kwargs, loc = _call_parts(e, "average", {"polyak": 1})
    if kwargs or len(args) > 1:
        raise SpecError("average is polyak(alpha) or polyak()", e.loc)
    if not args:
        return "average", "linear"
    return "average", number(ctx, args[0], 0, 1, "an averaging rate alpha in (0, 1]", open_lo=True)


def _early_stopping(e, ctx):
    kind, args, kwargs, loc = _call_parts(e, "early stopping rule", {"patience": 2})
    if len(args) != 2 or any(k.name != "mode" for k in kwargs):
        raise SpecError('early_stopping is patience(n, metric) or patience(n, metric, mode = "min")', e.loc)
    mode = [k.value.value if isinstance(k.value, A.Str) else None for k in kwargs]
    if mode and mode[0] not in ("min", "max"):
        raise SpecError('the early-stopping mode is "min" or "max"', kwargs[0].value.loc)
    n = integer(ctx, args[0], 1, "a positive number of epochs")
    m = args[1]
    name = m.value if isinstance(m, A.Str) else m.id if isinstance(m, A.Name) else None
    if name is None:
        raise SpecError("the early-stopping metric must be a metric or loss name", m.loc)
    known = [*ctx.model.metrics, *ctx.model.losses]
    base = name[4:] if name.startswith("val_") else name
    if base not in known:
        raise SpecError(f"early stopping watches `{name}`, which is not a metric or loss of model "
                        f"`{ctx.model.name}`" + suggest(base, known), m.loc)
    if mode and base in ctx.model.losses:
        raise SpecError(f"`{name}` is a loss, so early stopping minimizes it; drop `mode`", kwargs[0].loc)
    return "early_stopping", (n, name, *mode)     # the direction: dslc_runtime.manifest.stopping_mode


def _positive(field_name):
    def read(e, ctx):
        return field_name, integer(ctx, e, 1, f"a positive integer for `{field_name}`")
    return read


MAX_SEED = 2 ** 31 - 1     # the runtime keys random draws with seed * 2**32 + step in int64


def _seed(e, ctx):
    v = integer(ctx, e, 0, "a non-negative integer seed")
    if v > MAX_SEED:
        raise SpecError(f"the seed must be at most {MAX_SEED} (2**31 - 1), found {v}", e.loc)
    return "seed", v


def _steps(e, ctx):
    if not isinstance(e, A.ListLit) or not e.items:
        raise SpecError("steps is a list of loss names, e.g. steps = [d_loss, g_loss]", e.loc)
    out = []
    for it in e.items:
        if not isinstance(it, A.Name) or it.id not in ctx.model.losses:
            what = it.id if isinstance(it, A.Name) else "this"
            raise SpecError(f"`{what}` in steps is not a loss of model `{ctx.model.name}`"
                            + (suggest(it.id, ctx.model.losses) if isinstance(it, A.Name) else "")
                            + f"; its losses are {', '.join(ctx.model.losses) or 'none'}", it.loc)
        out.append(it.id)
    return "steps", out


def _lr_scale(e, ctx):
    if not isinstance(e, A.DictLit):
        raise SpecError("lr_scale is a dict of instance paths to factors, e.g. {D: 2.0}", e.loc)
    out = {}
    groups = set(ctx.mctx.instances) | set(ctx.model.params)
    for k, v in e.items:
        path = _dotted(k)
        if path is None:
            raise SpecError("an lr_scale key must be an instance path like `D` or `enc.h1`", k.loc)
        if not (path in ctx.mctx.instances or any(p == path or p.startswith(path + ".")
                                                  for p in ctx.model.params)):
            raise SpecError(f"lr_scale: no instance or param named `{path}`" + suggest(path, groups), k.loc)
        out[path] = number(ctx, v, 0, None, "a non-negative factor")
    return "lr_scale", out


def _dotted(e):
    if isinstance(e, A.Name):
        return e.id
    if isinstance(e, A.Attr):
        head = _dotted(e.value)
        return None if head is None else f"{head}.{e.attr}"
    if isinstance(e, A.Str):
        return e.value
    return None


SETTINGS = {
    "data": _data,
    "split": _split,
    "valid": _split,
    "optimizer": _optimizer,
    "schedule": _schedule,
    "weight_decay": _penalty("weight_decay"),
    "l1": _penalty("l1"),
    "clip": _clip,
    "average": _average,
    "early_stopping": _early_stopping,
    "batch": _positive("batch"),
    "epochs": _positive("epochs"),
    "seed": _seed,
    "steps": _steps,
    "lr_scale": _lr_scale,
}
SETTINGS.update(finetune_settings(integer, _static, _dotted))   # freeze, lora, lora_merge
