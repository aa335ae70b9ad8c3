"""From a checked model (and its train block) to the three ONNX models:

- inference:  data inputs -> outputs; params and state as initializers; inference mode.
- evaluation: data + params/state (inputs with initializer defaults) -> losses, metrics; inference mode.
- training:   one training step: data + carried (params, slots, state, averages, step)
              + hyper (lr, loss_select) -> losses, metrics, new carried. Its manifest
              (metadata `dslc.manifest`, INTERFACE.md) says how to loop it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import onnx

from . import passes
from .autodiff import grad
from .errors import SpecError
from .init import initial_value
from .ir import dims as D
from .ir.graph import Graph
from .ir.model import Model, Program, TrainSetup
from .ir.node import Node, apply as P, at, const
from .ir.types import NUMPY, TensorType
from .lower.driver import lower_graph, make_model
from .ops.leaves import input_, state as state_leaf
from .optim import OPTIMIZERS, resolve_args, schedule_factor

NP_NAME = {"f32": "float32", "f64": "float64", "i64": "int64", "bool": "bool"}


@dataclass
class Compiled:
    """A compiled model: `inference`, `training` and `evaluation` ONNX models
    (training/evaluation are None without a train block / losses)."""
    name: str
    model: Model
    setup: TrainSetup | None
    inference: onnx.ModelProto | None
    training: onnx.ModelProto | None = None
    evaluation: onnx.ModelProto | None = None
    graphs: dict = field(default_factory=dict)     # the optimized IR roots of each, for printing

    @property
    def manifest(self) -> dict:
        return json.loads(_meta(self.training, "dslc.manifest")) if self.training else {}


def _meta(m: onnx.ModelProto, key: str) -> str:
    return next(p.value for p in m.metadata_props if p.key == key)


def compile(prog: Program | Model, name: str | None = None, setup: TrainSetup | None = None,
            optimize: bool = True) -> Compiled:
    """Compile model `name` of a program (or a Model) to ONNX."""
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
        c.training = _training(model, setup, values, opt, c)
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


def _leaves(roots: dict[str, Node]):
    order = Graph(roots).order()
    return {op: [n for n in order if n.op == op] for op in ("input", "param", "state")}


def _data_entries(inputs: list[Node]) -> list[dict]:
    batch = _batch_symbol(inputs)
    out = []
    for n in inputs:
        shape = [d if isinstance(d, int) else D.show(d) for d in n.shape]
        axis = next((i for i, d in enumerate(n.shape) if batch is not None and d == batch), None)
        out.append({"name": n.attrs["name"], "dtype": NP_NAME[n.dtype], "shape": shape, "batch_axis": axis})
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
    from .lower.driver import dim_sources
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
    manifest = {"version": 1, "role": "evaluation", "model": model.name,
                "data": _data_entries(data),
                "params": [n.attrs["name"] for n in carried],
                "losses": list(model.losses), "metrics": list(model.metrics)}
    return make_model(g, {"dslc.manifest": json.dumps(manifest)}, doc=_doc(model))


# -- training ----------------------------------------------------------------------
def _training(model: Model, setup: TrainSetup, values: dict, opt, c: Compiled) -> onnx.ModelProto:
    steps = setup.steps or list(model.losses)
    order = list(dict.fromkeys(steps))                  # each loss once, in order
    opt_args = resolve_args(setup.optimizer.kind, setup.optimizer.args)
    rule = OPTIMIZERS[setup.optimizer.kind]
    lr_value = opt_args.pop("lr")

    # the forward pass in training mode
    fwd = {f"loss:{k}": model.losses[k].node for k in model.losses}
    fwd.update({f"metric:{k}": v for k, v in model.metrics.items()})
    fwd.update({f"state:{k}": v for k, v in model.state_updates.items()})
    fwd, _ = passes.specialize(fwd, "train")
    fwd = opt(fwd, passes=passes.FORWARD)               # loops hoisted before BPTT differentiates them
    fwd_leaves = _leaves(fwd)
    used = {n.attrs["name"]: n for n in fwd_leaves["param"]}
    read_states = {n.attrs["name"] for n in fwd_leaves["state"]}

    with at(setup.loc):
        step_in = input_("step", TensorType("i64", ()))
        lr_in = input_("lr", TensorType("f32", ()))
        ti = step_in + const(1, "i64")                       # t = 1 at the first step
        t = P("cast", ti, dtype="f32")
        # lr given as an expression of t: the `lr` input multiplies it (default 1)
        base_lr = lr_in * (lr_value(t) if callable(lr_value) else 1.0)
        lr_t = base_lr * schedule_factor(setup.schedule, t, ti)
        select = input_("loss_select", TensorType("i64", ())) if len(order) > 1 else None

        carried: list[dict] = []               # manifest entries
        new: dict[str, Node] = {}              # carried input name -> new value node
        leaves: dict[str, Node] = dict(used)   # carried input name -> leaf node
        slot_leaf = {}
        for path, p in used.items():
            for s in rule.slots(opt_args):
                nm = f"{path}.{s}"
                slot_leaf[nm] = state_leaf(nm, p.type, ("zeros",))

        for k, lname in enumerate(order):
            loss = model.losses[lname]
            targets = [p for p in model.params_of(loss) if p in used]
            if not targets:
                raise SpecError(f"loss `{lname}` updates no params (check its `wrt`)", loss.loc)
            gs = grad(fwd[f"loss:{lname}"], [used[p] for p in targets], loc=loss.loc)
            gs = _regularize(setup, targets, used, gs)
            for path, g in zip(targets, gs):
                p = used[path]
                lr_p = lr_t * _lr_scale(setup, path)
                if p.dtype != "f32":
                    lr_p = P("cast", lr_p, dtype=p.dtype)
                # the update starts from this run's inputs (one loss is applied per run)
                start = {s: slot_leaf[f"{path}.{s}"] for s in rule.slots(opt_args)}
                th_new, slots_new = rule.step(p, g, start, lr_p,
                                              t if p.dtype == "f32" else P("cast", t, dtype=p.dtype), **opt_args)
                if select is not None:                 # apply only when this loss is selected,
                    on = P("eq", select, const(k, "i64"))   # else keep what an earlier loss chose
                    th_new = P("where", on, th_new, new.get(path, p))
                    slots_new = {s: P("where", on, v, new.get(f"{path}.{s}", start[s])) for s, v in slots_new.items()}
                new[path] = th_new
                for s, v in slots_new.items():
                    new[f"{path}.{s}"] = v

        for path, p in used.items():
            entry = {"input": path, "output": f"{path}.next", "kind": "param", "dtype": NP_NAME[p.dtype],
                     "shape": list(p.shape), "init": _init_text(p)}
            carried.append(entry)
            new.setdefault(path, p)
        for nm, leaf in slot_leaf.items():
            leaves[nm] = leaf
            new.setdefault(nm, leaf)
            carried.append({"input": nm, "output": f"{nm}.next", "kind": "slot", "param": nm.rsplit(".", 1)[0],
                            "dtype": NP_NAME[leaf.dtype], "shape": list(leaf.shape), "init": "zeros"})
        for path, s in model.states.items():
            if f"state:{path}" in fwd or path in read_states:
                leaves[path] = s
                new[path] = fwd.get(f"state:{path}", s)
                carried.append({"input": path, "output": f"{path}.next", "kind": "state",
                                "dtype": NP_NAME[s.dtype], "shape": list(s.shape), "init": _init_text(s)})
        if setup.average is not None:           # Polyak: θ̄ ← α θ̄ + (1 − α) θ  (or 1/t averaging)
            for path, p in used.items():
                nm = f"{path}.avg"
                avg = state_leaf(nm, p.type, p.attrs["init"])
                leaves[nm] = avg
                tp = t if p.dtype == "f32" else P("cast", t, dtype=p.dtype)
                a = setup.average
                new[nm] = avg + (new[path] - avg) / tp if a == "linear" else a * avg + (1.0 - a) * new[path]
                carried.append({"input": nm, "output": f"{nm}.next", "kind": "average", "param": path,
                                "dtype": NP_NAME[p.dtype], "shape": list(p.shape), "init": "param"})
        leaves["step"] = step_in
        new["step"] = ti
        carried.append({"input": "step", "output": "step.next", "kind": "step", "dtype": "int64",
                        "shape": [], "init": "0"})

    roots = {k: fwd[f"loss:{k}"] for k in model.losses}
    roots.update({k: fwd[f"metric:{k}"] for k in model.metrics})
    roots.update({f"{nm}.next": v for nm, v in new.items()})
    roots = opt(roots)
    c.graphs["training"] = roots

    for e in carried:
        nm = e["input"]
        if e["kind"] in ("param", "state"):
            e["value"] = values[nm]
        elif e["kind"] == "average":
            e["value"] = values[e["param"]]
        elif e["kind"] == "slot":
            e["value"] = np.zeros(e["shape"], dtype=e["dtype"])
        else:
            e["value"] = np.zeros((), dtype=np.int64)
    inits = {e["input"]: e.pop("value") for e in carried}

    data_inputs = _with_dim_inputs(model, roots,
                                   [n for n in _leaves(roots)["input"] if n.attrs["name"] in model.inputs])
    graph_inputs = data_inputs + [leaves[e["input"]] for e in carried] + [lr_in] + ([select] if select else [])
    hyper_init = {"lr": np.asarray(1.0 if callable(lr_value) else lr_value, dtype=np.float32)}
    hyper = [{"name": "lr", "dtype": "float32", "default": float(hyper_init["lr"]),
              **({"doc": "multiplier on the spec's lr expression"} if callable(lr_value) else {})}]
    if select is not None:
        hyper_init["loss_select"] = np.asarray(0, dtype=np.int64)
    if any(n.op.startswith("random_") for n in Graph(roots).order()):
        # the run's seed keys the graph's own random draws (with the step counter)
        graph_inputs.append(input_("seed", TensorType("i64", ())))
        hyper_init["seed"] = np.asarray(setup.seed, dtype=np.int64)
        hyper.append({"name": "seed", "dtype": "int64", "default": int(setup.seed),
                      "doc": "keys the random draws (dropout, normal, ...) with the step counter"})
    g = lower_graph(roots, graph_inputs, {**inits, **hyper_init}, name=model.name + "_train",
                    base_seed=setup.seed, rng_counter="step",
                    rng_seed="seed" if "seed" in hyper_init else None)
    manifest = {
        "version": 1, "role": "training", "model": model.name,
        "data": _data_entries(data_inputs),
        "carried": carried,
        "hyper": hyper,
        "losses": list(model.losses), "metrics": list(model.metrics),
        "steps": list(steps),
        "select": ({"input": "loss_select", "values": {n: i for i, n in enumerate(order)}} if select else None),
        "train": _train_settings(setup),
        "spec": model.loc.filename if model.loc else None,
    }
    return make_model(g, {"dslc.manifest": json.dumps(manifest)}, doc=_doc(model))


def _init_text(n: Node) -> str:
    kind, *args = n.attrs["init"]
    return kind + (f"({', '.join(map(str, args))})" if args else "")


def _is_weight(p: Node) -> bool:
    """Weights (rank >= 2: matrices, kernels, embeddings) get decay; biases and scales don't."""
    return p.rank >= 2


