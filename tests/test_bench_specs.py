"""The benchmark's workloads (bench/specs/*.dl, issue 11) compile, pass the
ONNX checker and run one training step; bench/step.py imports without torch."""
from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("bench_step", ROOT / "bench" / "step.py")
step = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(step)


@pytest.mark.parametrize("wl", list(step.WORKLOADS))
def test_workload_compiles_and_steps(wl):
    assert (step.SPECS / step.WORKLOADS[wl][0]).exists()
    c = step.compile_workload(wl)
    onnx.checker.check_model(c.training, full_check=True)
    data = step.batches(wl, 2)
    raw = step.DslcRaw(c, threads=1, device="cpu")
    trainer = step.DslcTrainer(c, threads=1, device="cpu")
    for b in data:                      # the two dslc loops take the same steps
        assert abs(raw.step(b) - trainer.step(b)) < 1e-5
    assert np.isfinite(raw.step(data[0]))
    assert sum(step.node_counts(c).values()) > 0


def test_cuda_option_says_clearly_when_there_is_no_gpu(capsys):
    import onnxruntime as ort
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA provider")
    assert step.main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "cannot run on CUDA here" in err and "no CUDA provider" in err


def test_paired_ratios_pair_blocks_round_by_round_and_drop_flagged_rounds():
    # (ms/step, share of the CPU other processes used): a drift that both systems see cancels
    a = [(2.0, 0.0), (4.0, 0.0), (3.0, 0.5), (8.0, 0.0)]
    b = [(4.0, 0.0), (8.0, 0.0), (1.0, 0.0), (10.0, 0.0)]
    q1, med, q3 = step.paired_ratios(a, b)
    assert med == pytest.approx(0.5) and q1 <= med <= q3 <= 0.8      # round 3 (flagged) is left out
    assert step.paired_ratios([(3.0, 0.5)], [(1.0, 0.5)]) == (3.0, 3.0, 3.0)   # only flagged: kept


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_settle_waits_while_another_thread_of_the_process_runs():
    stop = time.perf_counter() + 0.25

    def spin():
        while time.perf_counter() < stop:
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    waited = step.settle(limit=2.0, quiet=0.03)     # the spinner holds a core for 0.25 s
    spinner.join()
    assert 0.2 <= waited < 1.5, waited
    assert step.settle(limit=2.0, quiet=0.03) < 1.0  # nothing else running: back after the quiet window


def _ops(graph) -> list[str]:
    out = []
    for n in graph.node:
        out.append(n.op_type)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                out += [f"body:{op}" for op in _ops(a.g)]
    return out


def test_lowerings_ort_runs_fast_are_the_ones_emitted():
    """LeNet's conv input gradient is MatMul + Col2Im (no ConvTranspose); the LSTM
    cell's four gate slices are one Split inside the Scan body (no Slice there)."""
    w2 = _ops(step.compile_workload("W2").training.graph)
    assert "Col2Im" in w2 and "ConvTranspose" not in w2
    w3 = _ops(step.compile_workload("W3").training.graph)
    assert w3.count("body:Split") == 1 and "body:Slice" not in w3 and w3.count("body:Sigmoid") == 3


def test_scan_ab_parts_rebuild_each_node_faithfully():
    """bench/scan_ab.py --parts times a step's Scans and GEMMs alone: each sub-model,
    fed the values of a real step (outer names its body reads included), must
    compute what that node computed inside the whole step."""
    spec = importlib.util.spec_from_file_location("bench_scan_ab", ROOT / "bench" / "scan_ab.py")
    ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab)
    model = step.compile_workload("W3").training
    vals = ab.step_values(model, ab.batches(1)[0])
    heavy = [n for n in model.graph.node if n.op_type in ab.HEAVY]
    assert {n.op_type for n in heavy} == {"Scan", "MatMul"}
    from dslc_runtime.session import make_session
    for n in heavy:
        m, feed = ab.node_model(model, n, vals)
        got = make_session(m, "cpu", 1).run(None, feed)
        for name, v in zip([o for o in n.output if o], got):
            np.testing.assert_allclose(v, vals[name], rtol=1e-5, atol=1e-6, err_msg=name)
    rows = ab.parts(model, threads=1, reps=2)
    assert rows[0][0] == "step" and len(rows) == 1 + len(heavy)
    assert all(0 < low <= med for _, _, (med, low) in rows)
