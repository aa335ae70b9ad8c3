"""The supervised and optimisation specs of the zoo (bench/zoo/supervised.py,
bench/zoo/optimizers.py): every model compiles, its inference, evaluation and
training graphs pass onnx.checker's full check, and a one-epoch fit on a small
slice of its real data gives finite losses and params."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest

import dslc

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SPECS_A = ["logreg", "approx", "mlp_regularized", "cnn", "optimizers", "polyak", "weight_decay"]
CASES = [(spec, model) for spec in SPECS_A for model in dslc.load(str(SPECS / f"{spec}.dl")).models]


def _data(setup_data: str) -> dict[str, np.ndarray]:
    """The first rows of the train block's data (a built-in set or a file next to the spec)."""
    import dslc_runtime
    path = dslc_runtime.resolve_data_path(setup_data, str(SPECS / "x.dl"), log=lambda s: None)
    with np.load(path) as z:
        return {k: z[k][:96] for k in z.files}


def test_data_files_are_small_and_reproducible(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_data", SPECS / "data" / "make_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.HERE = tmp_path
    mod.main()
    for fresh in sorted(tmp_path.glob("*.npz")):
        committed = SPECS / "data" / fresh.name
        assert committed.stat().st_size < 200_000
        with np.load(fresh) as a, np.load(committed) as b:
            assert sorted(a.files) == sorted(b.files)
            for k in a.files:
                np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("spec,model", CASES, ids=[f"{s}:{m}" for s, m in CASES])
def test_spec_compiles_checks_and_trains(spec, model):
    prog = dslc.load(str(SPECS / f"{spec}.dl"))
    compiled = dslc.compile(prog, model)
    for role in ("inference", "evaluation", "training"):
        g = getattr(compiled, role)
        assert g is not None, f"{spec}:{model}: no {role} graph"
        onnx.checker.check_model(g, full_check=True)

    trainer = dslc.Trainer(compiled, log=lambda s: None, progress=False, batch=32)
    history = trainer.fit(_data(compiled.setup.data), epochs=1)
    assert trainer.step >= 1
    for k, v in history[-1].items():
        assert math.isfinite(v), (spec, model, k, v)
    assert all(np.isfinite(v).all() for v in trainer.params().values())
