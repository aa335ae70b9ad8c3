"""One training step as IR, from a checked model and its train block.

The step is described once and built three ways (compile.py lowers each):
fused (forward, gradients and update in one graph), gradient (forward and
gradients only) and apply (the update from given gradients). The pieces:

- `Plan`: the forward pass in training mode, which loss updates which params,
  the optimizer rule and the step's scalar inputs (step, lr, loss_select);
- `Carried`: a tensor fed back each step (name, kind, leaf, init, value), used
  both to build the graph and to write its manifest entry;
- gradient transforms (clip, weight decay, L1): IR functions on the gradients,
  applied in order before the optimizer rule;
- `update`: the optimizer rule on each loss's transformed gradients, kept only
  for the selected loss; `polyak`: the running averages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dslc_runtime import manifest as M

from . import passes
from .autodiff import grad
from .errors import SpecError
from .ir.graph import Graph
from .ir.model import Model, TrainSetup
from .ir.node import Node, apply as P, at, const
from .ir.types import TensorType
from .ops.leaves import input_, state as state_leaf
from .optim import OPTIMIZERS, OptimizerRule, resolve_args, schedule_factor

NP_NAME = {"f32": "float32", "f64": "float64", "i64": "int64", "bool": "bool"}


def _as(x: Node, dtype: str) -> Node:
    return x if x.dtype == dtype else P("cast", x, dtype=dtype)


def leaves_of(roots: dict[str, Node]) -> dict[str, list[Node]]:
    order = Graph(roots).order()
    return {op: [n for n in order if n.op == op] for op in ("input", "param", "state")}


# -- the plan ------------------------------------------------------------------------
@dataclass
class Plan:
    """What every form of the training step is built from."""
    model: Model
    setup: TrainSetup
    rule: OptimizerRule
    args: dict                          # optimizer arguments other than lr
    lr: object                          # the spec's lr: a number or a function of t
    order: list[str]                    # the losses `steps` uses, each once: select value = index
    fwd: dict[str, Node]                # loss:/metric:/state: roots in training mode
    used: dict[str, Node]               # param path -> leaf, for the params the forward reads
    targets: dict[str, list[str]]       # loss -> the param paths it updates
    states: dict[str, Node]             # state path -> leaf, for the states the step carries
    step: Node = None                   # int64 step counter input (0 at the first step)
    lr_in: Node = None                  # f32 lr input (a multiplier when lr is an expression of t)
    select: Node | None = None          # int64 loss_select input, with several losses
    t: Node = None                      # f32 t = step + 1
    lr_t: Node = None                   # the scheduled learning rate at t

    @property
    def trained(self) -> list[str]:
        """Params some loss updates, in forward order: those that get a gradient."""
        hit = {p for ps in self.targets.values() for p in ps}
        return [p for p in self.used if p in hit]


def plan(model: Model, setup: TrainSetup, forward=None) -> Plan:
    """forward: a pass over the training-mode forward graph before it is differentiated
    (the compiler hoists loops there, so BPTT differentiates the hoisted loop)."""
    args = resolve_args(setup.optimizer.kind, setup.optimizer.args)
    lr = args.pop("lr")
    fwd = {f"loss:{k}": v.node for k, v in model.losses.items()}
    fwd.update({f"metric:{k}": v for k, v in model.metrics.items()})
    fwd.update({f"state:{k}": v for k, v in model.state_updates.items()})
    fwd, _ = passes.specialize(fwd, "train")
    if forward is not None:
        fwd = forward(fwd)
    leaves = leaves_of(fwd)
    used = {n.attrs["name"]: n for n in leaves["param"]}
    read = {n.attrs["name"] for n in leaves["state"]}
    order = list(dict.fromkeys(setup.steps or list(model.losses)))
    targets = {}
    for lname in order:
        loss = model.losses[lname]
        targets[lname] = [p for p in model.params_of(loss) if p in used]
        if not targets[lname]:
            raise SpecError(f"loss `{lname}` updates no params (check its `wrt`)", loss.loc)
    states = {p: s for p, s in model.states.items() if f"state:{p}" in fwd or p in read}
    pl = Plan(model, setup, OPTIMIZERS[setup.optimizer.kind], args, lr, order, fwd, used, targets, states)
    with at(setup.loc):
        _scalars(pl)
    return pl


def _scalars(pl: Plan) -> None:
    pl.step = input_("step", TensorType("i64", ()))
    pl.lr_in = input_("lr", TensorType("f32", ()))
    ti = pl.step + const(1, "i64")                       # t = 1 at the first step
    pl.t = P("cast", ti, dtype="f32")
    # lr given as an expression of t: the `lr` input multiplies it (default 1)
    base = pl.lr_in * (pl.lr(pl.t) if callable(pl.lr) else 1.0)
    pl.lr_t = base * schedule_factor(pl.setup.schedule, pl.t, ti)
    if len(pl.order) > 1:
        pl.select = input_("loss_select", TensorType("i64", ()))


# -- carried tensors -----------------------------------------------------------------
@dataclass
class Carried:
    """A tensor the step feeds back: graph input `name`, output `name.next`."""
    name: str
    kind: str                           # one of dslc_runtime.manifest.KINDS
    leaf: Node
    init: str                           # the manifest's description of the initial value
    value: np.ndarray                   # the initial value (the input's initializer)
    param: str | None = None            # the param of an average
    loss: str | None = None             # the loss a loss_step counts
    params: tuple | None = None         # the params a flat slot packs, in order

    def entry(self) -> M.Carried:
        return M.Carried(self.name, f"{self.name}.next", self.kind, NP_NAME[self.leaf.dtype],
                         tuple(self.leaf.shape), self.init, self.param, self.loss, self.params)


def init_text(n: Node) -> str:
    kind, *args = n.attrs["init"]
    return kind + (f"({', '.join(map(str, args))})" if args else "")


@dataclass
class Group:
    """Params updated together: one dtype, one lr factor, the same losses updating
    them. Small params are packed: the gradients are flattened and concatenated in
    `paths` order, the rule runs once on the flat vector, each slot is one carried
    vector `name.<slot>` in the same layout, and the step Δ is cut back into one
    piece per param (θ ← θ − Δ[piece]). A large param is a group of its own, with
    its slots `<path>.<slot>` in its own shape."""
    name: str
    dtype: str
    scale: float                        # lr_scale factor
    losses: tuple                       # the losses that update these params
    paths: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(self.sizes)

    @property
    def packed(self) -> bool:
        return len(self.paths) > 1


PACK_MAX = 1 << 18      # elements: small params share flat vectors up to this size; larger ones keep their own


def groups(pl: Plan) -> list[Group]:
    """The trained params grouped by (dtype, lr factor, updating losses), in forward
    order, each group cut into packs of at most PACK_MAX elements. Packing saves
    kernels on small params; a param of PACK_MAX or more stays alone, where a
    concatenation would cost a copy and the update would no longer fit in cache."""
    open_: dict[tuple, Group] = {}
    out: list[Group] = []
    for path in pl.trained:
        p = pl.used[path]
        n = int(np.prod(p.shape, dtype=np.int64))
        key = (p.dtype, lr_scale(pl.setup, path), tuple(ln for ln in pl.order if path in pl.targets[ln]))
        grp = open_.get(key) if n < PACK_MAX else None
        if grp is None or grp.size + n > PACK_MAX:
            grp = Group("", *key)
            out.append(grp)
            if n < PACK_MAX:
                open_[key] = grp
        grp.paths.append(path)
        grp.sizes.append(n)
    stem = "opt"
    while any(p == stem or p.startswith(stem + ".") for p in pl.used):   # never a param's own name
        stem += "_"
    packs = 0
    for grp in out:
        if grp.packed:
            grp.name = stem + (f".{packs}" if packs else "")
            packs += 1
        else:
            grp.name = grp.paths[0]
    return out


def carried(pl: Plan, values: dict[str, np.ndarray]) -> dict[str, Carried]:
    """Every carried tensor of the fused step, in manifest order: params, slots,
    states, averages, the step counter and the per-loss step counters."""
    out = {p: Carried(p, "param", n, init_text(n), values[p]) for p, n in pl.used.items()}
    for grp in groups(pl):
        ty = TensorType(grp.dtype, (grp.size,)) if grp.packed else pl.used[grp.paths[0]].type
        for s in pl.rule.slots(pl.args):
            nm = f"{grp.name}.{s}"
            out[nm] = Carried(nm, "slot", state_leaf(nm, ty, ("zeros",)), "zeros",
                              np.zeros(ty.shape, dtype=NP_NAME[grp.dtype]), params=tuple(grp.paths))
    out.update({p: Carried(p, "state", s, init_text(s), values[p]) for p, s in pl.states.items()})
    if pl.setup.average is not None:
        for path, p in pl.used.items():
            nm = f"{path}.avg"
            out[nm] = Carried(nm, "average", state_leaf(nm, p.type, p.attrs["init"]), "param",
                              values[path], param=path)
    out["step"] = Carried("step", "step", pl.step, "0", np.zeros((), np.int64))
    if len(pl.order) > 1 and pl.rule.counts_steps:   # each loss counts its own updates
        for lname in pl.order:
            nm = f"step.{lname}"
            out[nm] = Carried(nm, "loss_step", state_leaf(nm, TensorType("i64", ()), ("zeros",)), "0",
                              np.zeros((), np.int64), loss=lname)
    return out


# -- gradient transforms: g -> g', in order, before the optimizer rule ---------------------
def clip(setup: TrainSetup, params: list[Node], gs: list[Node]) -> list[Node]:
    """g ← g · min(1, c / (‖g‖ + 1e-6)), ‖·‖ the global norm over all the loss's params."""
    if setup.clip is None:
        return gs
    sq = None
    for g in gs:
        s = _as(P("sum", g * g, axes=tuple(range(g.rank)), keepdims=False), "f32")
        sq = s if sq is None else sq + s
    scale = P("minimum", const(1.0), setup.clip / (P("sqrt", sq) + 1e-6))
    return [g * _as(scale, g.dtype) for g in gs]


