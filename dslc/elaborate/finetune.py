"""Fine-tuning train settings (LANGUAGE.md §9): `freeze` and `lora`.

    freeze = [net]            params under these binding paths do not train
    lora   = {net: 4}         rank-r adapters on the weight matrices under the paths:
                              W [n, m] becomes W + D U, D [n, r] ~ normal(1/sqrt(n)),
                              U [r, m] ~ zeros (so training starts from W exactly);
                              W and every other param under the path are frozen,
                              only D (`W.lora_down`) and U (`W.lora_up`) train
    lora_merge = true         `dslc train` exports W + D U as W (dslc/lower/lora.py;
                              false: the adapters stay separate initializers)

A frozen param becomes a state that is never updated: it is carried by the
training graph unchanged and is an initializer of the inference graph under
its own path, so `dslc check` lists it as `(frozen)` and counts only what trains.
`tune(model, setup)` applies both to a checked model (after its train block).
"""
from __future__ import annotations

import numpy as np

from ..errors import SpecError, suggest
from ..ir.model import Model, TrainSetup
from ..ir.node import Node, apply as P, at
from ..ops.leaves import param as param_leaf, state as state_leaf
from ..passes.rewrite import rebuild
from ..syntax import ast as A


def _under(path: str, group: str) -> bool:
    return path == group or path.startswith(group + ".")


def settings(integer, static, dotted) -> dict:
    """The setting readers (train.py's SETTINGS protocol: (expr, ctx) -> (field, value)),
    given train.py's value readers: integer(ctx, e, lo, what), static(ctx, e), dotted(e)."""

    def group(e, ctx, what: str) -> str:
        path = dotted(e)
        if path is None:
            raise SpecError(f"a {what} entry must be an instance path like `net` or `net.fc`", e.loc)
        model = ctx.model
        if not (path in ctx.mctx.instances or any(_under(p, path) for p in model.params)):
            groups = set(ctx.mctx.instances) | set(model.params)
            raise SpecError(f"{what}: no instance or param named `{path}`" + suggest(path, groups), e.loc)
        return path

    def read_freeze(e, ctx):
        items = e.items if isinstance(e, A.ListLit) else [e]
        return "freeze", [group(x, ctx, "freeze") for x in items]

    def read_lora(e, ctx):
        if not isinstance(e, A.DictLit):
            raise SpecError("lora is a dict of instance paths to adapter ranks, e.g. {net: 4}", e.loc)
        out = {}
        for k, v in e.items:
            path = group(k, ctx, "lora")
            r = integer(ctx, v, 1, "a positive adapter rank")
            mats = [p for p, n in ctx.model.params.items() if _under(p, path) and n.rank == 2]
            if not mats:
                raise SpecError(f"lora: `{path}` has no weight matrices (params of rank 2) to adapt", k.loc)
            too_big = [p for p in mats if r > min(ctx.model.params[p].shape)]
            if too_big:
                raise SpecError(f"lora rank {r} exceeds the smaller side of {too_big[0]} "
                                f"{list(ctx.model.params[too_big[0]].shape)}", v.loc)
            out[path] = r
        return "lora", out

    def read_lora_merge(e, ctx):
        v = static(ctx, e)
        if not isinstance(v, bool):
            raise SpecError("lora_merge is true or false", e.loc)
        return "lora_merge", v

    return {"freeze": read_freeze, "lora": read_lora, "lora_merge": read_lora_merge}


def tune(model: Model, setup: TrainSetup) -> Model:
    """The model with frozen params turned into states and LoRA adapters added."""
    freeze = list(getattr(setup, "freeze", None) or [])
    lora = dict(getattr(setup, "lora", None) or {})
    if not freeze and not lora:
        return model
    params, states = dict(model.params), dict(model.states)
    subst: dict[int, Node] = {}
    for path, p in model.params.items():
        rank = next((r for g, r in sorted(lora.items(), key=lambda kv: -len(kv[0])) if _under(path, g)), None)
        frozen = rank is not None or any(_under(path, g) for g in freeze)
        if not frozen:
            continue
        with at(p.loc):
            w0 = state_leaf(path, p.type, p.attrs["init"])
            w0.attrs["frozen"] = True
            del params[path]
            states[path] = w0
            new = w0
            if rank is not None and p.rank == 2:
                n, m = p.shape
                down = param_leaf(f"{path}.lora_down", p.type.with_shape((n, rank)), ("normal", 1.0 / np.sqrt(n)))
                up = param_leaf(f"{path}.lora_up", p.type.with_shape((rank, m)), ("zeros",))
                params[down.attrs["name"]], params[up.attrs["name"]] = down, up
                new = P("add", w0, P("matmul", down, up))          # W + D U
        subst[p.id] = new
    roots = model.graph().roots
    new_roots, _ = rebuild(roots, lambda n, ins: subst.get(n.id))
    outputs = {k: new_roots[f"output:{k}"] for k in model.outputs}
    losses = {k: type(v)(v.name, new_roots[f"loss:{k}"], v.wrt, v.loc) for k, v in model.losses.items()}
    metrics = {k: new_roots[f"metric:{k}"] for k in model.metrics}
    updates = {k: new_roots[f"state:{k}"] for k in model.state_updates}
    inputs = {k: v for k, v in model.inputs.items()}
    return Model(model.name, inputs=inputs, params=params, states=states, state_updates=updates,
                 outputs=outputs, losses=losses, metrics=metrics, loc=model.loc, doc=model.doc)
