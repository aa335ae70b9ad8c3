"""The IR: dims, types, nodes and graphs (see DESIGN.md principles 5-6)."""
from .dims import Dim, Sym, show, show_shape
from .graph import Graph
from .node import Node, ShapeError, apply, at, const, current_loc, lift
from .types import TensorType, is_float, scalar

__all__ = ["Dim", "Sym", "show", "show_shape", "Graph", "Node", "ShapeError", "apply", "at",
           "const", "current_loc", "lift", "TensorType", "is_float", "scalar"]
