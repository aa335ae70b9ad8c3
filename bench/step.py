"""Benchmark (issue 11): one training step, dslc vs PyTorch, on four workloads.

    python bench/step.py [--rounds 5] [--threads 2] [--warm 0.25] [--only w1,w2] [--device cpu|cuda]

W1  MLP 64-256-256-10, batch 64, Adam          bench/specs/w1_mlp.dl
W1b MLP 784-1024-1024-10, batch 512, Adam      bench/specs/w1b_mlp.dl
W2  LeNet-5 on [64, 1, 28, 28], SGD momentum   bench/specs/w2_lenet.dl
W3  LSTM T = 32, in 64, hidden 128, batch 32   bench/specs/w3_lstm.dl

For each workload the torch model starts from dslc's initial weights and both
run 5 steps on the same batches; the losses must agree within 1e-4. Then the
systems are timed interleaved in this one process: in each round every system
runs one block of steps (the order rotates per round), once no other thread of
the process has run for 30 ms (thread pools spin on after their last step:
onnxruntime's for ~60 ms) and after untimed warm-up steps (a quarter of the
block, at least 5: a system's first steps after another system's block are
slow); a block's ms/step is its wall time over its timed
steps, and the table shows the median over rounds. Blocks
in which other processes used more than 10% of the machine's CPU (read from
/proc/stat against this process's own CPU time) are flagged with `*`, and the
median is taken over the clean blocks when there are any. The paired column is
the median, over rounds, of the Trainer's block time over the best torch
system's block time in the same round (with its quartiles): adjacent blocks see
the same machine, so this ratio moves less than the ratio of the medians when
the machine's speed drifts (it does on shared VMs).

Systems: dslc Trainer (Trainer.train_step), dslc raw (plain onnxruntime,
IOBinding bound once, two buffer sets swapped per step), torch eager
(torch.optim, for-loop kernels) and torch fused (fused=True, else foreach).
Also: compile time of width-64 MLPs of depth 10/25/50/100 and the training
graphs' node counts by op type. torch is a benchmark-only dependency
(`pip install -e ".[bench]"`).
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent
SPECS = ROOT / "specs"
WORKLOADS = {          # name -> (spec, model, data shapes: (x shape, classes))
    "W1": ("w1_mlp.dl", "w1", {"x": (64, 64)}),
    "W1b": ("w1b_mlp.dl", "w1b", {"x": (512, 784)}),
    "W2": ("w2_lenet.dl", "w2", {"x": (64, 1, 28, 28)}),
    "W3": ("w3_lstm.dl", "w3", {"xs": (32, 32, 64)}),
}
CLASSES = 10
VERIFY_STEPS = 5
WARM_MIN = 5          # untimed steps before each block, at least (--warm: its share of the block)
TOL = 1e-4


# -- data ------------------------------------------------------------------------------------
def batches(wl: str, n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    (name, shape), = WORKLOADS[wl][2].items()
    b = shape[1] if name == "xs" else shape[0]
    return [{name: rng.standard_normal(shape).astype(np.float32),
             "y": rng.integers(0, CLASSES, size=b).astype(np.int64)} for _ in range(n)]


def compile_workload(wl: str):
    import dslc
    spec, model, _ = WORKLOADS[wl]
    return dslc.compile(dslc.load(str(SPECS / spec)), model)


def initial_params(c) -> dict[str, np.ndarray]:
    inits = {t.name: t for t in c.training.graph.initializer}
    return {e["input"]: numpy_helper.to_array(inits[e["input"]]).copy()
            for e in c.manifest["carried"] if e["kind"] == "param"}


# -- dslc systems ----------------------------------------------------------------------------
class DslcTrainer:
    """The documented path: dslc.Trainer(...).train_step(batch)."""

    def __init__(self, c, threads, device):
        import dslc
        self.t = dslc.Trainer(c, device=device, threads=threads, log=lambda *a: None)

    def step(self, batch) -> float:
        return self.t.train_step(batch)["loss"]


class DslcRaw:
    """The fastest plain-onnxruntime loop we know: every input and output bound
    once into two IOBindings over two buffer sets (A -> B, B -> A) that
    alternate; per step only the batch is copied in."""

    def __init__(self, c, threads, device):
        from dslc_runtime.session import make_session
        kind = "cuda" if device.startswith("cuda") else "cpu"
        self.sess = make_session(c.training, device, threads)
        man = c.manifest
        # fresh (aligned, writable) copies, as the Trainer makes: to_array's arrays view protobuf bytes
        inits = {t.name: np.array(numpy_helper.to_array(t), copy=True) for t in c.training.graph.initializer}
        ov = lambda a: ort.OrtValue.ortvalue_from_numpy(np.asarray(a), kind, 0)   # noqa: E731
        sets = [{e["input"]: ov(inits[e["input"]]) for e in man["carried"]},
                {e["input"]: ov(np.zeros_like(inits[e["input"]])) for e in man["carried"]}]
        hyper = {h["name"]: ov(np.asarray(h["default"], dtype=h["dtype"])) for h in man["hyper"]}
        self.data = [d["name"] for d in man["data"]]
        self.loss = {nm: ort.OrtValue.ortvalue_from_numpy(np.zeros((), np.float32)) for nm in man["losses"]}
        self.metrics = {nm: ort.OrtValue.ortvalue_from_numpy(np.zeros((), np.float32)) for nm in man["metrics"]}
        self.bindings = []
        for src, dst in ((0, 1), (1, 0)):
            b = self.sess.io_binding()
            for e in man["carried"]:
                b.bind_ortvalue_input(e["input"], sets[src][e["input"]])
                b.bind_ortvalue_output(e["output"], sets[dst][e["input"]])
            for k, v in hyper.items():
                b.bind_ortvalue_input(k, v)
            for k, v in {**self.loss, **self.metrics}.items():
                b.bind_ortvalue_output(k, v)
            self.bindings.append(b)
        self.kind, self.k = kind, 0
        self.sets = sets
        self.loss_name = man["losses"][0]

    def step(self, batch) -> float:
        b = self.bindings[self.k]
        for name in self.data:
            b.bind_cpu_input(name, batch[name])
        self.sess.run_with_iobinding(b)
        self.k ^= 1
        return float(self.loss[self.loss_name].numpy())


# -- torch systems ---------------------------------------------------------------------------
def torch_model(wl: str, params: dict, device: str):
    """The same network in PyTorch, functional, over tensors holding dslc's initial
    values (dslc's dense is x @ W + b with W [n, m]; torch's addmm does the same)."""
    import torch
    import torch.nn.functional as F
    dev = torch.device(device)
    P = {k: torch.nn.Parameter(torch.tensor(v, device=dev)) for k, v in params.items()}

    if wl in ("W1", "W1b"):
        def fwd(x):
            h = F.relu(torch.addmm(P["h1.b"], x, P["h1.W"]))
            h = F.relu(torch.addmm(P["h2.b"], h, P["h2.W"]))
            return torch.addmm(P["logits.b"], h, P["logits.W"])
        return fwd, list(P.values())
    if wl == "W2":
        def fwd(x):
            h = F.max_pool2d(F.relu(F.conv2d(x, P["c1.W"], P["c1.b"], padding=2)), 2)
            h = F.max_pool2d(F.relu(F.conv2d(h, P["c2.W"], P["c2.b"])), 2)
            h = h.flatten(1)
            h = F.relu(torch.addmm(P["f1.b"], h, P["f1.W"]))
            h = F.relu(torch.addmm(P["f2.b"], h, P["f2.W"]))
            return torch.addmm(P["logits.b"], h, P["logits.W"])
        return fwd, list(P.values())
    if wl == "W3":
        # dslc's lstm_cell: gates = [x, h] @ W + b in the order i f o g; torch's LSTM: i f g o
        W, b = params["hs.W"], params["hs.b"]
        n, m = W.shape[0] - W.shape[1] // 4, W.shape[1] // 4
        perm = np.concatenate([np.arange(0, 2 * m), np.arange(3 * m, 4 * m), np.arange(2 * m, 3 * m)])
        lstm = torch.nn.LSTM(n, m).to(dev)
        with torch.no_grad():
            lstm.weight_ih_l0.copy_(torch.tensor(W[:n, perm].T.copy()))
            lstm.weight_hh_l0.copy_(torch.tensor(W[n:, perm].T.copy()))
            lstm.bias_ih_l0.copy_(torch.tensor(b[perm]))
            lstm.bias_hh_l0.zero_()
        lstm.bias_hh_l0.requires_grad_(False)    # dslc has one bias; torch's second stays 0
        Wo, bo = P["logits.W"], P["logits.b"]

        def fwd(xs):
            hs, _ = lstm(xs)
            return torch.addmm(bo, hs[-1], Wo)
        return fwd, [p for p in lstm.parameters() if p.requires_grad] + [Wo, bo]
    raise KeyError(wl)


class Torch:
    def __init__(self, wl, c, threads, device, fused: bool):
        import torch
        self.torch = torch
        self.dev = torch.device(device)
        self.fwd, params = torch_model(wl, initial_params(c), device)
        setup = c.setup.optimizer
        args = dict(setup.args)
        flags = {}
        if fused:
            flags = {"fused": True}
        else:
            flags = {"foreach": False}
        if setup.kind == "adam":
            make = lambda **f: torch.optim.Adam(params, lr=args.get("lr", 1e-3), **f)   # noqa: E731
        else:
            make = lambda **f: torch.optim.SGD(params, lr=args["lr"], momentum=args.get("momentum", 0.0), **f)  # noqa: E731
        try:
            self.opt = make(**flags)
            self.how = "fused" if fused else "for-loop"
        except (RuntimeError, TypeError, ValueError):
            self.opt = make(foreach=True)
            self.how = "foreach"
        self.cache = {}

    def _t(self, batch):
        key = id(batch)
        if key not in self.cache:
            self.cache[key] = {k: self.torch.from_numpy(v).to(self.dev) for k, v in batch.items()}
        return self.cache[key]

    def step(self, batch) -> float:
        F = self.torch.nn.functional
        b = self._t(batch)
        x = b["x"] if "x" in b else b["xs"]
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.fwd(x), b["y"])
        loss.backward()
        self.opt.step()
        return float(loss.item())


# -- timing ----------------------------------------------------------------------------------
def _busy_jiffies() -> int:
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = list(map(int, parts))
    return sum(vals) - vals[3] - vals[4]     # all but idle and iowait


def _other_threads_jiffies() -> int | None:
    """CPU time (clock ticks) of this process's threads other than the calling one; None off Linux."""
    me = threading.get_native_id()
    total = 0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        if int(tid) == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:      # the thread ended
            continue
        total += int(fields[11]) + int(fields[12])      # utime + stime
    return total


