"""Import isolation and the optional rng counter input."""
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dslc_runtime import Trainer
from dslc_runtime.manifest import write_manifest


def test_runtime_imports_no_compiler():
    code = ("import sys, dslc_runtime, dslc_runtime.trainer; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('lark', 'networkx', 'dslc', 'matplotlib')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_rng_counter_is_fed_seed_and_step():
    F, I = TensorProto.FLOAT, TensorProto.INT64
    nodes = [helper.make_node("Cast", ["rng"], ["rngf"], to=F),
             helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Mul", ["s", "zero"], ["loss"]),
             helper.make_node("Identity", ["rng"], ["last.next"])]
    graph = helper.make_graph(
        nodes, "rng", [helper.make_tensor_value_info("x", F, ["B"]), helper.make_tensor_value_info("last", I, []),
                       helper.make_tensor_value_info("rng", I, [])],
        [helper.make_tensor_value_info("loss", F, []), helper.make_tensor_value_info("last.next", I, [])],
        [numpy_helper.from_array(np.array(-1, np.int64), "last"), numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_operatorsetid("", 18)], ir_version=9)
    write_manifest(model, {"version": 1, "role": "training", "model": "rng", "rng": {"input": "rng"},
                           "data": [{"name": "x", "dtype": "float32", "shape": ["B"], "batch_axis": 0}],
                           "carried": [{"input": "last", "output": "last.next", "kind": "state",
                                        "dtype": "int64", "shape": [], "init": "0"}],
                           "losses": ["loss"], "train": {"batch": 2, "seed": 3}})
    onnx.checker.check_model(model, full_check=True)
    t = Trainer(model, progress=False, log=lambda *a: None)
    t.fit({"x": np.zeros(6, np.float32)}, epochs=1)
    assert int(t.carried_values()["last"]) == 3 * 2 ** 32 + 2     # the third run: step 2
