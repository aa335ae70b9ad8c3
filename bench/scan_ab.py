"""Private A/B timing for the scan passes (issue 11, W3): the training step of
bench/specs/lstm.dl (T = 32, B = 32, input 64, hidden 128, Adam) in plain ONNX
Runtime, interleaved with earlier saved graphs and with eager PyTorch
(nn.LSTM + Linear + Adam, same sizes). Benchmark only: torch is optional.

    python bench/scan_ab.py --save NAME            # compile this tree, keep /tmp/scan_ab/NAME.onnx
    python bench/scan_ab.py A.onnx B.onnx --torch  # interleaved blocks, median ms/step
    python bench/scan_ab.py --profile B.onnx       # ORT profiler: time by op type

Measured 2026-12-02 08:48 UTC, load average 0.2 (quiet), 9 rounds x 10 steps, 2 threads:
before the scan passes 13.00 ms/step (3.11x torch), after 6.95 ms/step (1.66x), torch
eager 4.17 ms/step. CPU time per step: 18.4 / 9.4 / 8.2 ms (dslc now does about
torch's work but keeps only ~1.35 of the 2 cores busy: the per-step ops are small).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "bench" / "specs" / "lstm.dl"
OUT = Path("/tmp/scan_ab")
T, B, N, H, C = 32, 32, 64, 128, 10


def compile_spec(spec: Path = SPEC, optimize: bool = True) -> onnx.ModelProto:
    import dslc
    return dslc.compile(dslc.load(str(spec)), optimize=optimize).training


def op_counts(model: onnx.ModelProto) -> tuple[int, int, collections.Counter]:
    """(top-level nodes, nodes with Scan bodies, ops counted over both)."""
    ops: collections.Counter = collections.Counter()
    top, stack = len(model.graph.node), [model.graph]
    while stack:
        g = stack.pop()
        for n in g.node:
            ops[n.op_type] += 1
            stack.extend(a.g for a in n.attribute if a.type == onnx.AttributeProto.GRAPH)
    return top, sum(ops.values()), ops


class OrtLoop:
    """The raw training loop: carried outputs fed back as inputs."""

    def __init__(self, model: onnx.ModelProto, threads: int = 2, profile: bool = False):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")   # no spinning into torch's blocks
        so.log_severity_level = 3
        so.enable_profiling = profile
        self.sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        man = json.loads(next(p.value for p in model.metadata_props if p.key == "dslc.manifest"))
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
        self.carried = [(e["input"], e["output"]) for e in man["carried"]]
        self.state = {i: inits[i] for i, _ in self.carried}
        self.hyper = {h["name"]: inits[h["name"]] for h in man["hyper"]}
        self.outs = [o for _, o in self.carried] + man["losses"]

    def step(self, batch: dict) -> float:
        res = self.sess.run(self.outs, {**batch, **self.state, **self.hyper})
        for (i, _), v in zip(self.carried, res):
            self.state[i] = v
        return float(res[-1])


class TorchLoop:
    def __init__(self, threads: int = 2):
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.torch = torch
        self.lstm, self.lin = torch.nn.LSTM(N, H), torch.nn.Linear(H, C)
        self.opt = torch.optim.Adam(list(self.lstm.parameters()) + list(self.lin.parameters()), lr=1e-3)

    def step(self, batch: dict) -> float:
        torch = self.torch
        xs, y = torch.from_numpy(batch["xs"]), torch.from_numpy(batch["y"])
        self.opt.zero_grad()
        hs, _ = self.lstm(xs)
        loss = torch.nn.functional.cross_entropy(self.lin(hs[-1]), y)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def batches(n: int, seed: int = 0):
    r = np.random.default_rng(seed)
    return [{"xs": r.standard_normal((T, B, N)).astype(np.float32),
             "y": r.integers(0, C, B).astype(np.int64)} for _ in range(n)]


def timed(systems: dict, rounds: int, block: int) -> dict:
    data = batches(block)
    for s in systems.values():                      # warm up
        for b in data[:3]:
            s.step(b)
    times: dict = {k: [] for k in systems}
    cpu: dict = {k: [] for k in systems}
    for _ in range(rounds):
        for k, s in systems.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for b in data:
                s.step(b)
            times[k].append((time.perf_counter() - t0) / block * 1e3)
            cpu[k].append((time.process_time() - c0) / block * 1e3)
    return {k: (statistics.median(v), statistics.median(cpu[k])) for k, v in times.items()}


def profile(model: onnx.ModelProto, steps: int = 30) -> None:
    loop = OrtLoop(model, profile=True)
    for b in batches(steps):
        loop.step(b)
    path = loop.sess.end_profiling()
    by: collections.Counter = collections.Counter()
    for ev in json.load(open(path)):
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            by[ev["args"]["op_name"]] += ev["dur"]
    os.remove(path)
    scan = by.pop("Scan", 0)
    tot = sum(by.values())
    print(f"  Scan (whole loops) {scan / steps / 1e3:8.3f} ms/step; ops inside and outside the loops:")
    for op, us in by.most_common(15):
        print(f"  {op:<20} {us / steps / 1e3:8.3f} ms/step  {100 * us / tot:5.1f}%")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("graphs", nargs="*", help="saved training graphs to compare (A B ...)")
    ap.add_argument("--save", help="compile this tree and save it as /tmp/scan_ab/NAME.onnx")
    ap.add_argument("--torch", action="store_true", help="also time eager PyTorch")
    ap.add_argument("--profile", help="ORT profile of this saved graph")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--block", type=int, default=20)
    a = ap.parse_args(argv)
    if a.save:
        OUT.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        m = compile_spec()
        print(f"compiled in {time.perf_counter() - t0:.2f} s")
        onnx.save(m, OUT / f"{a.save}.onnx")
        top, tot, ops = op_counts(m)
        print(f"{a.save}: {top} top-level nodes, {tot} with bodies; {dict(ops.most_common(12))}")
    if a.profile:
        profile(onnx.load(a.profile))
    if a.graphs or a.torch:
        systems = {Path(g).stem: OrtLoop(onnx.load(g)) for g in a.graphs}
        if a.torch:
            systems["torch"] = TorchLoop()
        print(f"load before: {os.getloadavg()}")
        res = timed(systems, a.rounds, a.block)
        print(f"load after:  {os.getloadavg()}")
        ref = res.get("torch")
        print("  (wall ms/step; CPU ms/step of both threads, the work done, less sensitive to load)")
        for k, (v, c) in res.items():
            print(f"  {k:<16} {v:8.2f} wall {c:8.2f} cpu" + (f"   {v / ref[0]:5.2f}x / {c / ref[1]:5.2f}x torch"
                                                            if ref else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