def settle(limit: float = 1.0, quiet: float = 0.03) -> float:
    """Wait until no other thread of this process has run for `quiet` seconds (at most
    `limit`); returns the seconds waited. A system's thread pool spins on after its last
    step: onnxruntime's intra-op workers for about 60 ms on round 9's machine, holding a
    core through the next system's warm-up and into its timed block."""
    t0 = time.perf_counter()
    prev = _other_threads_jiffies()
    if prev is None:
        time.sleep(min(limit, 0.1))
        return time.perf_counter() - t0
    now = still = t0
    while now - t0 < limit:
        time.sleep(0.01)
        cur, now = _other_threads_jiffies(), time.perf_counter()
        if cur != prev:
            prev, still = cur, now
        elif now - still >= quiet:
            break
    return now - t0


def timed_block(system, data, steps: int, sync=None, warm: int = 0) -> tuple[float, float]:
    """(ms per step, share of the machine other processes used during the block), after
    `warm` untimed steps: the first steps after another system ran are slow (its thread
    pool held the cores, ours is parked and its caches cold; W3 measured 11-15 ms for raw's
    first 5 steps after the Trainer's block against 7.5 steady). settle() before the block
    waits out the other pool's spinning; the warm-up covers the rest."""
    for i in range(warm):
        system.step(data[i % len(data)])
    if sync and warm:
        sync()
    hz = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count() or 1
    j0, c0, t0 = _busy_jiffies(), time.process_time(), time.perf_counter()
    for i in range(steps):
        system.step(data[i % len(data)])
    if sync:
        sync()
    t1, c1, j1 = time.perf_counter(), time.process_time(), _busy_jiffies()
    wall = t1 - t0
    other = max(0.0, (j1 - j0) / hz - (c1 - c0))
    return 1e3 * wall / steps, other / (wall * ncpu)


