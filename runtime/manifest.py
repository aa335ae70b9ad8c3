"""The `dslc.manifest` metadata of a compiled model: what its inputs and
outputs mean (see the contract in INTERFACE.md and the runtime brief).

    read_manifest(model)  -> Manifest   (validated against the graph)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from .errors import ManifestError

KEY = "dslc.manifest"
DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16,
          "int64": np.int64, "int32": np.int32, "int8": np.int8, "uint8": np.uint8,
          "bool": np.bool_}
KINDS = ("param", "state", "slot", "average", "step")


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
    kind: param | state | slot (optimizer state of `param`) | average (Polyak
    average of `param`) | step (the step counter)."""
    input: str
    output: str
    kind: str
    dtype: str
    shape: tuple
    init: Any = None
    param: str | None = None


@dataclass(frozen=True)
class Hyper:
    name: str
    dtype: str
    default: float


@dataclass
class Manifest:
    """A validated manifest. `raw` keeps the JSON object as read."""
    role: str
    model: str
    data: list[DataInput]
    losses: list[str]
    metrics: list[str]
    carried: list[Carried] = field(default_factory=list)
    hyper: list[Hyper] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    select: dict | None = None          # {"input": name, "values": {loss: int}}
    rng: str | None = None              # optional int64 scalar input fed seed * 2**32 + step
    train: dict = field(default_factory=dict)
    params: list[str] = field(default_factory=list)   # evaluation role: param/state inputs
    spec: str | None = None
    raw: dict = field(default_factory=dict)

    def carried_by_input(self) -> dict[str, Carried]:
        return {c.input: c for c in self.carried}

    def averages(self) -> dict[str, str]:
        """param input name -> input name of its Polyak average."""
        return {c.param: c.input for c in self.carried if c.kind == "average"}


def _need(obj: dict, key: str, where: str, types) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ManifestError(f"manifest: {where} has no `{key}`")
    val = obj[key]
    if not isinstance(val, types):
        raise ManifestError(f"manifest: {where}.{key} should be {_tname(types)}, found {val!r}")
    return val


def _tname(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in types)


def _dtype(val: str, where: str) -> str:
    if val not in DTYPES:
        raise ManifestError(f"manifest: {where} has dtype {val!r}; expected one of {', '.join(DTYPES)}")
    return val


def _shape(val, where: str) -> tuple:
    if not isinstance(val, list) or not all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in val):
        raise ManifestError(f"manifest: {where}.shape should be a list of ints and dim names, found {val!r}")
    return tuple(val)


def _parse_data(items, where: str) -> list[DataInput]:
    out = []
    for i, d in enumerate(items):
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


def parse_manifest(obj: dict) -> Manifest:
    """Check the JSON object's form (not yet against a graph) and build a Manifest."""
    if not isinstance(obj, dict):
        raise ManifestError(f"manifest: expected a JSON object, found {type(obj).__name__}")
    version = obj.get("version")
    if version != 1:
        raise ManifestError(f"manifest: version {version!r} is not supported (expected 1)")
    role = _need(obj, "role", "manifest", str)
    if role not in ("training", "evaluation", "inference"):
        raise ManifestError(f"manifest: role {role!r}; expected training, evaluation or inference")
    m = Manifest(role=role, model=str(obj.get("model", "")),
                 data=_parse_data(obj.get("data", []), "data"),
                 losses=list(obj.get("losses", [])), metrics=list(obj.get("metrics", [])),
                 spec=obj.get("spec"), raw=obj)
    for i, c in enumerate(obj.get("carried", [])):
        w = f"carried[{i}]"
        name = _need(c, "input", w, str)
        kind = _need(c, "kind", w, str)
        if kind not in KINDS:
            raise ManifestError(f"manifest: carried `{name}` has kind {kind!r}; expected one of {', '.join(KINDS)}")
        m.carried.append(Carried(name, _need(c, "output", w, str), kind,
                                 _dtype(_need(c, "dtype", w, str), f"carried `{name}`"),
                                 _shape(_need(c, "shape", w, list), f"carried `{name}`"),
                                 c.get("init"), c.get("param")))
    for i, h in enumerate(obj.get("hyper", [])):
        w = f"hyper[{i}]"
        m.hyper.append(Hyper(_need(h, "name", w, str), _dtype(h.get("dtype", "float32"), w),
                             _need(h, "default", w, (int, float))))
    m.steps = list(obj.get("steps") or m.losses[:1])
    m.select = obj.get("select")
    rng = obj.get("rng")
    m.rng = rng.get("input") if isinstance(rng, dict) else rng
    m.train = dict(obj.get("train") or {})
    m.params = list(obj.get("params", []))
    _check_consistency(m)
    return m


def _check_consistency(m: Manifest) -> None:
    names = [d.name for d in m.data] + [c.input for c in m.carried] + [h.name for h in m.hyper]
    names += [n for n in ((m.select or {}).get("input"), m.rng) if n]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ManifestError(f"manifest: input names used twice: {', '.join(sorted(dup))}")
    inputs = {c.input for c in m.carried}
    for c in m.carried:
        if c.kind in ("slot", "average") and c.param not in inputs:
            raise ManifestError(f"manifest: {c.kind} `{c.input}` belongs to param {c.param!r}, which is not carried")
    if m.role != "training":
        return
    if not m.losses:
        raise ManifestError("manifest: a training graph needs at least one loss")
    for s in m.steps:
        if s not in m.losses:
            raise ManifestError(f"manifest: steps names `{s}`, which is not a loss (losses: {', '.join(m.losses)})")
    if len(set(m.steps)) > 1:
        sel = m.select
        if not isinstance(sel, dict) or "input" not in sel or not isinstance(sel.get("values"), dict):
            raise ManifestError("manifest: steps use several losses but `select` is missing "
                                "(expected {\"input\": name, \"values\": {loss: int}})")
        for s in m.steps:
            if s not in sel["values"]:
                raise ManifestError(f"manifest: select.values has no entry for loss `{s}`")


def _graph_io(model: onnx.ModelProto):
    g = model.graph
    return ({i.name for i in g.input}, {o.name for o in g.output}, {t.name for t in g.initializer})


def check_against_graph(m: Manifest, model: onnx.ModelProto) -> None:
    """Every name the manifest uses must be an input/output of the graph."""
    inputs, outputs, inits = _graph_io(model)
    # an inference graph stores params as initializers only; others take them as inputs
    sources = inputs | inits if m.role == "inference" else inputs

    def need(name, what, pool, pool_name):
        if name not in pool:
            raise ManifestError(f"manifest: {what} `{name}` is not a graph {pool_name} of the {m.role} graph")

    for d in m.data:
        need(d.name, "data input", inputs, "input")
    for c in m.carried:
        need(c.input, f"carried {c.kind}", sources, "input")
        need(c.output, f"carried output of", outputs, "output")
        if c.input not in inits:
            raise ManifestError(f"manifest: carried `{c.input}` has no initializer (its initial value)")
    for h in m.hyper:
        need(h.name, "hyper input", inputs, "input")
    for n in m.losses + m.metrics:
        need(n, "loss/metric", outputs, "output")
    for p in m.params:
        need(p, "param", sources, "input")
    if m.select:
        need(m.select["input"], "select input", inputs, "input")
    if m.rng:
        need(m.rng, "rng input", inputs, "input")


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


def write_manifest(model: onnx.ModelProto, obj: dict) -> None:
    """Store `obj` as the model's manifest (replacing any old one). For tests and tools."""
    keep = [p for p in model.metadata_props if p.key != KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    model.metadata_props.add(key=KEY, value=json.dumps(obj))
