"""The `dslc.manifest` metadata of a compiled model: what its inputs and
outputs mean (INTERFACE.md; the full reference is docs/manifest.md).

This file is the manifest's one schema: typed dataclasses that the compiler
builds and writes (`Manifest.to_json`) and the runtime reads and validates
(`parse_manifest`, `read_manifest`). The runtime never imports the compiler;
the compiler imports this module.

    read_manifest(model)  -> Manifest   (validated against the graph)
    write_manifest(model, manifest)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import onnx

from .errors import ManifestError

KEY = "dslc.manifest"
VERSION = 1
DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16,
          "int64": np.int64, "int32": np.int32, "int8": np.int8, "uint8": np.uint8,
          "bool": np.bool_}
ROLES = ("training", "evaluation", "gradient", "apply", "forward_stage", "backward_stage")
COMBINES = ("sum", "max", "min")
# param: trained; state: running statistics; slot: optimizer state of `params`
# (one flat vector: each param's state flattened, concatenated in that order);
# average: Polyak average of `param`; step: the step counter (t = step + 1);
# loss_step: how many updates loss `loss` has made (its own t, for bias correction)
KINDS = ("param", "state", "slot", "average", "step", "loss_step")
MODES = ("min", "max")


def stopping_mode(watched: str, losses, mode: str | None = None) -> str:
    """Early stopping's direction, decided here only: a loss (any name, with or
    without `val_`) is minimized; a metric is maximized unless it says `mode`."""
    base = watched[4:] if watched.startswith("val_") else watched
    if base in losses or watched in losses:
        return "min"
    return mode or "max"


@dataclass(frozen=True)
class DataInput:
    """A data input: `shape` holds ints and symbolic dims (strings); `batch_axis`
    is the axis that indexes examples, or None when the array is fed whole."""
    name: str
    dtype: str
    shape: tuple
    batch_axis: int | None
    classes: int | None = None     # class-index labels: every value must lie in [0, classes)

    @property
    def np_dtype(self):
        return np.dtype(DTYPES[self.dtype])


@dataclass(frozen=True)
class Carried:
    """A tensor fed back each step: `output` of one run is `input` of the next.
    `param` names the param an average belongs to; `params` the params a slot
    packs (flattened and concatenated in that order); `loss` the loss a
    loss_step counts."""
    input: str
    output: str
    kind: str
    dtype: str
    shape: tuple
    init: Any = None
    param: str | None = None
    loss: str | None = None
    params: tuple | None = None


@dataclass(frozen=True)
class Hyper:
    """A scalar input with a default (lr, seed, row_offset, ...)."""
    name: str
    dtype: str
    default: float
    doc: str | None = None


@dataclass(frozen=True)
class Select:
    """With several losses: the int64 input choosing which loss this run updates."""
    input: str
    values: dict            # loss name -> int


@dataclass(frozen=True)
class Grad:
    """A param's gradient: an output of the gradient graph, an input of the apply graph."""
    param: str
    name: str               # "grad.<param path>"
    dtype: str
    shape: tuple


@dataclass(frozen=True)
class SyncPoint:
    """A batch statistic (e.g. batch norm's mean) that data-parallel workers
    agree on before the step goes on (docs/parallel.md): input `input` of the
    sync graphs, this worker's share `part` (forward stage of `depth`), the
    adjoint `grad` (an output: this worker's contribution) and `cot` (the
    backward stage's input: the adjoint summed over the workers)."""
    input: str
    part: str
    grad: str
    cot: str
    dtype: str
    shape: tuple
    depth: int
    combine: str            # how the workers' parts combine: "sum" | "max" | "min"


@dataclass(frozen=True)
class EarlyStopping:
    patience: int
    metric: str
    mode: str               # "min" | "max" (see stopping_mode)


