"""`dslc export-web`: a static folder that trains a compiled model in a browser.

The folder holds
  index.html, page.js       the page: progress bar, live curves, held-out metrics, download
  loop.js, npz.js, proto.js, rng.js   the loop shared by browser and Node (ES modules)
  train.mjs                 the Node.js entry: `node DIR/train.mjs` (onnxruntime-node)
  train.onnx                the training-step graph; its manifest drives the loop
  evaluation.onnx           losses/metrics in inference mode (params as inputs)
  inference.onnx            the inference graph; the loop rewrites its initializers
                            with the trained values for the download
  manifest.json             train.onnx's `dslc.manifest`, verbatim
  web.json                  what this export adds: file names, the evaluation
                            manifest, the data layout, the run's settings
  data.bin                  the train/validation arrays
  ort/                      onnxruntime-web's ES module and WebAssembly, vendored

Data and order are those of the Python runtime for the same seed: the train/
validation split is computed by `dslc_runtime`, and rng.js draws NumPy's own
per-epoch permutation (`default_rng([seed, epoch])`), so the loss after N steps
equals `dslc train`'s.
"""
from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..api import load
from ..compile import Compiled, compile

STATIC = ("index.html", "page.js", "loop.js", "npz.js", "proto.js", "rng.js", "train.mjs")
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ALIGN = 8            # every array in data.bin starts on an 8-byte boundary (BigInt64Array needs it)


class WebExportError(Exception):
    """The export cannot be written (no training graph, no onnxruntime-web files, ...)."""


def find_ort_web(ort_dir=None) -> Path:
    """The folder holding onnxruntime-web's dist files.

    The first given of `ort_dir`, $DSLC_ORT_WEB_DIR; else the source tree's
    web/node_modules (after `npm ci` in web/), ./node_modules of the cwd."""
    tried = []
    if ort_dir:                          # asked for: that folder or nothing
        tried.append(Path(ort_dir))
    elif os.environ.get("DSLC_ORT_WEB_DIR"):
        tried.append(Path(os.environ["DSLC_ORT_WEB_DIR"]))
    else:
        tried.append(Path(__file__).resolve().parents[2] / "web" / "node_modules" / "onnxruntime-web" / "dist")
        tried.append(Path.cwd() / "node_modules" / "onnxruntime-web" / "dist")
    for cand in tried:
        if all((cand / f).is_file() for f in ORT_FILES):
            return cand
        if (cand / "dist").is_dir() and all((cand / "dist" / f).is_file() for f in ORT_FILES):
            return cand / "dist"
    raise WebExportError("onnxruntime-web's files (" + ", ".join(ORT_FILES) + ") were not found in "
                         + ", ".join(str(t) for t in tried)
                         + "; run `npm ci` in dslc's web/ folder or pass --ort-dir node_modules/onnxruntime-web/dist")


def _compiled(source, model):
    if isinstance(source, Compiled):
        return source, None
    if isinstance(source, (str, os.PathLike)):
        return compile(load(str(source)), model), str(source)
    return compile(source, model), None


def _raw_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose initializers all store `raw_data` (little-endian bytes), which
    the JavaScript side overwrites in place with the trained values."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        if not init.HasField("raw_data"):
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init), init.name))
    return out


def _manifest_json(model: onnx.ModelProto) -> dict:
    return json.loads(next(p.value for p in model.metadata_props if p.key == "dslc.manifest"))


def _datasets(man, settings: dict, data, spec_path):
    """(train, valid or None) exactly as `Trainer._train_valid` builds them."""
    from dslc_runtime import load_dataset
    train = load_dataset(data if data is not None else settings["data"], man.data, spec_path, log=lambda *_: None)
    if settings.get("valid") is not None:
        return train, load_dataset(settings["valid"], man.data, spec_path, log=lambda *_: None)
    split = settings.get("split")
    if split is not None and split < 1:
        return train.split(float(split))
    return train, None


class _Blob:
    """data.bin being written: arrays appended at aligned offsets."""

    def __init__(self):
        self.parts, self.size = [], 0

    def add(self, arr: np.ndarray) -> dict:
        arr = np.ascontiguousarray(arr)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        pad = -self.size % ALIGN
        self.parts.append(b"\0" * pad)
        self.size += pad
        entry = {"dtype": "bool" if arr.dtype == np.bool_ else str(arr.dtype), "shape": list(arr.shape),
                 "offset": self.size, "nbytes": arr.nbytes}
        self.parts.append(arr.tobytes())
        self.size += arr.nbytes
        return entry


