"""Synchronous data-parallel training on Ray.

N workers (Ray actors, one ONNX Runtime session each, one thread by default)
each hold a full copy of the carried tensors and read their own shard of
every global batch. One step:

    worker i:  g_i, s_i, v_i = gradient(shard_i)         # rows [o_i, o_i + b_i) of the batch
               x_i = (b_i / B) * concat(g_i, s_i, v_i)    # the shard's share of the batch mean
    reduce:    x = sum_i x_i          # recursive doubling (or a tree) over the object store
    worker i:  params, slots, step = apply(params, g, slots, step)   # same inputs -> same result

so the mean over the global batch of B examples is what one process with
batch B computes (up to float reassociation). The reduction is actor to
actor: the driver passes object references only, the arrays move between
workers through Ray's object store. For a power-of-two N it is recursive
doubling (log2 N rounds of one gradient-sized transfer, every worker ends
with the sum); otherwise a binary tree plus one broadcast. New states (running statistics) and the losses and metrics ride in
the same vector, so they are averaged the same way.

Random draws follow the global row index (the gradient graph's `row_offset`
hyper input), so each worker draws different noise and together they draw
exactly what one process draws for the whole batch. The batch order is a
function of (seed, epoch), independent of N.

Checkpoints are the single-process Trainer's, written by the driver from
worker 0's values after every epoch; a run resumes with any N. When a worker
dies, all workers are restarted from the last checkpoint and the epochs
since are redone, so the result equals an uninterrupted run.
"""
from __future__ import annotations

import math
import os
import socket

import numpy as np
import onnx
import onnxruntime as ort

from .data import Dataset, load_dataset
from .errors import ManifestError, RuntimeFailure, TrainingDiverged
from .manifest import DTYPES, read_manifest
from .session import BoundRunner, Device, make_session, to_device
from .trainer import Trainer

INSTALL = "data-parallel training needs Ray: pip install -e '.[ray]' (or pip install ray)"


