"""The training loop: feed a batch, run the training graph, feed its `.next`
outputs back — with validation, early stopping, checkpoints and a NaN guard."""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from . import checkpoint as ckpt
from .data import Dataset, load_dataset
from .debug import describe, find_first_non_finite
from .errors import CheckpointError, ManifestError, RuntimeFailure, TrainingDiverged
from .export import with_weights
from .files import ensure_folder, save_model
from .manifest import DTYPES, Manifest, read_manifest, stopping_mode
from .report import plot_curves, write_history
from .session import BoundRunner, Device, StepRunner, make_session

DEFAULTS = {"data": None, "split": None, "valid": None, "batch": 32, "epochs": 1, "seed": 0,
            "early_stopping": None}


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _as_model(m) -> onnx.ModelProto | None:
    if m is None or isinstance(m, onnx.ModelProto):
        return m
    return onnx.load(str(m))


class Trainer:
    """Trains a compiled dslc model with ONNX Runtime.

    Trainer(training, evaluation=None, inference=None, device="cpu", threads=None,
            spec_path=None, progress=None, log=print, workers=None, address=None, **settings)

    workers:    train data-parallel on that many Ray actors (address: a Ray cluster;
                see dslc_runtime.parallel); the compiled model must have been
                compiled with split=True;
    training:   the training graph (ModelProto or .onnx path), or any object with
                `.training` (and optionally `.evaluation`, `.inference`) attributes;
    evaluation: graph for validation metrics in inference mode (optional; without
                it the training graph is run with its updates discarded);
    inference:  graph that `export` fills with the trained values (optional);
    device:     "cpu", "cuda" or "cuda:N" (DeviceError when unavailable);
    settings:   override the manifest's `train` block: data, split, valid, batch,
                epochs, seed, early_stopping ({patience, metric, mode}),
                steps (list of loss names), hyper ({name: value}).

    State: `epoch` (epochs done), `step` (runs done), `history` (one dict per epoch).
    Carried tensors stay on the device as OrtValues between steps.
    """

    def __new__(cls, *args, workers=None, **kwargs):
        # Trainer(..., workers=N) trains data-parallel on Ray (dslc_runtime.parallel)
        if cls is Trainer and workers is not None:
            from .parallel import ParallelTrainer
            return super().__new__(ParallelTrainer)
        return super().__new__(cls)

    def __init__(self, training, evaluation=None, inference=None, device="cpu", threads=None,
                 spec_path=None, progress=None, log=print, **settings):
        if not isinstance(training, (onnx.ModelProto, str, Path)) and hasattr(training, "training"):
            compiled = training
            training = compiled.training
            evaluation = evaluation if evaluation is not None else getattr(compiled, "evaluation", None)
            inference = inference if inference is not None else getattr(compiled, "inference", None)
        self.training = _as_model(training)
        self.evaluation = _as_model(evaluation)
        self.inference = _as_model(inference)
        self.manifest: Manifest = read_manifest(self.training, role="training")
        self.eval_manifest = read_manifest(self.evaluation, role="evaluation") if self.evaluation else None
        self.device = Device.parse(device)
        self.threads = threads
        self.log = log
        self.progress = progress
        self.spec_path = spec_path or self.manifest.spec
        self.settings = self._settings(settings)
        self._check_inputs()

        ort.set_seed(int(self.settings["seed"]))   # for random ops seeded by onnxruntime itself
        self.session = make_session(self.training, self.device, threads)
        self.runner = BoundRunner(self.session, self.device)
        self.eval_runner = None
        if self.evaluation is not None:
            self.eval_runner = BoundRunner(make_session(self.evaluation, self.device, threads), self.device)
        self.reset()

    # ----- setup ---------------------------------------------------------------------------
    def _settings(self, overrides: dict) -> dict:
        s = dict(DEFAULTS)
        s.update({k: v for k, v in self.manifest.train.as_dict().items() if v is not None})
        s["steps"] = list(self.manifest.steps)
        s["hyper"] = {h.name: h.default for h in self.manifest.hyper}
        for key, value in overrides.items():
            if key == "hyper":
                unknown = set(value) - set(s["hyper"])
                if unknown:
                    raise ManifestError(f"unknown hyper input(s) {', '.join(sorted(unknown))}; "
                                        f"the graph has {', '.join(s['hyper']) or 'none'}")
                s["hyper"] = {**s["hyper"], **value}
            elif key in DEFAULTS or key == "steps":
                if value is not None:
                    s[key] = value
            else:
                raise TypeError(f"Trainer got an unknown setting {key!r}; "
                                f"expected one of {', '.join(list(DEFAULTS) + ['steps', 'hyper'])}")
        if "seed" in s["hyper"] and "seed" not in overrides.get("hyper", {}):
            s["hyper"]["seed"] = int(s["seed"])      # the graph's own random draws follow the seed
        for name in s["steps"]:
            if name not in self.manifest.losses:
                raise ManifestError(f"steps names `{name}`, which is not a loss ({', '.join(self.manifest.losses)})")
        if len(set(s["steps"])) > 1 and not self.manifest.select:
            raise ManifestError("several losses in steps but the training graph has no select input")
        if not isinstance(s["batch"], int) or s["batch"] < 1:
            raise ManifestError(f"batch should be a positive integer, found {s['batch']!r}")
        return s

    def _check_inputs(self) -> None:
        """Every graph input without a default must be something this loop feeds."""
        m = self.manifest
        fed = {d.name for d in m.data} | {c.input for c in m.carried} | {h.name for h in m.hyper}
        if m.select:
            fed.add(m.select.input)
        inits = {t.name for t in self.training.graph.initializer}
        for i in self.training.graph.input:
            if i.name not in fed and i.name not in inits:
                raise ManifestError(f"training graph input `{i.name}` is not in the manifest and has no default")

    def reset(self) -> None:
        """Back to the initial values stored in the training graph; history cleared."""
        inits = {t.name: t for t in self.training.graph.initializer}
        values = {}
        for c in self.manifest.carried:
            arr = numpy_helper.to_array(inits[c.input])
            self._check_value(c, arr, "the training graph's initializer")
            values[c.input] = arr
        self._set_carried(values)
        self.epoch = 0          # epochs completed
        self.step = 0           # training runs completed
        self.round_pos = 0      # index into settings["steps"] of the next run
        self._bpe = None        # training runs per epoch, while constant
        self.history: list[dict] = []
        self.best: dict | None = None   # {"value", "epoch", "step", "values"} for early stopping
        self.stopped_early = False

    def _check_value(self, c, arr: np.ndarray, where: str) -> None:
        want_shape = tuple(c.shape)
        if arr.dtype != np.dtype(DTYPES[c.dtype]) or (
                all(isinstance(d, int) for d in want_shape) and arr.shape != want_shape):
            raise CheckpointError(f"carried `{c.input}`: expected {c.dtype}{list(want_shape)}, "
                                  f"found {arr.dtype}{list(arr.shape)} in {where}")

    def _set_carried(self, values: dict[str, np.ndarray]) -> None:
        m = self.manifest
        self.stepper = StepRunner(self.session, self.device, [(c.input, c.output) for c in m.carried],
                                  values, m.losses + m.metrics)

    @property
    def carried(self) -> dict:
        """Carried input name -> OrtValue on the device holding its current value."""
        return self.stepper.carried

    def _host_values(self, carried: dict | None = None) -> dict[str, np.ndarray]:
        carried = self.carried if carried is None else carried
        return {name: np.array(v.numpy(), copy=True) for name, v in carried.items()}

    # ----- one step ------------------------------------------------------------------------
    def _hyper_feeds(self, loss: str) -> dict[str, np.ndarray]:
        m = self.manifest
        feeds = {h.name: np.array(self.settings["hyper"][h.name], dtype=DTYPES[h.dtype]) for h in m.hyper}
        if m.select:
            feeds[m.select.input] = np.array(m.select.values[loss], dtype=np.int64)
        return feeds

    def train_step(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One run of the training graph on `batch` (the loss in turn is
        steps[round_pos]); carried tensors advance. Returns losses and metrics."""
        m = self.manifest
        loss_name = self.settings["steps"][self.round_pos]
        host = {d.name: batch[d.name] for d in m.data}
        host.update(self._hyper_feeds(loss_name))
        try:
            out = self.stepper.run(host)    # IOBinding bound once; the carried buffer sets swap
        except RuntimeFailure:
            raise
        except Exception as e:
            raise RuntimeFailure(f"onnxruntime failed at step {self.step + 1}: {e}") from None
        values = {k: float(np.asarray(v)) for k, v in out.items()}
        for name in m.losses:
            if not math.isfinite(values[name]):
                self.stepper.k = 1 - self.stepper.k     # keep the values this step started from
                self._diverged(name, values[name], host)
        self.step += 1
        self.round_pos = (self.round_pos + 1) % len(self.settings["steps"])
        return values

    def _diverged(self, loss: str, value: float, host: dict) -> None:
        feeds = dict(host)
        feeds.update(self._host_values())   # the carried values this step started from
        try:
            found = find_first_non_finite(self.training, feeds, self.device, self.threads)
        except Exception as e:  # the diagnosis must not hide the divergence
            found, why = None, f"(could not re-run the step to find the node: {e})"
        else:
            why = describe(found)
        raise TrainingDiverged(f"training diverged at step {self.step + 1} (epoch {self.epoch + 1}): "
                               f"loss `{loss}` is {value}; {why}", self.step + 1, loss, value, found)

    # ----- evaluation ----------------------------------------------------------------------
    def _eval_params(self) -> dict:
        """Device values for the evaluation graph: params/states, Polyak averages in place of params."""
        avg = self.manifest.averages()
        names = self.eval_manifest.params if self.eval_manifest else []
        return {p: self.carried[avg.get(p, p)] for p in names}

    def evaluate(self, data, batch: int | None = None) -> dict[str, float]:
        """Losses and metrics over `data` (dict of arrays, Dataset or path), as
        means over examples (batch means weighted by batch size)."""
        ds = self._dataset(data)
        batch = batch or self.settings["batch"]
        sums: dict[str, float] = {}
        for part in ds.batches(batch, seed=None, epoch=0):
            n = next((part[d.name].shape[d.batch_axis] for d in self.manifest.data if d.batch_axis is not None), 1)
            for k, v in self._eval_batch(part).items():
                sums[k] = sums.get(k, 0.0) + v * n
        return {k: v / len(ds) for k, v in sums.items()}

    def _eval_batch(self, part: dict) -> dict[str, float]:
        if self.eval_runner is not None:
            em = self.eval_manifest
            host = {d.name: part[d.name] for d in em.data}
            _, out = self.eval_runner.run(self._eval_params(), host, [], em.losses + em.metrics)
        else:   # no evaluation graph: run a training step and throw its updates away
            m = self.manifest
            host = {d.name: part[d.name] for d in m.data}
            host.update(self._hyper_feeds(self.settings["steps"][0]))
            _, out = self.runner.run(self.carried, host, [], m.losses + m.metrics)
        return {k: float(np.asarray(v)) for k, v in out.items()}

    # ----- fit -----------------------------------------------------------------------------
    def _dataset(self, data) -> Dataset:
        if data is None:
            raise RuntimeFailure("no data given and the training graph's train block names none")
        return load_dataset(data, self.manifest.data, self.spec_path, log=self.log)

    def _train_valid(self, data, valid) -> tuple[Dataset, Dataset | None]:
        s = self.settings
        train = self._dataset(data if data is not None else s["data"])
        valid = valid if valid is not None else s["valid"]
        if valid is not None:
            return train, self._dataset(valid)
        if s["split"] is not None and s["split"] < 1:
            return train.split(float(s["split"]))
        return train, None

    def fit(self, data=None, epochs: int | None = None, valid=None, out_dir=None,
            resume: bool = False, progress: bool | None = None) -> list[dict]:
        """Train `epochs` more epochs (the train block's count by default), as Keras
        does: a second `fit(epochs=5)` trains 5 more, continuing from where the first stopped.

        data:    dict of arrays, Dataset, .npz path or built-in name (default: the train block's);
        valid:   validation data (default: the train block's `valid`, else its `split`);
        out_dir: where a checkpoint is written after every epoch and, at the end,
                 model.onnx, history.csv/.jsonl and curves.png;
        resume:  continue the run checkpointed in out_dir/checkpoint (when one is there)
                 until `epochs` epochs are done *in all* — a resumed call repeats the
                 interrupted one and ends where it would have ended.
        Returns the history: per epoch, its number, mean training losses/metrics,
        val_* losses/metrics, and the time taken."""
        if epochs is not None and (isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1):
            raise RuntimeFailure(f"epochs should be a positive integer, found {epochs!r}")
        count = int(epochs if epochs is not None else self.settings["epochs"])
        epochs = count if resume else self.epoch + count     # the epoch this call stops after
        if not resume:
            self.stopped_early = False
        out = ensure_folder(out_dir) if out_dir is not None else None    # fail before training, not after
        if resume and out is not None and ckpt.has_checkpoint(out / "checkpoint"):
            saved = self.load(out / "checkpoint")
            self.log(f"resuming from {out / 'checkpoint'} after epoch {self.epoch} (step {self.step})")
            changed = [k for k in ("batch", "seed", "split", "steps", "hyper")
                       if k in saved.get("settings", {}) and saved["settings"][k] != self.settings[k]]
            if changed:
                self.log(f"note: {', '.join(changed)} differ from the checkpointed run; "
                         f"the resumed run will not match an uninterrupted one")
        train, valid = self._train_valid(data, valid)
        show = progress if progress is not None else self.progress
        if show is None:
            show = sys.stderr.isatty()
        while self.epoch < epochs and not self.stopped_early:
            row = self._epoch(train, valid, epochs, show)
            self.history.append(row)
            self._early_stopping(row)
            self.log(self._summary(row, epochs))
            if out is not None:
                self.save(out / "checkpoint")
        if self.best is not None and self.settings["early_stopping"]:
            self._set_carried(self.best["values"])   # keep the best epoch's values
            if self.stopped_early:
                self.log(f"early stopping: best {self.best['metric']} = {self.best['value']:.6g} "
                         f"at epoch {self.best['epoch']}")
        if out is not None:
            self.write_outputs(out)
        return self.history

    def _epoch(self, train: Dataset, valid: Dataset | None, epochs: int, show: bool) -> dict:
        from tqdm import tqdm
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        runs = 0
        bar = tqdm(total=train.num_batches(self.settings["batch"]), disable=not show, unit="step", leave=False,
                   desc=f"epoch {self.epoch + 1}/{epochs}", file=sys.stderr)
        try:
            for values in self._epoch_runs(train):
                runs += 1
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.update(1)
                if show:
                    bar.set_postfix({k: f"{values[k]:.4g}" for k in self.manifest.losses}, refresh=False)
        finally:
            bar.close()
        train_time = time.perf_counter() - t0
        row: dict = {"epoch": self.epoch + 1}
        row.update({k: v / max(runs, 1) for k, v in sums.items()})
        if valid is not None:
            row.update({f"val_{k}": v for k, v in self.evaluate(valid).items()})
        row["time"] = round(time.perf_counter() - t0, 4)
        row["examples_per_s"] = round(len(train) / max(train_time, 1e-9), 1)   # training steps only
        # steps per epoch while every epoch had the same count (checkpoints record it; False: mixed)
        self._bpe = runs if self.epoch == 0 or self._bpe == runs else False
        self.epoch += 1
        return row

    def _epoch_runs(self, train: Dataset):
        """Run the epoch's training steps; yield each run's losses and metrics."""
        for part in train.batches(self.settings["batch"], self.settings["seed"], self.epoch):
            yield self.train_step(part)

    def _summary(self, row: dict, epochs: int) -> str:
        parts = [f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "time", "examples_per_s")]
        return f"epoch {row['epoch']}/{epochs}  " + "  ".join(parts) + f"  ({row['time']:.2f}s, {row['examples_per_s']:.0f} examples/s)"

    def _early_stopping(self, row: dict) -> None:
        rule = self.settings["early_stopping"]
        if not rule:
            return
        metric = rule.get("metric") or self.manifest.losses[0]
        key = f"val_{metric}" if f"val_{metric}" in row else metric
        if key not in row:
            raise ManifestError(f"early stopping watches `{metric}`, which is not a loss or metric "
                                f"(have {', '.join(k for k in row if k not in ('epoch', 'time'))})")
        mode = stopping_mode(metric, self.manifest.losses, rule.get("mode"))
        value = row[key]
        better = self.best is None or (value > self.best["value"] if mode == "max" else value < self.best["value"])
        if better:
            self.best = {"metric": key, "value": value, "epoch": row["epoch"], "step": self.step,
                         "values": self._host_values()}
        elif row["epoch"] - self.best["epoch"] >= int(rule.get("patience", 5)):
            self.stopped_early = True

    # ----- values, checkpoints, export -----------------------------------------------------
    def params(self, averaged: bool = False) -> dict[str, np.ndarray]:
        """Current params and states, name -> array (averaged: Polyak averages in place of params)."""
        avg = self.manifest.averages() if averaged else {}
        # copies: the device buffers are reused by the steps that follow
        return {c.input: np.array(self.carried[avg.get(c.input, c.input)].numpy(), copy=True)
                for c in self.manifest.carried if c.kind in ("param", "state")}

    def carried_values(self) -> dict[str, np.ndarray]:
        """Every carried value (params, states, slots, averages, step), name -> array."""
        return self._host_values()

    def save(self, folder) -> Path:
        """Checkpoint into `folder`: all carried values + position, history, settings, best."""
        meta = {"model": self.manifest.model, "epoch": self.epoch, "step": self.step,
                **({"batches_per_epoch": self._bpe}
                   if self._bpe and self.step == self.epoch * self._bpe else {}),
                "round_pos": self.round_pos, "history": self.history, "stopped_early": self.stopped_early,
                "settings": {k: v for k, v in self.settings.items() if _jsonable(v)}}
        best = None
        if self.best is not None:
            meta["best_metric"] = {k: self.best[k] for k in ("metric", "value", "epoch", "step")}
            best = (self.best["step"], self.best["values"])
        return ckpt.save_checkpoint(folder, self._host_values(), meta, best)

    def load(self, folder) -> dict:
        """Restore a checkpoint written by `save` (values, position, history, best);
        returns its metadata."""
        values, meta, best = ckpt.load_checkpoint(folder)
        where = f"checkpoint {folder}"
        values = packed_slots(self.manifest.carried, values)
        best = packed_slots(self.manifest.carried, best) if best is not None else None
        for c in self.manifest.carried:
            if c.input not in values:
                raise CheckpointError(f"{where} has no value for `{c.input}`; is it from another model?")
            self._check_value(c, values[c.input], where)
        for c in self.manifest.carried:
            if c.kind == "step" and int(values[c.input]) != int(meta["step"]):
                raise CheckpointError(f"{where}: the carried step counter `{c.input}` is "
                                      f"{int(values[c.input])} but checkpoint.json records step {meta['step']}")
        if best is not None:
            for c in self.manifest.carried:
                if c.input not in best:
                    raise CheckpointError(f"{where}: its best values have no `{c.input}`")
                self._check_value(c, best[c.input], where + " (best values)")
        self._set_carried({c.input: values[c.input] for c in self.manifest.carried})
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])
        self.round_pos = int(meta.get("round_pos", 0)) % len(self.settings["steps"])
        self._bpe = meta.get("batches_per_epoch") or (False if self.epoch else None)
        self.history = list(meta.get("history", []))
        self.stopped_early = bool(meta.get("stopped_early", False))
        self.best = None
        if best is not None and meta.get("best_metric"):
            self.best = dict(meta["best_metric"], values=best)
        return meta

    def inference_model(self) -> onnx.ModelProto:
        """The inference graph holding the trained values (Polyak averages when present)."""
        if self.inference is None:
            raise RuntimeFailure("no inference graph was given to the Trainer, so there is nothing to export")
        return with_weights(self.inference, self.params(averaged=True))

    def export(self, path) -> Path:
        """Write the trained inference graph to `path` (.onnx)."""
        model = self.inference_model()
        path = Path(path)
        ensure_folder(path.parent)
        save_model(model, path)      # atomic; external data beside it when over 2 GB
        return path

    def write_outputs(self, folder) -> None:
        """model.onnx (when an inference graph is known), history.csv/.jsonl, curves.png."""
        folder = ensure_folder(folder)
        outputs = ("model.onnx", "history.csv", "history.jsonl", "curves.png")
        for left in folder.glob("*.tmp"):      # temp files of a write that a crash interrupted
            if left.name.startswith(outputs) and left.is_file():
                left.unlink()
        if self.inference is not None:
            self.export(folder / "model.onnx")
        write_history(folder, self.history)
        plot_curves(self.history, folder / "curves.png")


def packed_slots(carried, values: dict) -> dict:
    """A checkpoint of graphs that kept one slot per param (`h1.W.m`, dslc before
    slots were packed) read into packed slots (`opt.m`: the params' slots
    flattened and concatenated in the manifest's order)."""
    out = dict(values)
    for c in carried:
        if c.kind != "slot" or not c.params or c.input in values:
            continue
        suffix = c.input.rsplit(".", 1)[-1]
        parts = [f"{p}.{suffix}" for p in c.params]
        if all(k in values for k in parts):
            out[c.input] = np.concatenate([np.asarray(values[k]).ravel() for k in parts]).astype(DTYPES[c.dtype])
    return out