def is_weight(p: Node) -> bool:
    """Weights (rank >= 2: matrices, kernels, embeddings) get decay; biases and scales don't."""
    return p.rank >= 2


def weight_decay(setup: TrainSetup, params: list[Node], gs: list[Node]) -> list[Node]:
    """g ← g + μ θ on weights."""
    if not setup.weight_decay:
        return gs
    return [g + setup.weight_decay * p if is_weight(p) else g for p, g in zip(params, gs)]


def l1(setup: TrainSetup, params: list[Node], gs: list[Node]) -> list[Node]:
    """g ← g + μ sign(θ) on weights."""
    if not setup.l1:
        return gs
    return [g + setup.l1 * P("sign", p) if is_weight(p) else g for p, g in zip(params, gs)]


GRADIENT_TRANSFORMS: list[Callable] = [clip, weight_decay, l1]


def transform(setup: TrainSetup, params: list[Node], gs: list[Node]) -> list[Node]:
    for f in GRADIENT_TRANSFORMS:
        gs = f(setup, params, gs)
    return gs


# -- the update ------------------------------------------------------------------------
def loss_gradients(pl: Plan, lname: str) -> list[Node]:
    """d loss / d θ for the params `lname` updates (the model's own autodiff)."""
    loss = pl.model.losses[lname]
    return grad(pl.fwd[f"loss:{lname}"], [pl.used[p] for p in pl.targets[lname]], loc=loss.loc)


