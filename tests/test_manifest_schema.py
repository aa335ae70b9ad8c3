"""The manifest's one schema (dslc_runtime.manifest): what the compiler writes
parses back to the same dataclasses; early stopping's direction comes from what
the watched value is (issue 12 item 6)."""
from __future__ import annotations

import json

import pytest

import dslc
from dslc_runtime import parse_manifest
from dslc_runtime.errors import ManifestError
from dslc_runtime.manifest import stopping_mode

SPEC = """\
model m {{
    input x: f32[B, 4]
    input y: i64[B]
    logits = dense(x, 3)
    loss nll = cross_entropy(logits, y)
    metric acc = accuracy(logits, y)
    metric err = 1.0 - accuracy(logits, y)
}}

train m {{
    optimizer = sgd(lr = 0.1)
    early_stopping = {rule}
}}
"""


@pytest.mark.parametrize("rule,mode", [
    ("patience(2, val_nll)", "min"),           # a loss named without "loss" minimizes
    ("patience(2, nll)", "min"),
    ("patience(2, val_acc)", "max"),           # a metric maximizes by default
    ('patience(2, val_err, mode = "min")', "min"),   # ... unless it says its mode
])
def test_early_stopping_direction(rule, mode):
    c = dslc.compile(dslc.parse(SPEC.format(rule=rule)))
    assert c.manifest["train"]["early_stopping"]["mode"] == mode


def test_mode_on_a_loss_is_an_error():
    with pytest.raises(dslc.SpecError, match="is a loss"):
        dslc.parse(SPEC.format(rule='patience(2, nll, mode = "max")'))


def test_stopping_mode_one_place():
    assert stopping_mode("val_nll", ["nll"]) == "min"
    assert stopping_mode("val_acc", ["nll"]) == "max"
    assert stopping_mode("val_err", ["nll"], "min") == "min"


def test_compiled_manifests_round_trip():
    c = dslc.compile(dslc.parse(SPEC.format(rule="patience(2, val_acc)")))
    for proto in (c.training, c.evaluation):
        obj = json.loads(next(p.value for p in proto.metadata_props if p.key == "dslc.manifest"))
        m = parse_manifest(obj)
        assert m.version == 1 and json.loads(json.dumps(m.to_json())) == obj


def test_validation_names_the_field():
    with pytest.raises(ManifestError, match="version 2"):
        parse_manifest({"version": 2, "role": "training"})
    with pytest.raises(ManifestError, match="train.batch should be int"):
        parse_manifest({"version": 1, "role": "training", "losses": ["l"], "train": {"batch": "8"}})
    with pytest.raises(ManifestError, match="early_stopping.mode"):
        parse_manifest({"version": 1, "role": "training", "losses": ["l"],
                        "train": {"early_stopping": {"patience": 2, "metric": "l", "mode": "up"}}})


def test_sync_graph_manifests_round_trip_and_are_validated():
    """The exact data-parallel step's graphs (batch norm): their manifests parse back
    to what was written, name only graph inputs/outputs, and bad sync fields are refused."""
    import os
    from dslc_runtime.manifest import read_manifest
    c = dslc.compile(dslc.load(os.path.join(os.path.dirname(__file__), "..", "specs", "mlp_regularized.dl")),
                     split=True)
    for proto in c.sync:
        m = read_manifest(proto)                     # checked against the graph
        obj = json.loads(next(p.value for p in proto.metadata_props if p.key == "dslc.manifest"))
        assert json.loads(json.dumps(parse_manifest(obj).to_json())) == obj
        assert m.sync and (m.role == "gradient") == (m.depth is None)
    point = {"input": "sync.0", "part": "part.0", "grad": "sync_grad.0", "cot": "cot.0",
             "dtype": "float32", "shape": [4], "depth": 1, "combine": "mean"}
    with pytest.raises(ManifestError, match="combines by 'mean'"):
        parse_manifest({"version": 1, "role": "forward_stage", "depth": 1, "sync": [point]})
    with pytest.raises(ManifestError, match="needs its `depth`"):
        parse_manifest({"version": 1, "role": "backward_stage", "sync": [dict(point, combine="sum")]})
    with pytest.raises(ManifestError, match="unknown field"):
        parse_manifest({"version": 1, "role": "forward_stage", "depth": 1, "sync": [dict(point, extra=1)]})
