"""Data-parallel training (dslc_runtime.parallel): N workers with B/N rows each
equal one process with batch B; worker loss and resume with another N."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import dslc
from dslc_runtime import Trainer
from dslc_runtime.parallel import ParallelTrainer, shard_bounds, tree_sum

SPECS = os.path.join(os.path.dirname(__file__), "..", "specs")

DROPOUT = """
model drop {
    input x: f32[B, 64]
    input y: i64[B]
    h = dropout(dense(dropout(x, 0.2), 64, act = relu), 0.3)
    logits = dense(h, 10)
    output probs = softmax(logits)
    loss = cross_entropy(logits, y)
    metric acc = accuracy(logits, y)
}
train drop {
    data = "digits"
    split = 0.8
    optimizer = adam(lr = 1e-3)
    clip = norm(1)
    batch = 32
    epochs = 1
    seed = 3
}
"""


# batch norm (rows meet in the batch statistics) and dropout: the exact path of sync.py
BN_DROPOUT = """
layer bn_linear(x: [B, n], m: int) {
    param W: [n, m] ~ glorot_uniform
    return x @ W
}
model bn {
    input x: f32[B, 64]
    input y: i64[B]
    h1 = dropout(relu(batch_norm(bn_linear(x, 48))), 0.2)
    h2 = relu(batch_norm(bn_linear(h1, 32)))
    logits = dense(h2, 10)
    output probs = softmax(logits)
    loss = cross_entropy(logits, y)
    metric acc = accuracy(logits, y)
}
train bn {
    data = "digits"
    split = 0.8
    optimizer = adam(lr = 1e-2)
    batch = 32
    epochs = 1
    seed = 5
}
"""
SOURCES = {"dropout": DROPOUT, "bn_dropout": BN_DROPOUT}


def _compiled(text=None, path=None):
    prog = dslc.parse(text, "<test>") if text else dslc.load(path)
    return dslc.compile(prog, split=True)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


def test_shard_bounds_cover_the_batch_in_order():
    assert shard_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert shard_bounds(2, 3) == [(0, 1), (1, 2), (2, 2)]
    for b in range(1, 20):
        for n in range(1, 6):
            bounds = shard_bounds(b, n)
            assert bounds[0][0] == 0 and bounds[-1][1] == b
            assert all(x[1] == y[0] for x, y in zip(bounds, bounds[1:]))


def test_tree_sum_adds_everything_once():
    for n in range(1, 9):
        calls = []

        def add(w, a, b):
            calls.append(w)
            return a + b
        assert tree_sum([(i, 10 ** i) for i in range(n)], add) == sum(10 ** i for i in range(n))
        assert len(calls) == n - 1


def test_butterfly_gives_every_worker_the_same_sum():
    from dslc_runtime.parallel import butterfly_sum
    rng = np.random.default_rng(0)
    for n in (1, 2, 4, 8):
        vals = [rng.normal(size=1000).astype(np.float32) for _ in range(n)]
        calls = []

        def add(w, a, b):
            calls.append(w)
            return a + b
        out = butterfly_sum(list(enumerate(vals)), add)
        assert len(out) == n and len(calls) == n * (n.bit_length() - 1)
        for o in out:
            np.testing.assert_array_equal(o, out[0])           # the same bits on every worker
        np.testing.assert_allclose(out[0], np.sum(vals, axis=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", ["digits", "dropout", "bn_dropout"])
@pytest.mark.parametrize("workers", [2, 3])
def test_workers_equal_one_process(spec, workers):
    c = _compiled(path=os.path.join(SPECS, "digits.dl")) if spec == "digits" else _compiled(SOURCES[spec])
    assert bool(c.sync) == (spec == "bn_dropout")
    data = _subset(c, 400)
    single = Trainer(c, log=lambda *a: None, batch=32)
    single.fit(data, epochs=1, progress=False)
    par = ParallelTrainer(c, workers=workers, backend="local", log=lambda *a: None, batch=32)
    par.fit(data, epochs=1, progress=False)
    assert par.step == single.step == 10     # split 0.8: 320 rows, 10 steps
    a, b = par.carried_values(), single.carried_values()
    assert set(a) == set(b)
    for k in b:
        assert _rel(a[k], b[k]) <= 1e-5, (k, _rel(a[k], b[k]))
    for k in ("loss", "acc"):
        assert abs(par.history[0][k] - single.history[0][k]) <= 1e-5


@pytest.mark.parametrize("spec,model,steps", [("approx.dl", "relu_net", 8), ("optimizers.dl", "quad", 2)])
def test_batch_statistics_outside_batch_norm_are_agreed_on(spec, model, steps):
    """A max over the batch (approx's max_err metric) and a loss that is not a mean
    of per-row terms (quad: a function of the batch mean) split exactly too."""
    path = os.path.join(SPECS, spec)
    c = dslc.compile(dslc.load(path), model, split=True)
    assert c.sync
    roles = [read_manifest_role(m) for m in c.sync]
    # a max-error metric needs a forward stage but no backward one
    assert roles == (["gradient", "forward_stage"] if model == "relu_net" else
                     ["gradient", "forward_stage", "backward_stage"])
    from dslc_runtime import load_dataset
    from dslc_runtime.manifest import read_manifest
    m = read_manifest(c.training)
    ds = load_dataset(m.data and m.train.data, m.data, os.path.abspath(path))
    data = {k: v[:400] for k, v in ds.arrays.items()}
    single = Trainer(c, log=lambda *a: None, batch=32)
    single.fit(data, epochs=1, progress=False)
    par = ParallelTrainer(c, workers=2, backend="local", log=lambda *a: None, batch=32)
    par.fit(data, epochs=1, progress=False)
    assert par.step == single.step == steps
    a, b = par.carried_values(), single.carried_values()
    for k in b:
        assert _rel(a[k], b[k]) <= 1e-5, (k, _rel(a[k], b[k]))
    for k in single.history[0]:
        if k not in ("time", "examples_per_s", "epoch"):
            assert abs(par.history[0][k] - single.history[0][k]) <= 1e-5 * max(1, abs(single.history[0][k])), k


SUM_LOSS = """
model s {
    input x: f32[B, 64]
    input y: i64[B]
    logits = dense(x, 10)
    loss = sum(sum((softmax(logits) - one_hot(y, 10)) ** 2, axis = 1)) / 32
    metric acc = accuracy(logits, y)
}
train s {
    data = "digits"
    optimizer = sgd(lr = 0.5)
    batch = 32
    epochs = 1
}
"""


def test_a_loss_summed_over_the_batch_splits_exactly():
    """A terminal sum enters each worker's graph as sum_s / w_s: the shares add to the sum
    (a mean-style share would give half of it with two workers)."""
    c = _compiled(SUM_LOSS)
    assert [read_manifest_role(m) for m in c.sync] == ["gradient"]
    data = _subset(c, 256)
    single = Trainer(c, log=lambda *a: None, batch=32)
    single.fit(data, epochs=1, progress=False)
    par = ParallelTrainer(c, workers=3, backend="local", log=lambda *a: None, batch=32)
    par.fit(data, epochs=1, progress=False)
    a, b = par.carried_values(), single.carried_values()
    for k in b:
        assert _rel(a[k], b[k]) <= 1e-5, (k, _rel(a[k], b[k]))
    assert abs(par.history[0]["loss"] - single.history[0]["loss"]) <= 1e-5


def read_manifest_role(m):
    from dslc_runtime.manifest import read_manifest
    return read_manifest(m).role


def test_batch_norm_stages_and_manifests():
    """Two batch-norm layers: mean then variance each, plus the counts -> depths 1..4;
    every sync graph's manifest names what the workers exchange."""
    from dslc_runtime.manifest import read_manifest
    c = dslc.compile(dslc.load(os.path.join(SPECS, "mlp_regularized.dl")), split=True)
    roles = [(read_manifest(m).role, read_manifest(m).depth) for m in c.sync]
    assert roles == [("gradient", None)] + [("forward_stage", d) for d in (1, 2, 3, 4)] + \
        [("backward_stage", d) for d in (4, 3, 2, 1)]
    points = read_manifest(c.sync[0]).sync
    assert [p.depth for p in points] == [1, 1, 1, 2, 3, 4] and {p.combine for p in points} == {"sum"}
    assert not dslc.compile(dslc.load(os.path.join(SPECS, "digits.dl")), split=True).sync


@pytest.mark.parametrize("body,message", [
    ("g = transpose(X) @ X\n    loss = mean(g)", "mixes the rows of the batch"),
    ("g = X @ transpose(X)\n    loss = mean(g)", "mixes the rows of the batch"),
    ("loss = mean(cumsum(X, axis = 0))", "mixes the rows of the batch"),
    ('g = einsum("bi,ci->bc", X, X)\n    loss = mean(g)', "mixes the rows of the batch"),
    ('g = einsum("bi,bj->ij", X, X)\n    loss = mean(g)', "mixes the rows of the batch"),
    ("g = scatter_add(X, argmax(X, axis = 1), X, axis = 0)\n    loss = mean(g * g)", "mixes the rows of the batch"),
    ("loss = mean(triu(X))", "mixes the rows of the batch"),
    ("loss = max(sum(X * X, axis = 1), axis = 0)", "depends on a `max` over the batch"),
])
def test_rows_mixed_in_ways_workers_cannot_split_are_an_error(body, message):
    text = f"""
model m {{
    input x: f32[B, 4]
    param w: [4] ~ ones
    {body.replace("X", "(x * w)")}
}}
train m {{
    data = "digits"
    optimizer = sgd(lr = 0.1)
    batch = 8
}}
"""
    c = dslc.compile(dslc.parse(text, "<mix>"), split=True)
    assert c.sync_error is not None and message in str(c.sync_error)
    assert "<mix>:" in str(c.sync_error)
    with pytest.raises(dslc.RuntimeFailure if hasattr(dslc, "RuntimeFailure") else Exception,
                       match="cannot split this model's steps across workers"):
        ParallelTrainer(c, workers=2, backend="local", log=lambda *a: None)


def test_row_wise_einsum_and_solve_split_exactly():
    """einsum that keeps each row to itself (`bi,ij->bj`, `bi,bi->b`) and a solve with the
    batch as the right-hand side's columns: no sync_error, and 3 workers end where one
    process does."""
    text = """
model m {
    input x: f32[B, 64]
    param w: [64, 3] ~ glorot_uniform
    h = einsum("bi,ij->bj", x, w)
    s = solve(diag(ones([3]) * 2.0), transpose(h))      # the batch as the columns of B: solved apart
    loss = mean(einsum("bi,bi->b", h, h)) / 100 + mean(s * s)
}
train m {
    data = "digits"
    optimizer = sgd(lr = 0.01)
    batch = 32
}
"""
    c = _compiled(text)
    assert c.sync_error is None
    data = {k: v for k, v in _subset(c, 256).items() if k == "x"}
    single = Trainer(c, log=lambda *a: None, batch=32)
    single.fit(data, epochs=1, progress=False)
    par = ParallelTrainer(c, workers=3, backend="local", log=lambda *a: None, batch=32)
    par.fit(data, epochs=1, progress=False)
    a, b = par.carried_values(), single.carried_values()
    for k in b:
        assert _rel(a[k], b[k]) <= 1e-5, (k, _rel(a[k], b[k]))


def _subset(c, n):
    from dslc_runtime import load_dataset
    from dslc_runtime.manifest import read_manifest
    ds = load_dataset("digits", read_manifest(c.training).data)
    return {k: v[:n] for k, v in ds.arrays.items()}


# ---- on a real (local) Ray ------------------------------------------------------------
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    if not ray.is_initialized():
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray


def _quiet(**kw):
    return dict(log=lambda *a: None, progress=None, **kw)


@pytest.mark.parametrize("spec", ["dropout", "bn_dropout"])
def test_ray_workers_equal_in_process_workers(local_ray, spec):
    c = _compiled(SOURCES[spec])
    data = _subset(c, 320)
    local = ParallelTrainer(c, workers=2, backend="local", log=lambda *a: None)
    local.fit(data, epochs=2, progress=False)
    remote = ParallelTrainer(c, workers=2, log=lambda *a: None)
    try:
        remote.fit(data, epochs=2, progress=False)
    finally:
        remote.close()
    a, b = remote.carried_values(), local.carried_values()
    for k in b:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)   # same sums in the same order
    assert remote.history[-1]["examples_per_s"] > 0