def selected(select: Node | None, k: int) -> Node | None:
    """`loss_select == k` (the k-th loss of the order is this run's), or None with one loss."""
    return None if select is None else P("eq", select, const(k, "i64"))


def update(pl: Plan, car: dict[str, Carried], grads_of: Callable[[str], list[Node]]) -> dict[str, Node]:
    """New values of params, slots and loss steps: for each loss in turn, its
    gradients (`grads_of(loss)`, one per target) transformed and handed to the
    optimizer rule, one run per group of params; with several losses only the
    selected loss's update is kept."""
    new: dict[str, Node] = {}
    grps = groups(pl)
    for k, lname in enumerate(pl.order):
        paths = pl.targets[lname]
        gs = dict(zip(paths, transform(pl.setup, [pl.used[p] for p in paths], grads_of(lname))))
        on = selected(pl.select, k)
        t = _loss_t(car, lname, on, new, pl.t)
        for grp in grps:
            if lname in grp.losses:
                _group_step(pl, car, grp, gs, t, on, new)
    return new


def _loss_t(car: dict[str, Carried], lname: str, on, new: dict, t: Node) -> Node:
    """The t the optimizer's bias correction sees: the loss's own update count when kept."""
    c = car.get(f"step.{lname}")
    if c is None:
        return t
    ti = c.leaf + const(1, "i64")
    new[c.name] = P("where", on, ti, c.leaf)
    return P("cast", ti, dtype="f32")


