"""Every spec in specs/ and every LANGUAGE.md example compiles to its graphs;
each passes onnx.checker (full check) and runs in ONNX Runtime; every spec
with a train block trains a few steps. Passes keep the numbers and the lint."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import dslc
from dslc import passes
from dslc.evaluate import evaluate
from dslc.ir.graph import Graph

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted((ROOT / "tests/lang").glob("*.dl")) + sorted((ROOT / "specs").glob("*.dl"))


def _sym_value(name: str) -> int:
    return {"B": 3, "T": 4}.get(name, 2)


def _fake(entry, rng):
    shape = [d if isinstance(d, int) else _sym_value(d) for d in entry["shape"]]
    if entry["dtype"] == "int64":
        return rng.integers(0, 2, size=shape).astype(np.int64)
    if entry["dtype"] == "bool":
        return rng.random(shape) > 0.5
    return rng.random(shape).astype(entry["dtype"])


def _models(path):
    prog = dslc.load(str(path))
    return [(prog, name) for name in prog.models]


def _no_dead_nodes(g):
    """Every node feeds a graph output (ONNX Runtime runs unused nodes too), in bodies too."""
    from dslc.lower.driver import live
    kept = live(g.node, {o.name for o in g.output})
    assert len(kept) == len(g.node), f"{g.name}: unused {[nd.op_type for nd in g.node if nd not in kept]}"
    for nd in g.node:
        for a in nd.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _no_dead_nodes(a.g)


CASES = [(p, name) for p in CORPUS for name in dslc.load(str(p)).models] if CORPUS else []


@pytest.mark.parametrize("path,name", CASES, ids=[f"{p.stem}:{n}" for p, n in CASES])
def test_compiles_checks_and_runs(path, name):
    prog = dslc.load(str(path))
    c = dslc.compile(prog, name)
    rng = np.random.default_rng(0)
    for proto in (c.inference, c.evaluation, c.training):
        if proto is None:
            continue
        onnx.checker.check_model(proto, full_check=True)
        _no_dead_nodes(proto.graph)
    if c.training is not None:
        man = c.manifest
        feeds = {d["name"]: _fake(d, rng) for d in man["data"]}
        # select a label range valid for any class count
        sess = ort.InferenceSession(c.training.SerializeToString(), providers=["CPUExecutionProvider"])
        outs = sess.run(None, feeds)
        assert len(outs) == len(sess.get_outputs())
        for k in man["losses"]:
            assert np.isfinite(dict(zip([o.name for o in sess.get_outputs()], outs))[k])
    for key, roots in c.graphs.items():
        Graph(roots).lint()


@pytest.mark.parametrize("path,name", CASES, ids=[f"{p.stem}:{n}" for p, n in CASES])
def test_passes_keep_numbers(path, name):
    """The optimized graph computes what the unoptimized one does (NumPy engine)."""
    prog = dslc.load(str(path))
    m = prog.models[name]
    roots = {f"l:{k}": v.node for k, v in m.losses.items()}
    roots.update({f"o:{k}": v for k, v in m.outputs.items()})
    roots, _ = passes.specialize(roots, "infer")
    opt = passes.optimize(roots)
    Graph(opt).lint()
    rng = np.random.default_rng(0)
    from dslc.init import initial_value
    feeds = {}
    for n in Graph(roots).order():
        if n.op == "input":
            shape = [d if isinstance(d, int) else _sym_value(repr(d)) for d in n.shape]
            feeds[n.attrs["name"]] = (rng.integers(0, 2, size=shape) if n.dtype == "i64"
                                      else rng.random(shape).astype(np.float32))
        elif n.op in ("param", "state"):
            feeds[n.attrs["name"]] = initial_value(n.attrs["init"], n.shape, n.dtype, 0, n.attrs["name"])
    a = evaluate(roots, feeds)
    b = evaluate(opt, feeds)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
