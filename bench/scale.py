"""Data-parallel scaling on Ray (issue 14): examples/s of W1b (784-1024-1024-10,
global batch 512, Adam) for one process and for 1 and 2 Ray workers, one ONNX
Runtime thread each, on synthetic data; optionally on a two-node Ray cluster.

    python bench/scale.py                      # local Ray: 1 process, 1 and 2 workers
    python bench/scale.py --address 127.0.0.1:6390   # a running cluster (see bench/README.md)

Prints one table; what a step sends is computed from the gradient size.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import dslc
from dslc_runtime import Trainer
from dslc_runtime.parallel import ParallelTrainer

SPEC = os.path.join(os.path.dirname(__file__), "specs", "w1b_mlp.dl")


def data(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 784)).astype(np.float32), "y": rng.integers(0, 10, n).astype(np.int64)}


def rate(trainer, arrays, epochs: int) -> float:
    """Examples per second over the epochs after a warm-up epoch (counted from the
    steps actually run, whatever fit's epoch semantics)."""
    trainer.fit(arrays, epochs=1, progress=False)          # warm-up: sessions, first transfers
    s0, t0 = trainer.step, time.perf_counter()
    trainer.fit(arrays, epochs=trainer.epoch + epochs, progress=False)
    return (trainer.step - s0) * 512 / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", help="a running Ray cluster (default: start a local one)")
    ap.add_argument("--batches", type=int, default=20, help="batches of 512 per timed epoch")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per configuration")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    if a.address is None:                       # one local Ray for every configuration
        import ray
        ray.init(num_cpus=max(a.workers), include_dashboard=False, log_to_driver=False, configure_logging=False)
    c = dslc.compile(dslc.load(SPEC), split=True)
    arrays = data(512 * a.batches)
    quiet = dict(log=lambda *x: None, batch=512)
    grads = sum(int(np.prod(ci.shape)) for ci in Trainer(c, **quiet).manifest.carried if ci.kind == "param")
    print(f"W1b: {grads:,} params, gradient vector {grads * 4 / 2**20:.1f} MiB per worker per step; "
          f"load {os.getloadavg()[0]:.2f}")
    rows = [("one process (Trainer, 1 thread)", rate(Trainer(c, threads=1, **quiet), arrays, a.epochs))]
    for n in a.workers:
        t = ParallelTrainer(c, workers=n, address=a.address, threads=1, **quiet)
        try:
            rows.append((f"Ray, {n} worker{'s' if n > 1 else ''} (1 thread each)", rate(t, arrays, a.epochs)))
        finally:
            t.close()
    base = rows[0][1]
    print(f"{'configuration':40s} {'examples/s':>12s} {'vs one process':>15s}")
    for name, r in rows:
        print(f"{name:40s} {r:12.0f} {r / base:15.2f}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
