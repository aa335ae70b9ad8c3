"""The training loop's runtime (issue 11 item 4): IOBinding bound once with two
swapped buffer sets, denormals flushed, thread count an option; results equal
the plain feed-everything loop."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import dslc
from dslc.cli import main
from dslc_runtime import Trainer
from dslc_runtime.session import Device, StepRunner, make_session

SPEC = """
model m {
    input x: f32[B, 6]
    input y: i64[B]
    h = dense(x, 16, act = relu)
    logits = dense(h, 3)
    loss = cross_entropy(logits, y)
    metric acc = accuracy(logits, y)
}
train m {
    optimizer = adam(lr = 1e-2)
    batch = 8
}
"""


def _compiled():
    return dslc.compile(dslc.parse(SPEC, "m.dl"))


def _batches(n=6):
    rng = np.random.default_rng(0)
    return [{"x": rng.standard_normal((8, 6)).astype(np.float32),
             "y": rng.integers(0, 3, 8).astype(np.int64)} for _ in range(n)]


def _plain_loop(c, batches, threads=1):
    """Reference: sess.run with every input fed and every output fetched."""
    man = c.manifest
    sess = make_session(c.training, "cpu", threads)
    from onnx import numpy_helper
    inits = {t.name: numpy_helper.to_array(t) for t in c.training.graph.initializer}
    carried = {e["input"]: inits[e["input"]] for e in man["carried"]}
    losses = []
    for b in batches:
        feeds = {**b, **carried, **{h["name"]: np.asarray(h["default"], h["dtype"]) for h in man["hyper"]}}
        names = [o.name for o in sess.get_outputs()]
        out = dict(zip(names, sess.run(names, feeds)))
        carried = {e["input"]: out[e["output"]] for e in man["carried"]}
        losses.append(float(out["loss"]))
    return losses, carried


def test_trainer_steps_equal_the_plain_loop():
    c = _compiled()
    batches = _batches()
    want_losses, want = _plain_loop(c, batches)
    t = Trainer(c, threads=1, log=lambda *a: None)
    got_losses = [t.train_step(b)["loss"] for b in batches]
    assert got_losses == want_losses
    vals = t.carried_values()
    for k, v in want.items():
        np.testing.assert_array_equal(vals[k], v, err_msg=k)


def test_step_runner_swaps_two_buffer_sets():
    c = _compiled()
    man = c.manifest
    sess = make_session(c.training, "cpu", 1)
    from onnx import numpy_helper
    inits = {t.name: numpy_helper.to_array(t) for t in c.training.graph.initializer}
    pairs = [(e["input"], e["output"]) for e in man["carried"]]
    r = StepRunner(sess, Device("cpu"), pairs, {i: inits[i] for i, _ in pairs}, ["loss"])
    a = r.carried
    step0 = int(a["step"].numpy())
    hyper = {"lr": np.asarray(1e-2, np.float32)}
    r.run({**_batches(1)[0], **hyper})
    assert r.carried is not a and r.previous is a          # the new values are in the other set
    assert int(r.carried["step"].numpy()) == step0 + 1 and int(r.previous["step"].numpy()) == step0
    r.run({**_batches(1)[0], **hyper})
    assert r.carried is a and int(a["step"].numpy()) == step0 + 2
    # the sets never share memory with each other or with the initial arrays
    assert inits["step"] == step0


def test_params_are_copies_that_later_steps_leave_alone():
    c = _compiled()
    t = Trainer(c, threads=1, log=lambda *a: None)
    p = t.params()
    before = {k: v.copy() for k, v in p.items()}
    for b in _batches(3):
        t.train_step(b)
    for k in p:
        np.testing.assert_array_equal(p[k], before[k])
    assert any(not np.array_equal(t.params()[k], before[k]) for k in p)


def test_reset_and_load_rebind_the_buffers(tmp_path):
    c = _compiled()
    t = Trainer(c, threads=1, log=lambda *a: None)
    batches = _batches(4)
    first = [t.train_step(b)["loss"] for b in batches]
    t.save(tmp_path / "ck")
    more = [t.train_step(b)["loss"] for b in batches]
    t.reset()
    assert [t.train_step(b)["loss"] for b in batches] == first
    t.load(tmp_path / "ck")
    assert [t.train_step(b)["loss"] for b in batches] == more


def test_denormals_flushed_and_threads_set():
    c = _compiled()
    s = make_session(c.training, "cpu", threads=1)
    opts = s.get_session_options()
    assert opts.get_session_config_entry("session.set_denormal_as_zero") == "1"
    assert opts.intra_op_num_threads == 1
    t = Trainer(c, threads=2, log=lambda *a: None)
    assert t.session.get_session_options().intra_op_num_threads == 2


def test_results_barely_depend_on_the_thread_count():
    """1 vs 2 intra-op threads: equal up to float reassociation in the kernels."""
    c = _compiled()
    batches = _batches(6) * 5
    out = []
    for threads in (1, 2):
        t = Trainer(c, threads=threads, log=lambda *a: None)
        for b in batches:
            t.train_step(b)
        out.append(t.params())
    diff = max(float(np.max(np.abs(out[0][k] - out[1][k]))) for k in out[0])
    assert diff < 1e-5, diff


def test_cli_threads_must_be_positive(tmp_path, capsys):
    spec = tmp_path / "m.dl"
    spec.write_text(SPEC)
    assert main(["train", str(spec), "--threads", "0", "--out", str(tmp_path / "run")]) == 1
    assert "--threads must be a positive number" in capsys.readouterr().err


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(), reason="no CUDA provider")
def test_cuda_steps_match_cpu():
    c = _compiled()
    batches = _batches()
    cpu = Trainer(c, threads=1, log=lambda *a: None)
    gpu = Trainer(c, device="cuda", log=lambda *a: None)
    for b in batches:
        assert abs(cpu.train_step(b)["loss"] - gpu.train_step(b)["loss"]) < 1e-4


def test_changed_step_scalars_are_rebound():
    """Scalars stay bound while unchanged; a new value (lr = 0) takes effect at once, on both bindings."""
    c = _compiled()
    t = Trainer(c, threads=1, log=lambda *a: None)
    batches = _batches(4)
    t.train_step(batches[0])
    t.train_step(batches[1])
    t.settings["hyper"]["lr"] = 0.0
    before = t.params()
    t.train_step(batches[2])
    t.train_step(batches[3])
    for k, v in t.params().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    t.settings["hyper"]["lr"] = 1e-2
    t.train_step(batches[0])
    assert any(not np.array_equal(t.params()[k], before[k]) for k in before)
