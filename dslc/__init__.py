"""dslc — a declarative deep-learning compiler: .dl specs -> checked IR ->
symbolic gradients -> ONNX inference and training graphs.

    prog = dslc.load("digits.dl")
    m = dslc.compile(prog, "digits")          # m.inference, m.training, m.evaluation
    trainer = dslc.Trainer(m, device="cpu")
    history = trainer.fit({"x": X, "y": Y}, epochs=5)
"""
from . import ops  # noqa: F401  (registers the primitives)
from . import bptt, evaluate_scan  # noqa: F401  (scan's gradient and NumPy rules)
from .compile import Compiled, compile
from .errors import SpecError, SpecErrors


from .api import load, parse
from .onnx_import import import_onnx
from .lower.lora import merge_adapters


def __getattr__(name):
    if name == "Trainer":                      # the runtime's trainer, on compiled models
        from dslc_runtime import Trainer
        return Trainer
    if name == "builder":
        import importlib
        return importlib.import_module(".builder", __name__)
    raise AttributeError(name)


from .web import export_web  # noqa: E402  dslc.export_web(spec, out_dir): the browser trainer

__all__ = ["export_web", "load", "parse", "import_onnx", "merge_adapters", "compile", "Compiled", "SpecError", "SpecErrors", "Trainer"]