def import_ray():
    """The ray module, or a RuntimeFailure that says how to install it."""
    try:
        import ray
    except ImportError:
        raise RuntimeFailure(INSTALL) from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A clear error, at once, when nothing listens at a Ray address ("host:port" or
    "ray://host:port"; "auto" and other forms are left to Ray)."""
    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise RuntimeFailure(f"no Ray cluster answers at {address} ({e.strerror or e}); start one with "
                             f"`ray start --head --port {port}` or check --address") from None


def shard_bounds(b: int, n: int) -> list[tuple[int, int]]:
    """Contiguous row ranges [start, stop) of a batch of b rows for n workers,
    as even as possible (the first b % n get one row more); some may be empty."""
    q, r = divmod(b, n)
    out, start = [], 0
    for i in range(n):
        stop = start + q + (1 if i < r else 0)
        out.append((start, stop))
        start = stop
    return out


def tree_sum(parts: list, add) -> object:
    """Sum values held by workers pairwise in a binary tree. parts: a list of
    (worker, value) pairs; add(worker, a, b) has `worker` (the holder of a)
    return a + b. ceil(log2 n) levels, in a fixed order, so the float sum is
    reproducible for a given n."""
    level = list(parts)
    while len(level) > 1:
        nxt = [(level[i][0], add(level[i][0], level[i][1], level[i + 1][1]))
               for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0][1]


def butterfly_sum(parts: list, add) -> list:
    """Every worker's copy of the sum, by recursive doubling (n a power of two):
    at level l worker i adds the value of worker i XOR 2^l to its own, so after
    log2 n levels each holds the total and nothing is broadcast. Each level's
    pair sums are the same two operands in either order (a + b == b + a in IEEE
    arithmetic), so every worker ends with the same bits."""
    n = len(parts)
    assert n & (n - 1) == 0, "butterfly_sum needs a power-of-two number of workers"
    level, bit = [v for _, v in parts], 1
    while bit < n:
        # the lower of each pair is the first operand on both sides: bit-identical sums
        level = [add(parts[i][0], level[min(i, i ^ bit)], level[max(i, i ^ bit)]) for i in range(n)]
        bit *= 2
    return level


class StepGraphs:
    """What the split gradient and apply graphs' manifests say, in the terms a
    data-parallel step needs."""

    def __init__(self, gradient: onnx.ModelProto, apply: onnx.ModelProto):
        self.gradient, self.apply = gradient, apply
        self.g = read_manifest(gradient, role="gradient")
        self.a = read_manifest(apply, role="apply")
        self.grads = {gr.param: gr.name for gr in self.g.grads}           # param -> gradient output
        self.apply_grads = {gr.param: gr.name for gr in self.a.grads}     # param -> apply graph's input
        if set(self.grads) != set(self.apply_grads):
            raise ManifestError("the gradient and apply graphs name different params' gradients")
        self.states = {c.input: c.output for c in self.g.carried if c.kind == "state"}
        # what the gradient graph reads of the carried values (same names as the training graph's)
        self.gradient_reads = list(self.g.params) + ([self.g.step] if self.g.step else []) + list(self.states)
        self.row_offset = self.g.row_offset
        self.losses, self.metrics = list(self.g.losses), list(self.g.metrics)
        self.outputs = [name for name, *_ in self.layout({})]   # what a gradient step fetches, in order

    def layout(self, shapes: dict[str, tuple]) -> list[tuple[str, int, int, tuple]]:
        """(name, start, stop, shape) of each value in the flat reduced vector:
        gradients, then new states, then losses and metrics (scalars)."""
        out, pos = [], 0
        names = [self.grads[p] for p in self.grads] + [self.states[s] for s in self.states] \
            + self.losses + self.metrics
        for name in names:
            shape = tuple(shapes.get(name, ()))
            size = int(np.prod(shape)) if shape else 1
            out.append((name, pos, pos + size, shape))
            pos += size
        return out


def _combine(parts: list[dict], how: dict[str, str]) -> dict[str, np.ndarray]:
    """The workers' parts (dicts of arrays; a worker without rows gives {}) combined
    key by key in worker order: summed, or by max / min where `how` says."""
    out: dict[str, np.ndarray] = {}
    ops = {"sum": np.add, "max": np.maximum, "min": np.minimum}
    for part in parts:
        for k, v in part.items():
            out[k] = v if k not in out else ops[how.get(k, "sum")](out[k], v)
    return out


class SyncStages:
    """The stage graphs of an exact step where rows interact (batch norm): the
    forward stages 1..D and backward stages D..1 around the sync gradient graph
    (dslc/sync.py, docs/parallel.md)."""

    def __init__(self, models: list[onnx.ModelProto]):
        self.manifests = [read_manifest(m) for m in models]
        self.points = self.manifests[0].sync if models else []
        self.depth = max((p.depth for p in self.points), default=0)
        self.forward = {m.depth: (mod, m) for mod, m in zip(models, self.manifests) if m.role == "forward_stage"}
        self.backward = {m.depth: (mod, m) for mod, m in zip(models, self.manifests) if m.role == "backward_stage"}
        self.how = {p.input: p.combine for p in self.points}

    def at(self, d: int):
        return [p for p in self.points if p.depth == d]


class ShardWorker:
    """One data-parallel worker: a gradient session, an apply session, all
    carried values, and its shard of the training data. Plain Python, so it
    also runs in-process (tests); `ray.remote` wraps it for actors."""

    def __init__(self, graphs: tuple[bytes, ...], rank: int, world: int, data, settings: dict,
                 device: str = "cpu", threads: int | None = 1, spec_path: str | None = None):
        """graphs: the gradient, apply and training graphs' bytes, then any sync
        graphs (the sync gradient graph first: it replaces the gradient graph)."""
        gradient, apply, training, *sync = (onnx.load_from_string(b) for b in graphs)
        self.stages = SyncStages(sync)
        if sync:
            gradient = sync[0]
        self.graphs = StepGraphs(gradient, apply)
        self.rank, self.world = rank, world
        self.device = Device.parse(device)
        self.settings = settings
        self.grad_run = BoundRunner(make_session(gradient, self.device, threads), self.device)
        self.apply_run = BoundRunner(make_session(apply, self.device, threads), self.device)
        self.train = _train_part(data, settings, read_manifest(training, role="training"), spec_path)
        self.stage_run = {(m.role, d): BoundRunner(make_session(mod, self.device, threads), self.device)
                          for table in (self.stages.forward, self.stages.backward) for d, (mod, m) in table.items()}
        self.carried: dict = {}
        self._layout = None
        self._order = (None, None)
        self._shard = (None, None)
        self._pending = None
        self._flat = None             # (vector, OrtValues over its slices) of the gradient step
        self._dtypes = {}

    # -- values ------------------------------------------------------------------------
    def set_carried(self, values: dict[str, np.ndarray]) -> None:
        self.carried = {k: to_device(v, self.device) for k, v in values.items()}

    def carried_values(self) -> dict[str, np.ndarray]:
        return {k: np.array(v.numpy(), copy=True) for k, v in self.carried.items()}

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        """The Ray node this worker runs on ("local" in-process)."""
        try:
            import ray
            return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
        except ImportError:
            return "local"

    # -- one step ------------------------------------------------------------------------
    def _rows(self, epoch: int, index: int) -> np.ndarray:
        if self._order[0] != epoch:
            self._order = (epoch, self.train.order(self.settings["seed"], epoch))
        b = self.settings["batch"]
        return self._order[1][index * b:(index + 1) * b]

    def _rows_of(self, epoch: int, index: int):
        """(lo, hi, B, host arrays) of this worker's rows of batch `index` (kept for the stages)."""
        if self._shard[0] != (epoch, index):
            rows = self._rows(epoch, index)
            lo, hi = shard_bounds(len(rows), self.world)[self.rank]
            self._shard = ((epoch, index), (lo, hi, len(rows), self.train.take(rows[lo:hi]) if hi > lo else None))
        return self._shard[1]

    def _feeds(self, m, epoch: int, index: int, loss: str, sync: dict) -> dict:
        """Host inputs of a shard graph with manifest m: data, hyper, row offset, share, sync values."""
        lo, hi, b, host = self._rows_of(epoch, index)
        feeds = {d.name: host[d.name] for d in m.data}
        feeds.update(_hyper(m, self.settings, loss))
        if m.row_offset:
            feeds[m.row_offset] = np.asarray(lo, np.int64)
        if m.shard_weight:
            feeds[m.shard_weight] = np.asarray((hi - lo) / b, np.float32)
        below = m.role == "gradient" or m.depth is None
        feeds.update({p.input: sync[p.input] for p in m.sync if below or p.depth < m.depth})
        return feeds

    def _run(self, runner, m, feeds: dict, names: list[str], into: dict | None = None) -> dict:
        reads = m.params + ([m.step] if m.step else []) + [c.input for c in m.carried]
        _, out = runner.run({k: self.carried[k] for k in reads}, feeds, [], names, into)
        return out

    def _flat_buffer(self, dtype) -> tuple[np.ndarray, dict]:
        """The vector a gradient step fills, and (on the CPU) OrtValues over its slices
        that the gradient graph writes straight into: no copies out of ORT."""
        if self._flat is None:
            flat = np.zeros(self._layout[-1][2], dtype)
            views = {}
            if self.device.kind == "cpu" and all(self._dtypes[n] == dtype for n, *_ in self._layout):
                views = {n: ort.OrtValue.ortvalue_from_numpy(flat[a:b].reshape(shape))
                         for n, a, b, shape in self._layout}
            self._flat = (flat, views)
        return self._flat

    def gradient_step(self, epoch: int, index: int, loss: str, sync: dict | None = None):
        """This worker's share of the batch means: (b_i / B) * (gradients, new states,
        losses, metrics), flattened into one vector. With sync graphs (batch norm)
        the vector is kept for the backward stages (`finish` returns it) and this
        returns the share of d loss / d sync.<k>."""
        g = self.graphs
        lo, hi, b, _ = self._rows_of(epoch, index)
        if hi == lo:                                  # more workers than rows: adds nothing
            self._pending = np.zeros(0)
            return {} if self.stages.points else self._pending
        feeds = self._feeds(g.g, epoch, index, loss, sync or {})
        first = self._flat is None               # this worker's first step with rows: fetch everything
        views = {} if first else self._flat[1]
        out = self._run(self.grad_run, g.g, feeds, [n for n in g.outputs if n not in views]
                        + [p.grad for p in self.stages.points], views)
        if first:
            if self._layout is None:             # (or apply_step learned it, from a step without rows)
                self._layout = g.layout({k: np.shape(v) for k, v in out.items()})
            self._dtypes = {n: np.asarray(out[n]).dtype for n in g.outputs}
        flat = self._flat_buffer(np.result_type(np.float32, *self._dtypes.values()))[0]
        for n, a, z, _ in self._layout:
            if n not in views:                   # outputs ORT did not write in place
                flat[a:z] = np.asarray(out[n], flat.dtype).ravel()
        w = flat.dtype.type((hi - lo) / b)
        if w != 1:
            flat *= w
        if not self.stages.points:
            return flat
        self._pending = flat
        return {p.input: np.asarray(out[p.grad]) * w for p in self.stages.points}

    def forward_stage(self, epoch: int, index: int, loss: str, d: int, sync: dict) -> dict:
        """This worker's parts of the depth-d batch statistics: {sync input: part}."""
        lo, hi, _, _ = self._rows_of(epoch, index)
        if hi == lo:
            return {}
        _, m = self.stages.forward[d]
        out = self._run(self.stage_run[("forward_stage", d)], m, self._feeds(m, epoch, index, loss, sync),
                        [p.part for p in self.stages.at(d)])
        return {p.input: np.asarray(out[p.part]) for p in self.stages.at(d)}

    def backward_stage(self, epoch: int, index: int, loss: str, d: int, sync: dict, adjoint: dict) -> dict:
        """Add the vjp of the depth-d parts (cotangents: the summed adjoints) to the
        kept gradients; return this worker's adjoints of the shallower statistics."""
        lo, hi, _, _ = self._rows_of(epoch, index)
        if hi == lo:
            return {}
        _, m = self.stages.backward[d]
        feeds = self._feeds(m, epoch, index, loss, sync)
        feeds.update({p.cot: adjoint[p.input] for p in self.stages.at(d)})
        lower = [p for p in self.stages.points if p.depth < d]
        grads = [gr.name for gr in m.grads]
        out = self._run(self.stage_run[("backward_stage", d)], m, feeds, grads + [p.grad for p in lower])
        for name, a, z, _ in self._layout:
            if name in out:
                self._pending[a:z] += np.asarray(out[name], self._pending.dtype).ravel()
        return {p.input: np.asarray(out[p.grad]) for p in lower}

    def finish(self) -> np.ndarray:
        """The kept vector of gradient_step, with the backward stages' terms."""
        return self._pending

    @staticmethod
    def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a + b, where an empty vector (a worker without rows) is zero."""
        return b if a.size == 0 else a if b.size == 0 else a + b

    def apply_step(self, total: np.ndarray, loss: str) -> dict[str, float]:
        """The summed shares are the global batch's means: take its new states,
        run the optimizer on its gradients; return its losses and metrics."""
        g = self.graphs
        if self._layout is None:       # this worker had no rows so far: learn the layout from the sum
            shapes = {c.output: c.shape for c in g.g.carried if c.kind == "state"}
            shapes.update({g.grads[p]: self.carried[p].shape() for p in g.grads})
            self._layout = g.layout(shapes)
        parts = {name: total[a:b].reshape(shape) for name, a, b, shape in self._layout}
        for s_in, s_out in g.states.items():
            self.carried[s_in] = to_device(parts[s_out].astype(_dtype_of(self.carried[s_in])), self.device)
        feeds = {g.apply_grads[p]: parts[g.grads[p]].astype(_dtype_of(self.carried[p]), copy=False) for p in g.grads}
        feeds.update(_hyper(g.a, self.settings, loss))
        new, _ = self.apply_run.run({c.input: self.carried[c.input] for c in g.a.carried}, feeds,
                                    [c.output for c in g.a.carried], [])
        for c in g.a.carried:
            self.carried[c.input] = new[c.output]
        return {k: float(parts[k]) for k in g.losses + g.metrics}


def _dtype_of(v) -> np.dtype:
    return np.dtype(DTYPES[{"tensor(float)": "float32", "tensor(double)": "float64",
                            "tensor(int64)": "int64"}.get(v.data_type(), "float32")])


def _hyper(m, settings: dict, loss: str) -> dict[str, np.ndarray]:
    """The hyper inputs graph `m` has (lr, seed, ...), and its loss selector."""
    feeds = {h.name: np.array(settings["hyper"][h.name], dtype=DTYPES[h.dtype])
             for h in m.hyper if h.name in settings["hyper"]}
    if m.select:
        feeds[m.select.input] = np.array(m.select.values[loss], dtype=np.int64)
    return feeds


def _train_part(data, settings: dict, m, spec_path) -> Dataset:
    """The training examples, split off the validation part as the Trainer does."""
    train = load_dataset(data if data is not None else settings["data"], m.data, spec_path, log=lambda *a: None)
    if settings.get("valid") is None and settings.get("split") is not None and settings["split"] < 1:
        train, _ = train.split(float(settings["split"]))
    return train


class LocalCluster:
    """Ray's calls done in-process, one worker after another: the same driver
    code without a cluster (tests, debugging; `backend="local"`)."""

    class _Method:
        def __init__(self, fn):
            self.remote = fn

    class _Handle:
        def __init__(self, obj):
            self._obj = obj

        def __getattr__(self, name):
            return LocalCluster._Method(getattr(self._obj, name))

    class exceptions:
        class RayActorError(Exception):
            pass

        WorkerCrashedError = RayTaskError = RayActorError

    @staticmethod
    def is_initialized() -> bool:
        return True

    @staticmethod
    def put(value):
        return value

    @staticmethod
    def get(refs):
        return refs

    @staticmethod
    def kill(handle) -> None:
        pass

    @staticmethod
    def remote(**_options):
        return lambda cls: type("LocalActor", (), {"remote": staticmethod(
            lambda *a, **k: LocalCluster._Handle(cls(*a, **k)))})


class WorkerLost(RuntimeFailure):
    """A worker died (its process was killed, its node went away)."""


class ParallelTrainer(Trainer):
    """The Trainer's loop (settings, validation, early stopping, checkpoints,
    export, history) with each training step spread over `workers` Ray actors.

    ParallelTrainer(compiled, workers=2, address=None, device="cpu", threads=1,
                    max_restarts=3, **Trainer options)

    compiled: an object with `.training`, `.gradient`, `.apply` (and optionally
    `.evaluation`, `.inference`), e.g. `dslc.compile(prog, split=True)`.
    address:  a Ray cluster ("auto", "ray://host:10001", "host:6379"); None
    starts a local Ray with `workers` CPUs. threads: ONNX Runtime threads per worker.
    backend="local" runs the workers in this process, one after another (same numbers).
    """

    def __init__(self, compiled, workers: int = 2, address: str | None = None, device="cpu", threads=1,
                 max_restarts: int = 3, backend: str = "ray", **options):
        if getattr(compiled, "gradient", None) is None or getattr(compiled, "apply", None) is None:
            raise RuntimeFailure("data-parallel training needs the split gradient and apply graphs "
                                 "(compile with split=True)")
        if not isinstance(workers, int) or workers < 1:
            raise RuntimeFailure(f"workers should be a positive integer, found {workers!r}")
        super().__init__(compiled, device=device, threads=threads, **options)
        if backend not in ("ray", "local"):
            raise RuntimeFailure(f"backend should be 'ray' or 'local', found {backend!r}")
        self.ray = import_ray() if backend == "ray" else LocalCluster
        self.workers_n, self.address, self.max_restarts = workers, address, max_restarts
        err = getattr(compiled, "sync_error", None)
        if err is not None and workers > 1:
            raise RuntimeFailure(f"cannot split this model's steps across workers: {err}")
        # one worker computes the whole batch: the plain gradient graph is exact
        sync = list(getattr(compiled, "sync", None) or []) if workers > 1 else []
        self._blobs = tuple(m.SerializeToString() for m in [compiled.gradient, compiled.apply, self.training] + sync)
        self.graphs = StepGraphs(sync[0] if sync else compiled.gradient, compiled.apply)
        self.stages = SyncStages(sync)
        self._start_ray()
        self.workers: list = []
        self._source = None
        self._data = None
        self._synced = False      # do the workers hold self.carried?

    # -- the cluster ---------------------------------------------------------------------
    def _start_ray(self) -> None:
        ray = self.ray
        if ray is LocalCluster:
            return
        kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if self.address:
            check_reachable(self.address)          # Ray itself would retry for minutes
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, **kw)
            else:
                ray.init(num_cpus=max(self.workers_n, 1), **kw)
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < self.workers_n:      # actors would wait for CPUs forever
            raise RuntimeFailure(f"the Ray cluster has {cpus:g} CPUs but {self.workers_n} workers need one each; "
                                 f"start Ray with more (ray.init(num_cpus=...), ray start --num-cpus) or use fewer workers")

    def _spawn(self, data, valid) -> None:
        ray = self.ray
        self.shutdown_workers()
        settings = dict(self.settings)
        if valid is not None:
            settings["split"] = None          # explicit validation data: train on all of `data`
        source = data if data is not None else settings["data"]
        if isinstance(source, dict):
            source = ray.put(source)          # in-memory arrays: one copy in the object store
        blobs = ray.put(self._blobs)
        actor = ray.remote(num_cpus=1, max_restarts=0)(ShardWorker)
        self.workers = [actor.remote(blobs, r, self.workers_n, source, settings, str(self.device),
                                     self.threads, self.spec_path) for r in range(self.workers_n)]
        self._synced = False
        nodes = set(self._get([w.node.remote() for w in self.workers]))
        self.log(f"training on {self.workers_n} worker{'s' if self.workers_n > 1 else ''} "
                 f"({len(nodes)} Ray node{'s' if len(nodes) > 1 else ''}, {self.threads} thread(s) each)")

    def shutdown_workers(self) -> None:
        for w in self.workers:
            try:
                self.ray.kill(w)
            except Exception:
                pass
        self.workers = []

    def _get(self, refs):
        try:
            return self.ray.get(refs)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError) as e:
            raise WorkerLost(f"a worker died: {type(e).__name__}") from None
        except self.ray.exceptions.RayTaskError as e:
            cause = e.as_instanceof_cause()
            raise (cause if isinstance(cause, RuntimeFailure) else RuntimeFailure(str(cause))) from None

    def _push(self) -> None:
        values = self.ray.put(self._host_values())
        self._get([w.set_carried.remote(values) for w in self.workers])
        self._synced = True

    def _pull(self) -> None:
        self._set_carried(self._get(self.workers[0].carried_values.remote()))

    # -- the loop ------------------------------------------------------------------------
    def fit(self, data=None, epochs=None, valid=None, out_dir=None, resume=False, progress=None):
        """As Trainer.fit, each step spread over the workers (each reads its own
        shard of the data). A lost worker restarts all of them from the values
        at the start of the epoch (those of the last checkpoint), and the epoch is redone."""
        if not self.workers or self._source is None or any(a is not b for a, b in zip(self._source, (data, valid))):
            self._spawn(data, valid)          # the same data again: keep the workers (and their sessions)
            self._source = (data, valid)
        return super().fit(data, epochs, valid, out_dir, resume, progress)

    def _snapshot(self) -> dict:
        return {"epoch": self.epoch, "step": self.step, "round_pos": self.round_pos,
                "values": self._host_values()}

    def _restore(self, snap: dict) -> None:
        self.epoch, self.step, self.round_pos = snap["epoch"], snap["step"], snap["round_pos"]
        self._set_carried(snap["values"])

    def _set_carried(self, values) -> None:
        super()._set_carried(values)
        self._synced = False

    def _epoch(self, train: Dataset, valid, epochs: int, show: bool) -> dict:
        snap = self._snapshot()
        for attempt in range(self.max_restarts + 1):
            try:
                if not self._synced:
                    self._push()
                return super()._epoch(train, valid, epochs, show)
            except WorkerLost as e:
                if attempt == self.max_restarts:
                    raise RuntimeFailure(f"{e}; gave up after {self.max_restarts} restarts") from None
                self.log(f"{e}; restarting {self.workers_n} workers from epoch {snap['epoch']} "
                         f"(step {snap['step']})")
                self._restore(snap)
                self._spawn(*self._source)
        raise AssertionError("unreachable")

    def _epoch_runs(self, train: Dataset):
        """The epoch's steps on the workers; the driver's values are refreshed from
        worker 0 at the end (for validation, checkpoints and export)."""
        steps = self.settings["steps"]
        for index in range(train.num_batches(self.settings["batch"])):
            values = self._step(self.epoch, index, steps[self.round_pos])
            self.step += 1
            self.round_pos = (self.round_pos + 1) % len(steps)
            yield values
        self._pull()
        self._synced = True

    def _sync_stages(self, epoch: int, index: int, loss: str) -> list:
        """Where rows interact: agree on the batch statistics stage by stage, then
        the adjoints back down (small vectors, summed here in worker order); the
        workers' gradient vectors, ready for the tree."""
        st, ws = self.stages, self.workers
        sync: dict = {}
        for d in range(1, st.depth + 1):
            sync.update(_combine(self._get([w.forward_stage.remote(epoch, index, loss, d, sync) for w in ws]), st.how))
        adj = _combine(self._get([w.gradient_step.remote(epoch, index, loss, sync) for w in ws]), {})
        for d in (d for d in range(st.depth, 0, -1) if d in st.backward):
            cot = {p.input: adj[p.input] for p in st.at(d)}
            more = self._get([w.backward_stage.remote(epoch, index, loss, d, sync, cot) for w in ws])
            adj = _combine([adj] + more, {})
        return [(w, w.finish.remote()) for w in ws]

    def _step(self, epoch: int, index: int, loss: str) -> dict[str, float]:
        if self.stages.points:
            parts = self._sync_stages(epoch, index, loss)
        else:
            parts = [(w, w.gradient_step.remote(epoch, index, loss)) for w in self.workers]
        n = len(parts)
        if n & (n - 1) == 0:       # a power of two: each worker sums its own copy
            totals = butterfly_sum(parts, lambda w, a, b: w.add.remote(a, b))
        else:                      # else a tree to one worker, which the rest read
            totals = [tree_sum(parts, lambda w, a, b: w.add.remote(a, b))] * n
        done = [w.apply_step.remote(total, loss) for w, total in zip(self.workers, totals)]
        values = self._get(done)[0]
        for name in self.manifest.losses:
            if not math.isfinite(values.get(name, 0.0)):
                raise TrainingDiverged(f"training diverged at step {self.step + 1} (epoch {self.epoch + 1}): "
                                       f"loss `{name}` is {values[name]} (train with one worker to find the node)",
                                       self.step + 1, name, values[name], None)
        return values

    def train_step(self, batch):
        raise RuntimeFailure("ParallelTrainer steps through fit(); use Trainer for single steps")

    def close(self) -> None:
        self.shutdown_workers()
