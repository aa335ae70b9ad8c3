"""Golden IR printouts (`Model.graph().print()`) of small specs, kept in
tests/golden/. Regenerate with DSLC_UPDATE_GOLDEN=1 after an intended change."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dslc import api

GOLDEN = Path(__file__).parent / "golden"
LANG = Path(__file__).parent / "lang"

SPECS = {
    "digits": (LANG / "digits.dl").read_text(),
    "tied": """# An autoencoder with tied weights: the decoder reads the encoder's W.
model tied {
    input x: f32[B, 6]
    enc = dense(x, 3, act = tanh)
    recon = enc @ transpose(enc.W)
    loss = mse(recon, x)
}
""",
    "bn": """# batch_norm's running statistics and the training/inference switch.
model bn {
    input x: f32[B, 4]
    h = batch_norm(x)
    output y = h[:, 0:2]
    loss = mean(h ** 2)
}
""",
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_golden_ir(name):
    prog = api.parse(SPECS[name], filename=f"{name}.dl")
    graph = prog.model().graph()
    graph.lint()
    text = graph.print() + "\n"
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("DSLC_UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"IR of {name} changed; rerun with DSLC_UPDATE_GOLDEN=1 if intended"


def test_lint_finds_a_name_used_twice():
    import pytest
    from dslc.ir import TensorType
    from dslc.ir.graph import Graph
    from dslc.ops.leaves import input_
    a, b = input_("x", TensorType("f32", ())), input_("x", TensorType("f32", ()))
    with pytest.raises(AssertionError, match="name `x` is also"):
        Graph({"y": a + b}).lint()