def paired_ratios(a: list, b: list) -> tuple[float, float, float]:
    """Quartiles (q1, median, q3) of a's block / b's block, round by round: each pair ran
    back to back, so a slow drift of the machine cancels in the ratio. Rounds where either
    block was flagged (other processes > 10%) are left out when any clean round is left."""
    pairs = [(x, y) for x, y in zip(a, b)]
    clean = [x[0] / y[0] for x, y in pairs if x[1] <= 0.10 and y[1] <= 0.10]
    r = clean or [x[0] / y[0] for x, y in pairs]
    if len(r) == 1:
        return r[0], r[0], r[0]
    q1, q2, q3 = statistics.quantiles(r, n=4)
    return q1, statistics.median(r), q3


def compile_times(depths=(10, 25, 50, 100), width=64, repeat=3) -> dict[int, tuple[float, float]]:
    """Seconds to parse, and to compile (all three graphs), a width-64 MLP of each depth."""
    import dslc
    out = {}
    for d in depths:
        lines = [f"model mlp{d} {{", f"    input x: f32[B, {width}]", "    input y: i64[B]",
                 "    h0 = x"]
        lines += [f"    h{i + 1} = dense(h{i}, {width}, act = relu)" for i in range(d)]
        lines += [f"    logits = dense(h{d}, 10)", "    loss = cross_entropy(logits, y)", "}",
                  f"train mlp{d} {{", "    optimizer = adam(lr = 1e-3)", "}"]
        text = "\n".join(lines)
        best_p, best_c = float("inf"), float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            prog = dslc.parse(text, f"mlp{d}.dl")
            t1 = time.perf_counter()
            dslc.compile(prog)
            t2 = time.perf_counter()
            best_p, best_c = min(best_p, t1 - t0), min(best_c, t2 - t1)
        out[d] = (best_p, best_c)
    return out


