"""The standard layers' reference (dslc.layerdoc): generated from dslc/stdlib/*.dl,
printed by `dslc check --layers`, and docs/layers.md is that same text in Markdown."""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from dslc.cli import main
from dslc.elaborate.stdlib import stdlib_layers
from dslc.layerdoc import layers_markdown, stdlib_docs

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED = """dense conv1d conv2d embedding layer_norm batch_norm batch_norm2d maxout rnn_cell lstm_cell
lstm_peephole_cell gru_cell attention multi_head_attention causal_mask positional_encoding
transformer_block""".split()


def test_every_standard_layer_is_documented_with_its_signature():
    docs = {d.name: d for d in stdlib_docs()}
    assert set(docs) == set(stdlib_layers())              # every layer, nothing else
    for name, d in docs.items():
        assert d.doc.startswith(name + ":"), f"{name}: the doc comment should open with its name"
        assert d.signature.startswith(name + "(")
    assert docs["dense"].signature == "dense(x: [*, n], m: int, act = identity)"
    assert docs["dense"].decls == ["param W: [n, m] ~ glorot_uniform", "param b: [m] ~ zeros"]
    assert "state running_var: [n] ~ ones" in docs["batch_norm"].decls
    assert "q = dense(x, d)" in docs["multi_head_attention"].parts
    assert docs["attention"].parts == [] and docs["attention"].decls == []


def test_the_layers_the_language_names_are_there():
    names = {d.name for d in stdlib_docs()}
    missing = [n for n in DOCUMENTED if n not in names]
    assert not missing, missing


def test_docs_layers_md_is_generated_from_the_sources():
    text = (ROOT / "docs" / "layers.md").read_text()
    assert text == layers_markdown(), "docs/layers.md is stale: python -m dslc.layerdoc > docs/layers.md"
    for p in resources.files("dslc.stdlib").iterdir():
        if p.name.endswith(".dl"):
            for name in re.findall(r"^layer (\w+)\(", p.read_text(), re.M):
                assert f"### `{name}`" in text


def test_check_layers_prints_them(capsys):
    assert main(["check", "--layers"]) == 0
    out = capsys.readouterr().out
    assert "dense(x: [*, n], m: int, act = identity)    [dense.dl]" in out
    assert "      param W: [n, m] ~ glorot_uniform" in out
    assert "transformer_block(" in out and "pre-norm" in out
    assert main(["check", "--layers", "lstm_cell"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lstm_cell(h: [B, m], c: [B, m], x: [B, n])") and "gru_cell" not in out


def test_check_layers_errors(capsys):
    assert main(["check", "--layers", "dnse"]) == 1
    assert "no standard layer named `dnse` (did you mean `dense`?)" in capsys.readouterr().err
    assert main(["check"]) == 1
    assert "give a spec to check" in capsys.readouterr().err
