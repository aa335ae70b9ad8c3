"""Lowering IR to ONNX (opset 18)."""
from . import scan  # noqa: F401  (the Scan lowering)
from .driver import OPSET, lower_function, lower_graph, make_model

__all__ = ["OPSET", "lower_function", "lower_graph", "make_model"]
