"""From a checked model (and its train block) to its ONNX models:

- inference:  data inputs -> outputs; params and state as initializers; inference mode.
- evaluation: data + params/state (inputs with initializer defaults) -> losses, metrics; inference mode.
- training:   one training step: data + carried (params, slots, state, averages, step)
              + hyper (lr, loss_select) -> losses, metrics, new carried.
- with split=True, the same step in two: gradient (data + params + step + states ->
  losses, metrics, grad.<path>, new states) and apply (params, slots, averages,
  steps + gradients -> their new values), for data-parallel training.
Each step graph's manifest (metadata `dslc.manifest`, docs/manifest.md, schema
in dslc_runtime.manifest) says how to loop it. The step itself is built in step.py.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import onnx

from dslc_runtime import manifest as M

from . import passes
from . import step as S
from . import sync as Y
from .checks import label_classes
from .errors import SpecError
from .init import initial_value
from .ir import dims as D
from .ir.graph import Graph
from .ir.model import Model, Program, TrainSetup
from .ir.node import Node, apply as P, at
from .ir.types import TensorType
from .lower.driver import dim_sources, draw_numbers, lower_graph, make_model
from .ops.leaves import input_
from .step import NP_NAME


@dataclass
class Compiled:
    """A compiled model: `inference`, `training` and `evaluation` ONNX models
    (training/evaluation are None without a train block / losses), and with
    `compile(..., split=True)` the step split in two: `gradient` and `apply`."""
    name: str
    model: Model
    setup: TrainSetup | None
    inference: onnx.ModelProto | None
    training: onnx.ModelProto | None = None
    evaluation: onnx.ModelProto | None = None
    gradient: onnx.ModelProto | None = None
    apply: onnx.ModelProto | None = None
    graphs: dict = field(default_factory=dict)     # the optimized IR roots of each, for printing
    draws: dict = field(default_factory=dict)      # random draw uid -> number, shared by the step graphs
    # with split=True where rows interact (batch norm): the exact data-parallel step's graphs
    # (a gradient graph with sync inputs, forward and backward stages; sync.py), or why none can be
    sync: list = field(default_factory=list)
    sync_error: SpecError | None = None

    @property
    def manifest(self) -> dict:
        return json.loads(_meta(self.training, "dslc.manifest")) if self.training else {}


def _meta(m: onnx.ModelProto, key: str) -> str:
    return next(p.value for p in m.metadata_props if p.key == key)


def compile(prog: Program | Model, name: str | None = None, setup: TrainSetup | None = None,
            optimize: bool = True, split: bool = False) -> Compiled:
    """Compile model `name` of a program (or a Model) to ONNX (split: also the
    gradient and apply graphs)."""
    if isinstance(prog, Program):
        model = prog.model(name)
        setup = setup or prog.trains.get(model.name)
    else:
        model = prog
    opt = passes.optimize if optimize else (lambda r, **_: r)
    seed = setup.seed if setup else 0
    c = Compiled(model.name, model, setup, None)
    values = _values(model, seed)              # initial params and state, drawn once for all three
    c.inference = _inference(model, seed, values, opt, c)
    if model.losses or model.metrics:
        c.evaluation = _evaluation(model, seed, values, opt, c)
    if setup is not None and model.losses:
        pl = S.plan(model, setup, forward=lambda r: opt(r, passes=passes.FORWARD))
        c.training = _training(pl, values, opt, c)
        if split:
            c.gradient = _gradient(pl, values, opt, c)
            c.apply = _apply(pl, values, opt, c)
            _sync(pl, values, opt, c)
    return c


# -- shared pieces ------------------------------------------------------------------
def _values(model: Model, seed: int) -> dict[str, np.ndarray]:
    """Initial values of params and state, reproducible from (seed, path)."""
    out = {}
    for kind, leaves in (("param", model.params), ("state", model.states)):
        for path, n in leaves.items():
            shape = tuple(n.shape)
            if not all(isinstance(d, int) for d in shape):
                raise SpecError(f"{kind} `{path}` has a symbolic shape {D.show_shape(shape)}; "
                                "params must have known sizes", n.loc)
            out[path] = initial_value(n.attrs["init"], shape, n.dtype, seed, path)
    return out


_leaves = S.leaves_of


def _data_entries(inputs: list[Node], roots: dict | None = None) -> list:
    batch = _batch_symbol(inputs)
    classes = label_classes(roots) if roots else {}
    out = []
    for n in inputs:
        shape = [d if isinstance(d, int) else D.show(d) for d in n.shape]
        axis = next((i for i, d in enumerate(n.shape) if batch is not None and d == batch), None)
        out.append(M.DataInput(n.attrs["name"], NP_NAME[n.dtype], tuple(shape), axis, classes.get(n.attrs["name"])))
    return out


def _batch_symbol(inputs: list[Node]):
    """The symbolic dim shared by every data input (prefer `B`): the batch."""
    common = None
    for n in inputs:
        syms = {d for d in n.shape if isinstance(d, D.Sym)}
        common = syms if common is None else common & syms
    if not common:
        return None
    b = D.Sym.var("B")
    if b in common:
        return b
    first = inputs[0].shape
    return next(d for d in first if d in common)


def _with_dim_inputs(model: Model, roots: dict, inputs: list[Node]) -> list[Node]:
    """`inputs` plus the model's data inputs that fix a symbolic dim the graph
    uses but no reachable input determines (e.g. `normal([B, 4])` in a sampler:
    the batch size is read off x's shape)."""
    have = set(dim_sources(inputs))
    need = set()
    for n in Graph(roots).order():
        for d in n.shape:
            if isinstance(d, D.Sym):
                need |= d.atoms()
    out = list(inputs)
    for sym in sorted(need - have):
        for n in model.inputs.values():
            if n not in out and sym in dim_sources([n]):
                out.append(n)
                have |= set(dim_sources([n]))
                break
        else:
            raise SpecError(f"no input of model `{model.name}` fixes the dim `{sym}` its outputs use", model.loc)
    return out


def _doc(model: Model) -> str:
    return model.doc or f"dslc model {model.name}"


# -- inference ---------------------------------------------------------------------
def _inference(model: Model, seed: int, values: dict, opt, c: Compiled) -> onnx.ModelProto | None:
    if not model.outputs:
        return None
    roots, _ = passes.specialize(dict(model.outputs), "infer")
    roots = opt(roots)
    c.graphs["inference"] = roots
    leaves = _leaves(roots)
    inits = {n.attrs["name"]: values[n.attrs["name"]] for n in leaves["param"] + leaves["state"]}
    g = lower_graph(roots, _with_dim_inputs(model, roots, leaves["input"]), inits, name=model.name,
                    doc=_doc(model), base_seed=seed)
    meta = {"dslc.model": model.name, "dslc.role": "inference"}
    return make_model(g, meta, doc=_doc(model))


# -- evaluation --------------------------------------------------------------------
def _evaluation(model: Model, seed: int, values: dict, opt, c: Compiled) -> onnx.ModelProto:
    roots = {k: v.node for k, v in model.losses.items()}
    roots.update(model.metrics)
    roots, _ = passes.specialize(roots, "infer")
    roots = opt(roots)
    c.graphs["evaluation"] = roots
    leaves = _leaves(roots)
    carried = leaves["param"] + leaves["state"]
    inits = {n.attrs["name"]: values[n.attrs["name"]] for n in carried}
    data = _with_dim_inputs(model, roots, leaves["input"])
    g = lower_graph(roots, data + carried, inits, name=model.name + "_eval", base_seed=seed)
    manifest = M.Manifest("evaluation", model.name, _data_entries(data, roots), list(model.losses), list(model.metrics),
                          params=[n.attrs["name"] for n in carried])
    return make_model(g, {M.KEY: json.dumps(manifest.to_json())}, doc=_doc(model))


# -- the training step: fused, and split into gradient + apply -----------------------
def _training(pl: S.Plan, values: dict, opt, c: Compiled) -> onnx.ModelProto:
    """data + carried + lr (+ loss_select) -> losses, metrics, carried.next."""
    with at(pl.setup.loc):
        car = S.carried(pl, values)
    roots = S.outputs(pl)
    roots.update(S.apply_step(pl, car, lambda lname: S.loss_gradients(pl, lname)))
    roots.update(S.state_updates(pl))
    order = {f"{nm}.next": i for i, nm in enumerate(car)}
    roots = dict(sorted(roots.items(), key=lambda kv: order.get(kv[0], -1)))
    return _lower_step(pl, "training", roots, list(car.values()), [], opt, c)


def _gradient(pl: S.Plan, values: dict, opt, c: Compiled) -> onnx.ModelProto:
    """data + params + step + states (+ seed, row_offset, loss_select) ->
    losses, metrics, grad.<path>, states.next."""
    with at(pl.setup.loc):
        car = S.carried(pl, values)
    states = [cr for cr in car.values() if cr.kind == "state"]
    roots = S.outputs(pl)
    roots.update(S.gradient_outputs(pl))
    roots.update(S.state_updates(pl))
    plain = [pl.used[p] for p in pl.used] + [pl.step]
    return _lower_step(pl, "gradient", roots, states, plain, opt, c,
                       defaults={**{p: values[p] for p in pl.used}, "step": np.zeros((), np.int64)})


def _apply(pl: S.Plan, values: dict, opt, c: Compiled) -> onnx.ModelProto:
    """params, slots, averages, steps + grad.<path> + lr (+ loss_select) -> their .next."""
    with at(pl.setup.loc):
        car = {k: v for k, v in S.carried(pl, values).items() if v.kind != "state"}
        grads = {p: input_(f"grad.{p}", pl.used[p].type) for p in pl.trained}
    roots = S.apply_step(pl, car, lambda lname: [grads[p] for p in pl.targets[lname]])
    return _lower_step(pl, "apply", roots, list(car.values()), list(grads.values()), opt, c)


def _lower_step(pl: S.Plan, role: str, roots: dict, car: list, plain: list, opt, c: Compiled,
                defaults: dict | None = None, sync: dict | None = None) -> onnx.ModelProto:
    """Optimize and lower one form of the step, with its manifest (sync: the
    sync graphs' manifest fields, with `key` naming the graph in c.graphs)."""
    model, setup = pl.model, pl.setup
    sync = dict(sync or {})
    roots = opt(roots)
    c.graphs[sync.pop("key", role)] = roots
    if role == "training":
        c.draws = draw_numbers(roots)           # the split graphs number their draws alike
    data = _with_dim_inputs(model, roots, [n for n in _leaves(roots)["input"] if n.attrs["name"] in model.inputs])
    hyper = _hyper(pl, role, roots) + _weight(sync.get("weight"), roots)
    select = [pl.select] if pl.select is not None else []
    inits = {cr.name: cr.value for cr in car}
    inits.update(defaults or {})
    inits.update({h.name: np.asarray(h.default, dtype=h.dtype) for _, h in hyper})
    if select:
        inits["loss_select"] = np.asarray(0, dtype=np.int64)
    names = {h.name for _, h in hyper}
    g = lower_graph(roots, data + [cr.leaf for cr in car] + plain + [n for n, _ in hyper] + select, inits,
                    name=f"{model.name}_{'train' if role == 'training' else role}",
                    base_seed=setup.seed, rng_counter="step" if role != "apply" else None,
                    rng_seed="seed" if "seed" in names else None,
                    rng_row_offset="row_offset" if "row_offset" in names else None,
                    rng_batch=_batch_symbol(data), draws=c.draws)
    man = _step_manifest(pl, role, data, car, [h for _, h in hyper], plain, roots, sync)
    return make_model(g, {M.KEY: json.dumps(man.to_json())}, doc=_doc(model))


def _hyper(pl: S.Plan, role: str, roots: dict) -> list[tuple[Node, M.Hyper]]:
    """The scalar inputs with defaults: lr (not in the gradient graph); the seed
    and row offset of random draws (not in the apply graph)."""
    out = []
    if role in ("training", "apply"):
        doc = "multiplier on the spec's lr expression" if callable(pl.lr) else None
        out.append((pl.lr_in, M.Hyper("lr", "float32", 1.0 if callable(pl.lr) else float(pl.lr), doc)))
    if role != "apply" and any(n.op.startswith("random_") for n in Graph(roots).order()):
        # the run's seed keys the graph's own random draws (with the step counter)
        out.append((input_("seed", TensorType("i64", ())),
                    M.Hyper("seed", "int64", int(pl.setup.seed),
                            "keys the random draws (dropout, normal, ...) with the step counter")))
    if role in ROW_ROLES:
        out.append((input_("row_offset", TensorType("i64", ())),
                    M.Hyper("row_offset", "int64", 0, "index in the global batch of this batch's first row "
                            "(random draws along the batch axis follow it)")))
    return out


ROW_ROLES = ("gradient", "forward_stage", "backward_stage")   # graphs that read a shard of the batch


def _weight(weight: Node | None, roots: dict) -> list[tuple[Node, M.Hyper]]:
    """The shard_weight hyper input, where the graph reads it."""
    if weight is None or weight not in _leaves(roots)["input"]:
        return []
    return [(weight, M.Hyper("shard_weight", "float32", 1.0, "this worker's share b_s / B of the batch"))]


def _step_manifest(pl: S.Plan, role: str, data: list, car: list, hyper: list, plain: list,
                   roots: dict, sync: dict) -> M.Manifest:
    model, setup = pl.model, pl.setup
    split = role != "training"
    stage = role.endswith("_stage")
    return M.Manifest(
        role, model.name, _data_entries(data, roots) if role != "apply" else [],
        list(model.losses) if role in ("training", "gradient") else [],
        list(model.metrics) if role in ("training", "gradient") else [],
        carried=[cr.entry() for cr in car], hyper=hyper, steps=list(setup.steps or model.losses),
        select=M.Select("loss_select", {n: i for i, n in enumerate(pl.order)}) if pl.select is not None else None,
        train=_train_settings(setup, model),
        params=[n.attrs["name"] for n in plain if n.op in ("param", "state")] if role in ROW_ROLES else [],
        grads=[M.Grad(p, f"grad.{p}", S.NP_NAME[pl.used[p].dtype], tuple(pl.used[p].shape))
               for p in pl.trained] if split and role != "forward_stage" else [],
        step="step" if role in ROW_ROLES else None,
        row_offset="row_offset" if role in ROW_ROLES else None,
        spec=model.loc.filename if model.loc else None,
        sync=sync.get("points", []), shard_weight="shard_weight" if any(h.name == "shard_weight" for h in hyper)
        else None, depth=sync.get("depth") if stage else None)


def _train_settings(setup: TrainSetup, model: Model) -> M.TrainSettings:
    es = None
    if setup.early_stopping:
        patience, metric, *mode = setup.early_stopping
        es = M.EarlyStopping(int(patience), metric, M.stopping_mode(metric, model.losses, *mode))
    return M.TrainSettings(setup.data, setup.split, setup.valid, setup.batch, setup.epochs, setup.seed, es)


# -- the exact data-parallel step where rows interact (sync.py) -------------------------
def _sync(pl: S.Plan, values: dict, opt, c: Compiled) -> None:
    """c.sync: the sync gradient graph, the forward stages 1..D and the backward
    stages D..1, where the plain gradient graph would not split exactly."""
    b = _batch_symbol([n for n in _leaves(pl.fwd)["input"] if n.attrs["name"] in pl.model.inputs])
    try:
        sp = Y.analyse(pl.fwd, D.plain_name(b) if b is not None else None)
        if not sp.needed:
            return
        points = [M.SyncPoint(p.name, f"part.{p.k}", f"sync_grad.{p.k}", f"cot.{p.k}", NP_NAME[p.leaf.dtype],
                              tuple(p.leaf.shape), p.depth, p.combine) for p in sp.points]
        meta = {"points": points, "weight": sp.weight}
        graphs = [_sync_gradient(pl, sp, values, opt, c, meta)]
        graphs += [_stage(pl, sp, "forward_stage", d, values, opt, c, meta) for d in range(1, sp.depth + 1)]
        # no backward stage where every statistic is a max or min (no loss may depend on them)
        graphs += [_stage(pl, sp, "backward_stage", d, values, opt, c, meta) for d in range(sp.depth, 0, -1)
                   if any(p.combine == "sum" for p in sp.at_depth(d))]
    except SpecError as e:          # raised where the model is trained on several workers
        c.sync_error = e
        return
    c.sync = graphs


def _sync_gradient(pl: S.Plan, sp: Y.SyncPlan, values: dict, opt, c: Compiled, meta: dict) -> onnx.ModelProto:
    """The gradient graph over the sync inputs: also d(loss)/d sync.<k>."""
    pl2 = Y.with_fwd(pl, sp)
    with at(pl.setup.loc):
        car = S.carried(pl, values)
        roots = S.outputs(pl2)
        roots.update(S.gradient_outputs(pl2))
        roots.update(S.state_updates(pl2))
        roots.update(Y.sync_gradients(sp, pl2.fwd, pl.order, pl.select))
    states = [cr for cr in car.values() if cr.kind == "state"]
    plain = [pl.used[p] for p in pl.used] + [pl.step] + [p.leaf for p in sp.points]
    return _lower_step(pl2, "gradient", roots, states, plain, opt, c,
                       defaults={**{p: values[p] for p in pl.used}, "step": np.zeros((), np.int64)},
                       sync={**meta, "key": "sync_gradient"})


def _stage(pl: S.Plan, sp: Y.SyncPlan, role: str, d: int, values: dict, opt, c: Compiled,
           meta: dict) -> onnx.ModelProto:
    """Forward stage d (this worker's parts of the depth-d reductions) or backward
    stage d (their vjp with the summed adjoints)."""
    cots = {}
    with at(pl.setup.loc):
        if role == "forward_stage":
            roots = Y.forward_stage(sp, d)
        else:
            roots, cots = Y.backward_stage(sp, d, {p: pl.used[p] for p in pl.trained}, _masks(pl))
    states = list(_leaves(roots)["state"])
    plain = [pl.used[p] for p in pl.used] + [pl.step] + states
    plain += [p.leaf for p in sp.points if p.depth < d] + list(cots.values())
    defaults = {**{p: values[p] for p in pl.used}, **{n.attrs["name"]: values[n.attrs["name"]] for n in states},
                "step": np.zeros((), np.int64)}
    return _lower_step(pl, role, roots, [], plain, opt, c, defaults=defaults,
                       sync={**meta, "depth": d, "key": f"{role}.{d}"})


def _masks(pl: S.Plan) -> dict[str, Node]:
    """With several losses: param path -> `the selected loss updates it`."""
    if pl.select is None:
        return {}
    out = {}
    for path in pl.trained:
        for k, lname in enumerate(pl.order):
            if path in pl.targets[lname]:
                on = S.selected(pl.select, k)
                out[path] = on if path not in out else P("where", on, on, out[path])
    return out
