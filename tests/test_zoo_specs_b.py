"""The unsupervised, generative and embedding specs of the zoo (bench/zoo/generative.py,
bench/zoo/embeddings.py): each compiles, every graph passes onnx.checker's full check,
and a few training steps on a slice of its real data give finite losses."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest

import dslc

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SPECS_B = ["skipgram", "linear_ae", "denoising_ae", "contractive_ae", "vae", "gan", "score", "nce"]


def _data(name: str, setup_data: str) -> dict[str, np.ndarray]:
    if setup_data == "digits":
        import dslc_runtime
        path = Path(dslc_runtime.__file__).parent / "datasets" / "digits.npz"
    else:
        path = SPECS / setup_data
        if not path.is_file():      # regenerate from the committed, deterministic scripts
            import importlib.util
            script = SPECS / "data" / ("make_text_data.py" if name == "skipgram" else "make_gen_data.py")
            spec = importlib.util.spec_from_file_location(script.stem, script)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            mod.main()
    with np.load(path) as z:
        return {k: z[k][:256] if z[k].ndim else z[k] for k in z.files}


@pytest.mark.parametrize("name", SPECS_B)
def test_spec_compiles_checks_and_trains(name):
    path = SPECS / f"{name}.dl"
    prog = dslc.load(str(path))
    compiled = dslc.compile(prog)
    graphs = {"inference": compiled.inference, "training": compiled.training,
              "evaluation": compiled.evaluation}
    for role, g in graphs.items():
        assert g is not None, f"{name}: no {role} graph"
        onnx.checker.check_model(g, full_check=True)

    trainer = dslc.Trainer(compiled, spec_path=str(path), log=lambda s: None, progress=False)
    arrays = _data(name, compiled.setup.data)
    batch = {d.name: arrays[d.name][:32] for d in trainer.manifest.data}
    losses = set()
    for _ in range(2 * len(trainer.settings["steps"])):    # a few rounds of every objective
        values = trainer.train_step(batch)
        for loss in trainer.manifest.losses:
            assert math.isfinite(values[loss]), (name, loss, values)
        losses.add(trainer.settings["steps"][(trainer.round_pos - 1) % len(trainer.settings["steps"])])
    assert losses == set(trainer.settings["steps"])
    assert all(np.isfinite(v).all() for v in trainer.params().values())