def _regularize(setup: TrainSetup, targets, used, gs):
    out = list(gs)
    if setup.clip is not None:                 # g ← g · min(1, c / (‖g‖ + 1e-6)), ‖·‖ over all params
        sq = None
        for g in out:
            s = P("sum", g * g, axes=tuple(range(g.rank)), keepdims=False)
            s = P("cast", s, dtype="f32") if s.dtype != "f32" else s
            sq = s if sq is None else sq + s
        scale = P("minimum", const(1.0), setup.clip / (P("sqrt", sq) + 1e-6))
        out = [g * (scale if g.dtype == "f32" else P("cast", scale, dtype=g.dtype)) for g in out]
    for i, path in enumerate(targets):
        p = used[path]
        if not _is_weight(p):
            continue
        if setup.weight_decay:                 # g ← g + μ θ
            out[i] = out[i] + setup.weight_decay * p
        if setup.l1:                           # g ← g + μ sign(θ)
            out[i] = out[i] + setup.l1 * P("sign", p)
    return out


def _lr_scale(setup: TrainSetup, path: str) -> float:
    best, f = -1, 1.0
    for group, v in setup.lr_scale.items():
        if (path == group or path.startswith(group + ".")) and len(group) > best:
            best, f = len(group), float(v)
    return f


def _train_settings(setup: TrainSetup) -> dict:
    es = None
    if setup.early_stopping:
        patience, metric = setup.early_stopping
        es = {"patience": int(patience), "metric": metric,
              "mode": "min" if "loss" in metric else "max"}
    return {"data": setup.data, "split": setup.split, "valid": setup.valid, "batch": setup.batch,
            "epochs": setup.epochs, "seed": setup.seed, "early_stopping": es}
