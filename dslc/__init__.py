"""dslc — a declarative deep-learning compiler: .dl specs -> checked IR ->
symbolic gradients -> ONNX inference and training graphs."""
from . import ops  # noqa: F401  (registers the primitives)
from .errors import SpecError, SpecErrors

__all__ = ["SpecError", "SpecErrors"]