@dataclass(frozen=True)
class TrainSettings:
    """The train block's loop settings (the graph holds the rest)."""
    data: str | None = None
    split: float | None = None
    valid: str | None = None
    batch: int | None = None
    epochs: int | None = None
    seed: int | None = None
    early_stopping: EarlyStopping | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Manifest:
    """One graph's manifest.

    training:   data + carried + hyper (+ select) -> losses, metrics, carried outputs
    evaluation: data + `params` (param/state inputs) -> losses, metrics
    gradient:   data + `params` + `step` + carried states + hyper (seed, row_offset,
                select) -> losses, metrics, `grads` outputs, carried state outputs
    apply:      carried params/slots/averages/steps + `grads` inputs + hyper (lr,
                select) -> carried outputs
    `row_offset` names the int64 hyper added to the row index random draws hash."""
    role: str
    model: str = ""
    data: list[DataInput] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    carried: list[Carried] = field(default_factory=list)
    hyper: list[Hyper] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    select: Select | None = None
    train: TrainSettings = field(default_factory=TrainSettings)
    params: list[str] = field(default_factory=list)
    grads: list[Grad] = field(default_factory=list)
    step: str | None = None
    row_offset: str | None = None
    spec: str | None = None
    sync: list[SyncPoint] = field(default_factory=list)
    shard_weight: str | None = None      # hyper input: b_s / B, this worker's share of the batch
    depth: int | None = None             # a stage graph's depth
    version: int = VERSION

    def carried_by_input(self) -> dict[str, Carried]:
        return {c.input: c for c in self.carried}

    def averages(self) -> dict[str, str]:
        """param input name -> input name of its Polyak average."""
        return {c.param: c.input for c in self.carried if c.kind == "average"}

    def to_json(self) -> dict:
        """The JSON object stored in the model (drops empty optional fields)."""
        out = {"version": self.version, "role": self.role}
        for f in fields(self):
            if f.name in out:
                continue
            v = getattr(self, f.name)
            if v in (None, [], "") and f.name not in ("select", "spec", "losses", "metrics"):
                continue
            out[f.name] = asdict(v) if hasattr(v, "__dataclass_fields__") else \
                [asdict(x) if hasattr(x, "__dataclass_fields__") else x for x in v] if isinstance(v, list) else v
        return out


# -- reading: form --------------------------------------------------------------------
def _need(obj: dict, key: str, where: str, types) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ManifestError(f"manifest: {where} has no `{key}`")
    return _typed(obj[key], f"{where}.{key}", types)


def _typed(val, where: str, types):
    if not isinstance(val, types) or (isinstance(val, bool) and bool not in _tuple(types)):
        raise ManifestError(f"manifest: {where} should be {_tname(types)}, found {val!r}")
    return val


def _tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _tname(types) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in _tuple(types))


def _opt(obj: dict, key: str, where: str, types, default=None):
    return _typed(obj[key], f"{where}.{key}", types) if obj.get(key) is not None else default


def _one_of(val: str, allowed, what: str) -> str:
    """val, or an error `manifest: <what> <val>; expected one of ...`."""
    if val not in allowed:
        raise ManifestError(f"manifest: {what} {val!r}; expected one of {', '.join(allowed)}")
    return val


def _dtype(val: str, where: str) -> str:
    return _one_of(val, DTYPES, f"{where} has dtype")


def _shape(val, where: str) -> tuple:
    if not isinstance(val, list) or not all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in val):
        raise ManifestError(f"manifest: {where}.shape should be a list of ints and dim names, found {val!r}")
    return tuple(val)


def _known_keys(obj: dict, cls, where: str) -> None:
    unknown = set(obj) - {f.name for f in fields(cls)}
    if unknown:
        raise ManifestError(f"manifest: {where} has unknown field(s) {', '.join(sorted(unknown))}; "
                            f"expected {', '.join(f.name for f in fields(cls))}")


def _names(obj: dict, key: str, where: str) -> list[str]:
    val = _opt(obj, key, where, list, [])
    for i, v in enumerate(val):
        _typed(v, f"{where}.{key}[{i}]", str)
    return list(val)


