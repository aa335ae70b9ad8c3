"""Private A/B timing for the scan passes (issue 11, W3): the training step of
bench/specs/lstm.dl (T = 32, B = 32, input 64, hidden 128, Adam) in plain ONNX
Runtime, interleaved with earlier saved graphs and with eager PyTorch
(nn.LSTM + Linear + Adam, same sizes). Benchmark only: torch is optional.

    python bench/scan_ab.py --save NAME            # compile this tree, keep /tmp/scan_ab/NAME.onnx
    python bench/scan_ab.py A.onnx B.onnx --torch  # interleaved blocks, median ms/step
    python bench/scan_ab.py --profile B.onnx       # ORT profiler: time by op type
    python bench/scan_ab.py --parts B.onnx         # each Scan / GEMM of the step alone, as a sub-model

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

    def __init__(self, model: onnx.ModelProto, threads: int = 2, profile: bool = False, spin: bool = False):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
        if not spin:                 # no spinning into torch's blocks (parts() settles instead)
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
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


# -- the step's heavy nodes alone ---------------------------------------------------------
HEAVY = ("Scan", "Loop", "MatMul", "Gemm", "Conv", "ConvTranspose")


def step_values(model: onnx.ModelProto, batch: dict) -> dict[str, np.ndarray]:
    """Every top-level value of one training step from the initial state, by name."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        m.graph.output.extend(onnx.helper.make_empty_tensor_value_info(o) for o in n.output if o and o not in have)
        have |= set(n.output)
    loop = OrtLoop(m)
    names = [o.name for o in loop.sess.get_outputs()]
    feed = {**batch, **loop.state, **loop.hyper}
    vals = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    vals.update(feed)
    vals.update(zip(names, loop.sess.run(names, feed)))
    return vals


def node_model(model: onnx.ModelProto, node: onnx.NodeProto, vals: dict) -> tuple[onnx.ModelProto, dict]:
    """(a model of `node` alone, its feed): the node's inputs and the names its bodies
    read from outside become graph inputs, fed the values of the real step."""
    from dslc.onnx_import.importer import outer_names
    ins = list(dict.fromkeys(i for i in node.input if i))
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            ins += sorted(outer_names(a.g) - set(ins))
    h = onnx.helper
    g = h.make_graph([node], "part", [h.make_tensor_value_info(i, h.np_dtype_to_tensor_dtype(vals[i].dtype),
                                                               vals[i].shape) for i in ins],
                     [h.make_empty_tensor_value_info(o) for o in node.output if o])
    m = h.make_model(g, opset_imports=model.opset_import)
    m.ir_version = model.ir_version
    return m, {i: vals[i] for i in ins}


def _bench_step():
    """bench/step.py as a module (this script runs from anywhere, and under pytest)."""
    import importlib.util
    if "bench_step" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_step", ROOT / "bench" / "step.py")
        sys.modules["bench_step"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["bench_step"])
    return sys.modules["bench_step"]


def _times_us(run, reps: int) -> tuple[float, float]:
    _bench_step().settle()           # wait until onnxruntime's workers stop spinning
    for _ in range(3):
        run()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6, min(ts) * 1e6        # the minimum: what the host's bursts leave


def parts(model: onnx.ModelProto, threads: int = 2, reps: int = 50, ops=HEAVY,
          batch: dict | None = None) -> list[tuple[str, str, tuple]]:
    """[(op, first output, (median us, minimum us))]: the whole step (plain run from the initial
    state, on `batch`, by default one of this script's LSTM batches), then each top-level node
    with an op in `ops` alone. What the whole step spends beyond their sum is the small ops
    between them and Run's own cost."""
    from dslc_runtime.session import make_session
    batch = batch if batch is not None else batches(1)[0]
    vals = step_values(model, batch)
    loop = OrtLoop(model, threads, spin=True)        # spinning on, as in the sub-models' sessions
    feed = {**batch, **loop.state, **loop.hyper}
    out = [("step", "", _times_us(lambda: loop.sess.run(loop.outs, feed), reps))]
    for n in model.graph.node:
        if n.op_type in ops:
            m, f = node_model(model, n, vals)
            s = make_session(m, "cpu", threads)
            out.append((n.op_type, n.output[0], _times_us(lambda: s.run(None, f), reps)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("graphs", nargs="*", help="saved training graphs to compare (A B ...)")
    ap.add_argument("--save", help="compile this tree and save it as /tmp/scan_ab/NAME.onnx")
    ap.add_argument("--torch", action="store_true", help="also time eager PyTorch")
    ap.add_argument("--profile", help="ORT profile of this saved graph")
    ap.add_argument("--parts", help="time the step of this saved graph and each of its Scans and GEMMs alone")
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
    if a.parts:
        print(f"load before: {os.getloadavg()}")
        rows = parts(onnx.load(a.parts), reps=a.block * 5)
        print(f"  {'':<33} {'median':>9} {'minimum':>9} us")
        for op, name, (med, low) in rows:
            print(f"  {op:<8} {name:<24} {med:9.1f} {low:9.1f}")
        rest = [rows[0][2][k] - sum(r[2][k] for r in rows[1:]) for k in (0, 1)]
        print(f"  {'the rest (small ops, Run)':<33} {rest[0]:9.1f} {rest[1]:9.1f}")
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