def test_killed_worker_restarts_from_last_epoch_and_ends_equal(local_ray, tmp_path):
    c = _compiled(DROPOUT)
    data = _subset(c, 320)
    plain = ParallelTrainer(c, workers=2, log=lambda *a: None)
    try:
        plain.fit(data, epochs=3, progress=False)
    finally:
        plain.close()
    lines = []
    t = ParallelTrainer(c, workers=2, log=lines.append)
    killed = []

    def kill_after_first_epoch(msg):
        lines.append(msg)
        if msg.startswith("epoch 1/") and not killed:
            pid = ray.get(t.workers[1].pid.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    t.log = kill_after_first_epoch
    try:
        t.fit(data, epochs=3, out_dir=str(tmp_path / "run"), progress=False)
    finally:
        t.close()
    assert killed and any("restarting 2 workers from epoch 1" in m for m in lines), lines
    assert [r["epoch"] for r in t.history] == [1, 2, 3]
    a, b = t.carried_values(), plain.carried_values()
    for k in b:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_resume_with_another_worker_count(local_ray, tmp_path):
    c = _compiled(DROPOUT)
    data = _subset(c, 320)
    whole = ParallelTrainer(c, workers=2, log=lambda *a: None)
    try:
        whole.fit(data, epochs=2, progress=False)
    finally:
        whole.close()
    first = ParallelTrainer(c, workers=2, log=lambda *a: None)
    try:
        first.fit(data, epochs=1, out_dir=str(tmp_path), progress=False)
    finally:
        first.close()
    second = ParallelTrainer(c, workers=3, log=lambda *a: None)     # another N
    try:
        second.fit(data, epochs=2, out_dir=str(tmp_path), resume=True, progress=False)
    finally:
        second.close()
    single = Trainer(c, log=lambda *a: None)                          # and one process
    single.fit(data, epochs=2, out_dir=str(tmp_path), resume=True, progress=False)
    a, b = second.carried_values(), whole.carried_values()
    for k in b:
        assert _rel(a[k], b[k]) <= 1e-5, k
        assert _rel(single.carried_values()[k], b[k]) <= 1e-5, k


def test_cli_train_with_two_workers(local_ray, tmp_path, capsys):
    from dslc.cli import main
    spec = os.path.join(SPECS, "digits.dl")
    rc = main(["train", spec, "--workers", "2", "--epochs", "30", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    import json
    rows = [json.loads(x) for x in open(tmp_path / "history.jsonl")]
    assert rows[-1]["val_acc"] >= 0.97                  # the single-process run reaches 0.9806
    assert (tmp_path / "model.onnx").is_file()


def test_cli_batch_norm_spec_on_two_workers_equals_one_process(local_ray, tmp_path):
    """specs/mlp_regularized.dl (two batch-norm layers, dropout, weight decay, L1): the
    CLI on two Ray workers writes the history one process writes."""
    from dslc.cli import main
    import json
    spec = os.path.join(SPECS, "mlp_regularized.dl")
    assert main(["train", spec, "--epochs", "2", "--out", str(tmp_path / "one"), "--no-progress"]) == 0
    assert main(["train", spec, "--workers", "2", "--epochs", "2", "--out", str(tmp_path / "two"),
                 "--no-progress"]) == 0
    one, two = ([json.loads(x) for x in open(tmp_path / d / "history.jsonl")] for d in ("one", "two"))
    assert len(one) == len(two) == 2
    for a, b in zip(one, two):
        for k in ("loss", "acc", "val_acc"):
            assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(a[k])), (k, a[k], b[k])
        # the dense biases before batch norm have a gradient of exactly 0: Adam scales the
        # float noise of the two runs' sums into lr-sized steps, and in inference mode they
        # no longer cancel against the running means, so val_loss agrees to ~1e-3 only
        assert abs(a["val_loss"] - b["val_loss"]) <= 1e-2 * a["val_loss"]


def test_an_address_where_no_cluster_listens_is_a_clear_error_at_once(capsys):
    import socket
    import time
    from dslc.cli import main
    with socket.socket() as s:                  # a free port: bound, never listened on, closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    rc = main(["train", os.path.join(SPECS, "digits.dl"), "--workers", "2", "--address", f"127.0.0.1:{port}"])
    assert rc == 1 and time.perf_counter() - t0 < 30
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in capsys.readouterr().err


def test_cli_workers_validation(capsys):
    from dslc.cli import main
    spec = os.path.join(SPECS, "digits.dl")
    assert main(["train", spec, "--workers", "0"]) == 1
    assert "--workers should be a positive integer" in capsys.readouterr().err
    assert main(["train", spec, "--address", "127.0.0.1:1"]) == 1
    assert "--address needs --workers" in capsys.readouterr().err


def test_more_workers_than_the_cluster_has_cpus_is_an_error_not_a_hang(local_ray):
    from dslc_runtime import RuntimeFailure
    c = _compiled(DROPOUT)
    cpus = int(ray.cluster_resources()["CPU"])
    with pytest.raises(RuntimeFailure, match=f"has {cpus} CPUs but {cpus + 1} workers need one each"):
        ParallelTrainer(c, workers=cpus + 1, log=lambda *a: None)