def _parse_data(items, where: str) -> list[DataInput]:
    out = []
    for i, d in enumerate(_typed(items, where, list)):
        w = f"{where}[{i}]"
        name = _need(d, "name", w, str)
        shape = _shape(_need(d, "shape", w, list), f"data `{name}`")
        axis = d.get("batch_axis", 0 if shape else None)
        if axis is not None and (not isinstance(axis, int) or not -len(shape) <= axis < len(shape)):
            raise ManifestError(f"manifest: data `{name}` has batch_axis {axis!r} outside its rank {len(shape)}")
        if axis is not None and axis < 0:
            axis += len(shape)
        classes = d.get("classes")
        if classes is not None and (not isinstance(classes, int) or isinstance(classes, bool) or classes < 1):
            raise ManifestError(f"manifest: data `{name}` has classes {classes!r}; expected a positive integer")
        out.append(DataInput(name, _dtype(_need(d, "dtype", w, str), f"data `{name}`"), shape, axis, classes))
    return out


def _parse_carried(c, w: str) -> Carried:
    _known_keys(c, Carried, w)
    name = _need(c, "input", w, str)
    kind = _one_of(_need(c, "kind", w, str), KINDS, f"carried `{name}` has kind")
    return Carried(name, _need(c, "output", w, str), kind, _dtype(_need(c, "dtype", w, str), f"carried `{name}`"),
                   _shape(_need(c, "shape", w, list), f"carried `{name}`"), c.get("init"),
                   _opt(c, "param", w, str), _opt(c, "loss", w, str), _param_list(c, w))


def _param_list(c: dict, w: str) -> tuple | None:
    val = _opt(c, "params", w, list)
    if val is None:
        return None
    for i, v in enumerate(val):
        _typed(v, f"{w}.params[{i}]", str)
    return tuple(val)


def _parse_hyper(h, w: str) -> Hyper:
    _known_keys(h, Hyper, w)
    return Hyper(_need(h, "name", w, str), _dtype(h.get("dtype", "float32"), w),
                 _need(h, "default", w, (int, float)), _opt(h, "doc", w, str))


def _parse_grad(g, w: str) -> Grad:
    _known_keys(g, Grad, w)
    name = _need(g, "name", w, str)
    return Grad(_need(g, "param", w, str), name, _dtype(_need(g, "dtype", w, str), f"grad `{name}`"),
                _shape(_need(g, "shape", w, list), f"grad `{name}`"))


def _parse_sync(p, w: str) -> SyncPoint:
    _known_keys(p, SyncPoint, w)
    name = _need(p, "input", w, str)
    combine = _one_of(_need(p, "combine", w, str), COMBINES, f"sync `{name}` combines by")
    return SyncPoint(name, _need(p, "part", w, str), _need(p, "grad", w, str), _need(p, "cot", w, str),
                     _dtype(_need(p, "dtype", w, str), f"sync `{name}`"), _shape(_need(p, "shape", w, list),
                     f"sync `{name}`"), _need(p, "depth", w, int), combine)


def _parse_select(s) -> Select | None:
    if s is None:
        return None
    if not isinstance(s, dict) or not isinstance(s.get("input"), str) or not isinstance(s.get("values"), dict):
        raise ManifestError("manifest: select should be {\"input\": name, \"values\": {loss: int}}, "
                            f"found {s!r}")
    for k, v in s["values"].items():
        _typed(v, f"select.values.{k}", int)
    return Select(s["input"], dict(s["values"]))


