"""Items -> a Program: consts, layers, models (and their train blocks).

Independent errors are collected: each statement of a model and each train
setting is checked on its own, and all errors are raised together at the end."""
from __future__ import annotations
from ..checks import check_program    # what compile would refuse: reported by check too

from ..errors import SpecError, SpecErrors
from ..ir.model import Model, Program
from ..syntax import ast as A
from ..syntax.fmt import to_dl
from .exprs import ev
from .finetune import tune                     # freeze / lora: what trains
from .imports import define as define_import   # import "model.onnx" as NAME
from .scope import Binding, Globals, ModelCtx, Scope
from .stdlib import stdlib_layers
from .stmts import run_stmt
from .calls import CALLS
from .errors import Errors
from .train import elaborate_train
from .values import LayerFn, describe


def elaborate_program(tree: A.Program, filename: str) -> Program:
    errors = Errors()
    glob = Globals(CALLS, layers=dict(stdlib_layers()))
    user_layers: set = set()
    items_seen: dict = {}
    prog = Program(ast=tree, filename=filename, printer=to_dl)
    models: dict = {}
    for item in tree.items:
        kind = type(item).__name__.lower()
        key = ("train" if kind == "train" else "name", item.name)
        if key in items_seen:
            errors.add(SpecError(f"`{item.name}` is already defined at line {items_seen[key].line}", item.loc))
            continue
        items_seen[key] = item.loc
        if isinstance(item, A.Const):
            errors.guard(_const, item, glob)
        elif isinstance(item, A.Layer):
            glob.layers[item.name] = LayerFn(item, glob)
            user_layers.add(item.name)
        elif isinstance(item, A.Import):
            errors.guard(define_import, item, glob, filename)
        elif isinstance(item, A.Model):
            m = _model(item, glob, errors)
            if m is not None:
                prog.models[item.name] = m[0]
                models[item.name] = m[1]
    for item in tree.items:
        if isinstance(item, A.Train):
            setup = errors.guard(elaborate_train, item, prog, models,
                                 [it.name for it in tree.items if isinstance(it, A.Model)], glob.consts)
            if setup is not None:
                prog.trains[item.name] = setup
                prog.models[item.name] = tune(prog.models[item.name], setup)
    if not errors.list:
        for e in check_program(prog):
            errors.add(e)
    if errors.list:
        raise errors.list[0] if len(errors.list) == 1 else SpecErrors(errors.list)
    return prog


def _const(item: A.Const, glob: Globals):
    scope = Scope(glob, ModelCtx("<const>"))
    v = ev(item.expr, scope)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecError(f"a const must be a number known when compiling, found {describe(v)}", item.expr.loc)
    glob.consts[item.name] = Binding(v, item.loc, "const")


def _model(item: A.Model, glob: Globals, errors: Errors):
    ctx = ModelCtx(item.name)
    scope = Scope(glob, ctx)
    scope.outputs, scope.losses, scope.metrics, scope.result_names = {}, {}, {}, {}
    before = len(errors.list)
    for s in item.body:
        errors.guard(run_stmt, s, scope)
    if len(errors.list) > before:
        return None
    model = Model(item.name, inputs=ctx.inputs, params=ctx.params, states=ctx.states,
                  state_updates=ctx.state_updates, outputs=scope.outputs, losses=scope.losses,
                  metrics=scope.metrics, loc=item.loc, doc=item.doc or "")
    return model, ctx