def node_counts(c) -> collections.Counter:
    def walk(g, cnt):
        for n in g.node:
            cnt[n.op_type] += 1
            for a in n.attribute:
                if a.g is not None and a.g.node:
                    walk(a.g, cnt)
        return cnt
    return walk(c.training.graph, collections.Counter())


# -- main ------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (one block per system each)")
    ap.add_argument("--block", type=float, default=0.4, help="target seconds per block")
    ap.add_argument("--warm", type=float, default=0.25,
                    help="untimed warm-up steps before each block, as a share of it (at least 5; 0: none)")
    ap.add_argument("--no-settle", action="store_true",
                    help="start each block at once, without waiting for the last system's threads to stop")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads for ORT and torch")
    ap.add_argument("--only", default="", help="comma-separated workloads (W1,W1b,W2,W3)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (needs onnxruntime-gpu and torch CUDA)")
    ap.add_argument("--no-compile", action="store_true", help="skip the compile-time figures")
    ap.add_argument("--counts", action="store_true", help="print training-graph node counts by op type")
    a = ap.parse_args(argv)
    if a.device.startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"--device {a.device}: cannot run on CUDA here: this onnxruntime has no CUDA provider "
              f"(available: {', '.join(ort.get_available_providers())}); pip install -e '.[gpu]' "
              "on a machine with an NVIDIA GPU", file=sys.stderr)
        return 2
    try:
        import torch
    except ImportError:
        print("bench/step.py needs PyTorch: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {a.device}: cannot run on CUDA here: this torch ({torch.__version__}) sees no CUDA device",
              file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)      # as dslc's sessions do (session.set_denormal_as_zero)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else None
    names = [w for w in WORKLOADS if not a.only or w.lower() in a.only.lower().split(",")]
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  onnxruntime {ort.__version__}, torch {torch.__version__}, "
          f"{a.threads} threads, device {a.device}, load average at start {os.getloadavg()}")
    rows = []
    for wl in names:
        c = compile_workload(wl)
        data = batches(wl, 8)
        systems = {"dslc Trainer": DslcTrainer(c, a.threads, a.device),
                   "dslc raw": DslcRaw(c, a.threads, a.device),
                   "torch eager": Torch(wl, c, a.threads, a.device, fused=False),
                   "torch fused": Torch(wl, c, a.threads, a.device, fused=True)}
        # the same 5 steps from the same weights: every system against torch eager
        ref = [systems["torch eager"].step(data[i]) for i in range(VERIFY_STEPS)]
        for nm, s in systems.items():
            if nm == "torch eager":
                continue
            got = [s.step(data[i]) for i in range(VERIFY_STEPS)]
            diff = max(abs(x - y) for x, y in zip(got, ref))
            status = "ok" if diff <= TOL else "MISMATCH"
            print(f"  {wl} {nm:<13} 5 losses vs torch eager: max |diff| {diff:.2e} {status}")
            if diff > TOL:
                print(f"    dslc {got}\n    torch {ref}")
                return 1
        # block size: about --block seconds of the slowest system
        per = {}
        for nm, s in systems.items():
            per[nm] = timed_block(s, data, 3, sync)[0]
        steps = max(3, int(1e3 * a.block / max(per.values())))
        warm = max(WARM_MIN, int(steps * a.warm)) if a.warm > 0 else 0
        times = {nm: [] for nm in systems}
        waits = {nm: [] for nm in systems}     # settling time after each system's block
        order = list(systems)
        prev = None
        for r in range(a.rounds):
            for nm in order[r % len(order):] + order[:r % len(order)]:
                if not a.no_settle:
                    w = settle()
                    if prev is not None:
                        waits[prev].append(w)
                times[nm].append(timed_block(systems[nm], data, steps, sync, warm))
                prev = nm
        med = {}
        for nm, blocks in times.items():
            clean = [ms for ms, other in blocks if other <= 0.10]
            med[nm] = (statistics.median(clean or [ms for ms, _ in blocks]), len(blocks) - len(clean),
                       max(o for _, o in blocks))
        best_torch = min(med["torch eager"][0], med["torch fused"][0])
        best_nm = "torch eager" if med["torch eager"][0] <= med["torch fused"][0] else "torch fused"
        paired = {nm: paired_ratios(times[nm], times[best_nm]) for nm in ("dslc Trainer", "dslc raw")}
        rows.append((wl, med, best_torch, steps, systems["torch fused"].how, paired))
        if not a.no_settle:
            print(f"  {wl} settled after each block (median / max ms): " + ", ".join(
                f"{nm} {1e3 * statistics.median(w):.0f} / {1e3 * max(w):.0f}" for nm, w in waits.items() if w))
        if a.counts:
            cnt = node_counts(c)
            print(f"  {wl} training graph: {sum(cnt.values())} ONNX nodes: "
                  + ", ".join(f"{k} {v}" for k, v in cnt.most_common()))
    print()
    print("| workload | dslc Trainer | dslc raw | torch eager | torch fused | Trainer / best torch "
          "| paired (IQR) | raw / best torch |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for wl, med, best, steps, how, paired in rows:
        cell = lambda nm: f"{med[nm][0]:.3f}" + ("*" * (med[nm][1] > 0))   # noqa: E731
        q = paired["dslc Trainer"]
        print(f"| {wl} | {cell('dslc Trainer')} | {cell('dslc raw')} | {cell('torch eager')} | "
              f"{cell('torch fused')} ({how}) | {med['dslc Trainer'][0] / best:.2f} | "
              f"{q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f}) | {med['dslc raw'][0] / best:.2f} |")
    print(f"(ms/step, median of {a.rounds} interleaved blocks; * = some blocks had other processes using "
          f">10% of the CPU; paired = median over rounds of the Trainer block / the best torch system's "
          f"block of the same round, with the quartiles; load average now {os.getloadavg()})")
    if not a.no_compile:
        print()
        print("| MLP depth (width 64) | parse s | compile s (3 graphs) |")
        print("| --- | --- | --- |")
        for d, (p, cc) in compile_times().items():
            print(f"| {d} | {p:.3f} | {cc:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