def _parse_train(t) -> TrainSettings:
    t = _typed(t if t is not None else {}, "train", dict)
    _known_keys(t, TrainSettings, "train")
    es = t.get("early_stopping")
    if es is not None:
        _known_keys(_typed(es, "train.early_stopping", dict), EarlyStopping, "train.early_stopping")
        mode = _need(es, "mode", "train.early_stopping", str)
        if mode not in MODES:
            raise ManifestError(f"manifest: train.early_stopping.mode is {mode!r}; expected min or max")
        es = EarlyStopping(_need(es, "patience", "train.early_stopping", int),
                           _need(es, "metric", "train.early_stopping", str), mode)
    w = "train"
    return TrainSettings(_opt(t, "data", w, str), _opt(t, "split", w, (int, float)), _opt(t, "valid", w, str),
                         _opt(t, "batch", w, int), _opt(t, "epochs", w, int), _opt(t, "seed", w, int), es)


def parse_manifest(obj: dict) -> Manifest:
    """Check the JSON object's form (not yet against a graph) and build a Manifest."""
    if not isinstance(obj, dict):
        raise ManifestError(f"manifest: expected a JSON object, found {type(obj).__name__}")
    version = obj.get("version")
    if version != VERSION:
        raise ManifestError(f"manifest: version {version!r} is not supported (expected {VERSION})")
    _known_keys(obj, Manifest, "manifest")
    role = _one_of(_need(obj, "role", "manifest", str), ROLES, "role")
    w = "manifest"
    m = Manifest(role=role, model=_opt(obj, "model", w, str, ""),
                 data=_parse_data(obj.get("data", []), "data"),
                 losses=_names(obj, "losses", w), metrics=_names(obj, "metrics", w),
                 carried=[_parse_carried(c, f"carried[{i}]") for i, c in enumerate(_opt(obj, "carried", w, list, []))],
                 hyper=[_parse_hyper(h, f"hyper[{i}]") for i, h in enumerate(_opt(obj, "hyper", w, list, []))],
                 grads=[_parse_grad(g, f"grads[{i}]") for i, g in enumerate(_opt(obj, "grads", w, list, []))],
                 select=_parse_select(obj.get("select")), train=_parse_train(obj.get("train")),
                 params=_names(obj, "params", w), step=_opt(obj, "step", w, str),
                 row_offset=_opt(obj, "row_offset", w, str), spec=_opt(obj, "spec", w, str),
                 sync=[_parse_sync(p, f"sync[{i}]") for i, p in enumerate(_opt(obj, "sync", w, list, []))],
                 shard_weight=_opt(obj, "shard_weight", w, str), depth=_opt(obj, "depth", w, int))
    m.steps = _names(obj, "steps", w) or (m.losses[:1] if role in ("training", "gradient") else [])
    _check_consistency(m)
    return m


# -- reading: consistency ---------------------------------------------------------------
def _check_consistency(m: Manifest) -> None:
    names = [d.name for d in m.data] + [c.input for c in m.carried] + [h.name for h in m.hyper]
    names += [n for n in ((m.select.input if m.select else None), m.step) if n]
    names += m.params + ([g.name for g in m.grads] if m.role == "apply" else [])
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ManifestError(f"manifest: input names used twice: {', '.join(sorted(dup))}")
    inputs = {c.input for c in m.carried} | set(m.params)
    for c in m.carried:
        if c.kind == "average" and c.param not in inputs:
            raise ManifestError(f"manifest: average `{c.input}` belongs to param {c.param!r}, which is not carried")
        if c.kind == "slot":
            owners = c.params if c.params is not None else (c.param,)
            for p in owners:
                if p not in inputs:
                    raise ManifestError(f"manifest: slot `{c.input}` belongs to param {p!r}, which is not carried")
        if c.kind == "loss_step" and c.loss not in m.losses + m.steps:
            raise ManifestError(f"manifest: loss_step `{c.input}` counts loss {c.loss!r}, which is not a loss")
    if m.row_offset is not None and m.row_offset not in {h.name for h in m.hyper}:
        raise ManifestError(f"manifest: row_offset names `{m.row_offset}`, which is not a hyper input")
    if m.shard_weight is not None and m.shard_weight not in {h.name for h in m.hyper}:
        raise ManifestError(f"manifest: shard_weight names `{m.shard_weight}`, which is not a hyper input")
    if m.role.endswith("_stage") and m.depth is None:
        raise ManifestError(f"manifest: a {m.role} graph needs its `depth`")
    if m.role in ("training", "gradient", "apply"):
        _check_steps(m)