def export_web(source, out_dir, model: str | None = None, data=None, epochs: int | None = None,
               ort_dir=None, spec_path: str | None = None) -> Path:
    """Write the static training folder for `source` (a .dl path, a Program or
    a Compiled) into `out_dir`; returns its path.

    data:   override the train block's data (.npz path, built-in name, dict of arrays);
    epochs: override the train block's epoch count;
    ort_dir: where onnxruntime-web's dist files are (see `find_ort_web`)."""
    from dslc_runtime import read_manifest
    from dslc_runtime.trainer import DEFAULTS

    ort = find_ort_web(ort_dir)
    c, path = _compiled(source, model)
    if c.training is None:
        raise WebExportError(f"model `{c.name}` has no `train` block with a loss, so there is nothing to train")
    if c.inference is None:
        raise WebExportError(f"model `{c.name}` declares no `output`, so there is no model.onnx to download")
    man = read_manifest(c.training, role="training")        # validated; its JSON is written as it is
    obj = _manifest_json(c.training)
    spec_path = spec_path or path or obj.get("spec")
    settings = dict(DEFAULTS)
    settings.update({k: v for k, v in (obj.get("train") or {}).items() if v is not None})
    if epochs is not None:
        if int(epochs) < 0:
            raise WebExportError(f"epochs should be a whole number >= 0, found {epochs}")
        settings["epochs"] = int(epochs)
    if data is None and settings["data"] is None:
        raise WebExportError(f"the train block of `{c.name}` names no data; pass --data FILE.npz")
    train, valid = _datasets(man, settings, data, spec_path)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ort").mkdir(exist_ok=True)
    for f in ORT_FILES:
        shutil.copyfile(ort / f, out / "ort" / f)
    static = resources.files(__package__) / "static"
    for f in STATIC:
        (out / f).write_bytes((static / f).read_bytes())
    (out / "package.json").write_text('{"type": "module", "private": true}\n')   # Node: .js files are ES modules

    files = {"training": "train.onnx", "inference": "inference.onnx"}
    onnx.save(c.training, str(out / "train.onnx"))
    onnx.save(_raw_initializers(c.inference), str(out / "inference.onnx"))
    eval_manifest = None
    if c.evaluation is not None:
        files["evaluation"] = "evaluation.onnx"
        onnx.save(c.evaluation, str(out / "evaluation.onnx"))
        read_manifest(c.evaluation, role="evaluation")
        eval_manifest = _manifest_json(c.evaluation)
    (out / "manifest.json").write_text(json.dumps(obj, indent=1) + "\n")

    blob = _Blob()
    sets = {}
    for name, ds in (("train", train), ("valid", valid)):
        if ds is not None:
            sets[name] = {"n": len(ds), "arrays": {k: blob.add(v) for k, v in ds.arrays.items()}}
    seed = settings["seed"]
    with open(out / "data.bin", "wb") as f:
        for p in blob.parts:
            f.write(p)

    hyper = {h["name"]: h["default"] for h in obj.get("hyper", [])}
    if "seed" in hyper:
        hyper["seed"] = int(seed)          # as the Python Trainer: the graph's draws follow the seed
    node_modules = ort.parents[1] if ort.parent.name == "onnxruntime-web" else None
    web = {"version": 1, "model": c.name, "spec": spec_path and os.path.basename(spec_path),
           "node_modules": str(node_modules) if node_modules else None,   # where train.mjs also looks
           "files": files, "evaluation_manifest": eval_manifest,
           "settings": {"batch": int(settings["batch"]), "epochs": int(settings["epochs"]),
                        "seed": seed, "split": settings.get("split"),
                        "early_stopping": settings.get("early_stopping"), "hyper": hyper},
           "data": {"file": "data.bin", "sets": sets}}
    (out / "web.json").write_text(json.dumps(web, indent=1) + "\n")
    return out


def export_web_cli(spec: str, out_dir: str, model=None, data=None, epochs=None, ort_dir=None) -> str:
    """The CLI's call: one summary line, errors as WebExportError."""
    out = export_web(spec, out_dir, model=model, data=data, epochs=epochs, ort_dir=ort_dir)
    web = json.loads((out / "web.json").read_text())
    sets = web["data"]["sets"]
    sizes = ", ".join(f"{k} {v['n']}" for k, v in sets.items())
    return (f"wrote {out}/index.html ({web['model']}: {sizes} examples, {web['settings']['epochs']} epochs); "
            f"serve it with `python -m http.server -d {out}` or run `node {out}/train.mjs`")