def _group_step(pl: Plan, car: dict, grp: Group, gs: dict[str, Node], t: Node, on, new: dict) -> None:
    lr = _as(pl.lr_t * grp.scale, grp.dtype)
    t = _as(t, grp.dtype)
    names = pl.rule.slots(pl.args)
    if not names or not grp.packed:      # Δ per param (without slots nothing is kept flat)
        for path in grp.paths:
            p = pl.used[path]
            start = {s: car[f"{path}.{s}"].leaf for s in names}
            d, slots = pl.rule.step(gs[path], start, lr, t, **pl.args)
            _keep(new, path, p - d, on, p)
            for s, v in slots.items():
                _keep(new, f"{path}.{s}", v, on, start[s])
        return
    # the update starts from this run's inputs (one loss is applied per run)
    start = {s: car[f"{grp.name}.{s}"].leaf for s in names}
    flat = P("concat", *[P("reshape", gs[path], shape=(n,)) for path, n in zip(grp.paths, grp.sizes)], axis=0)
    d, slots = pl.rule.step(flat, start, lr, t, **pl.args)
    at_ = 0
    for path, n in zip(grp.paths, grp.sizes):
        p = pl.used[path]
        _keep(new, path, p - P("reshape", P("slice", d, spec=((0, at_, at_ + n, 1),)), shape=p.shape), on, p)
        at_ += n
    for s, v in slots.items():
        _keep(new, f"{grp.name}.{s}", v, on, start[s])


def _keep(new: dict, name: str, value: Node, on, start: Node) -> None:
    # apply only when this loss is selected, else keep what an earlier loss chose
    new[name] = value if on is None else P("where", on, value, new.get(name, start))


def lr_scale(setup: TrainSetup, path: str) -> float:
    """The factor of the longest lr_scale group holding `path` (1 when none)."""
    best, f = -1, 1.0
    for group, v in setup.lr_scale.items():
        if (path == group or path.startswith(group + ".")) and len(group) > best:
            best, f = len(group), float(v)
    return f


def polyak(pl: Plan, car: dict[str, Carried], new: dict[str, Node]) -> None:
    """θ̄ ← α θ̄ + (1 − α) θ, or θ̄ ← θ̄ + (θ − θ̄) / t for polyak() (1/t averaging)."""
    a = pl.setup.average
    for c in car.values():
        if c.kind != "average":
            continue
        avg, th = c.leaf, new.get(c.param, pl.used[c.param])
        new[c.name] = avg + (th - avg) / _as(pl.t, th.dtype) if a == "linear" else a * avg + (1.0 - a) * th


def apply_step(pl: Plan, car: dict[str, Carried], grads_of) -> dict[str, Node]:
    """`name.next` -> new value for every carried tensor but the states."""
    with at(pl.setup.loc):
        new = update(pl, car, grads_of)
        polyak(pl, car, new)
        new["step"] = pl.step + const(1, "i64")
    return {f"{nm}.next": new.get(nm, c.leaf) for nm, c in car.items() if c.kind != "state"}


def state_updates(pl: Plan) -> dict[str, Node]:
    """`path.next` -> new value of each carried state (the forward's update, or itself)."""
    return {f"{p}.next": pl.fwd.get(f"state:{p}", s) for p, s in pl.states.items()}


def outputs(pl: Plan) -> dict[str, Node]:
    """The losses and metrics, computed on every run."""
    roots = {k: pl.fwd[f"loss:{k}"] for k in pl.model.losses}
    roots.update({k: pl.fwd[f"metric:{k}"] for k in pl.model.metrics})
    return roots


def gradient_outputs(pl: Plan) -> dict[str, Node]:
    """`grad.<path>` for each trained param: the selected loss's gradient (zeros for
    params that loss does not update)."""
    out: dict[str, Node] = {}
    with at(pl.setup.loc):
        for k, lname in enumerate(pl.order):
            gs = dict(zip(pl.targets[lname], loss_gradients(pl, lname)))
            on = selected(pl.select, k)
            for path in pl.trained:
                p = pl.used[path]
                g = gs.get(path)
                if on is None:
                    out[f"grad.{path}"] = g
                    continue
                prev = out.get(f"grad.{path}", const(np.zeros(p.shape, dtype=NP_NAME[p.dtype])))
                out[f"grad.{path}"] = prev if g is None else P("where", on, g, prev)
    return out