def _check_steps(m: Manifest) -> None:
    if m.role != "apply" and not m.losses:
        raise ManifestError(f"manifest: a {m.role} graph needs at least one loss")
    for s in m.steps:
        if m.losses and s not in m.losses:
            raise ManifestError(f"manifest: steps names `{s}`, which is not a loss (losses: {', '.join(m.losses)})")
    if len(set(m.steps)) > 1:
        if m.select is None:
            raise ManifestError("manifest: steps use several losses but `select` is missing "
                                "(expected {\"input\": name, \"values\": {loss: int}})")
        for s in m.steps:
            if s not in m.select.values:
                raise ManifestError(f"manifest: select.values has no entry for loss `{s}`")


def _graph_io(model: onnx.ModelProto):
    g = model.graph
    return ({i.name for i in g.input}, {o.name for o in g.output}, {t.name for t in g.initializer})


def check_against_graph(m: Manifest, model: onnx.ModelProto) -> None:
    """Every name the manifest uses must be an input/output of the graph."""
    inputs, outputs, inits = _graph_io(model)

    def need(name, what, pool, pool_name):
        if name not in pool:
            raise ManifestError(f"manifest: {what} `{name}` is not a graph {pool_name} of the {m.role} graph")

    for d in m.data:
        need(d.name, "data input", inputs, "input")
    for c in m.carried:
        need(c.input, f"carried {c.kind}", inputs, "input")
        need(c.output, "carried output of", outputs, "output")
        if c.input not in inits:
            raise ManifestError(f"manifest: carried `{c.input}` has no initializer (its initial value)")
    for h in m.hyper:
        need(h.name, "hyper input", inputs, "input")
    for n in m.losses + m.metrics:
        need(n, "loss/metric", outputs, "output")
    for p in m.params + ([m.step] if m.step else []):
        need(p, "param", inputs, "input")
    for g in m.grads:
        need(g.name, "gradient", inputs if m.role == "apply" else outputs,
             "input" if m.role == "apply" else "output")
    if m.select:
        need(m.select.input, "select input", inputs, "input")
    for p in m.sync:
        below = m.role == "gradient" or (m.depth is not None and p.depth < m.depth)
        if below:
            need(p.input, "sync input", inputs, "input")
        if below and m.role != "forward_stage":
            need(p.grad, "sync adjoint", outputs, "output")
        if m.depth == p.depth and m.role == "forward_stage":
            need(p.part, "sync part", outputs, "output")
        if m.depth == p.depth and m.role == "backward_stage":
            need(p.cot, "sync cotangent", inputs, "input")


def read_manifest(model: onnx.ModelProto, role: str | None = None) -> Manifest:
    """Read, parse and validate the manifest stored in `model.metadata_props`."""
    texts = [p.value for p in model.metadata_props if p.key == KEY]
    if not texts:
        raise ManifestError(f"model has no `{KEY}` metadata; was it compiled by dslc?")
    try:
        obj = json.loads(texts[0])
    except json.JSONDecodeError as e:
        raise ManifestError(f"manifest: not valid JSON ({e})") from None
    m = parse_manifest(obj)
    if role is not None and m.role != role:
        raise ManifestError(f"expected a {role} graph, found role {m.role!r}")
    check_against_graph(m, model)
    return m


def write_manifest(model: onnx.ModelProto, manifest: Manifest | dict) -> None:
    """Store `manifest` (a Manifest, or its JSON object) as the model's manifest,
    replacing any old one."""
    obj = manifest.to_json() if isinstance(manifest, Manifest) else manifest
    keep = [p for p in model.metadata_props if p.key != KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    model.metadata_props.add(key=KEY, value=json.dumps(obj))
