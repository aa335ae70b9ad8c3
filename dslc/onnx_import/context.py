"""What an op converter works with while one ONNX graph becomes IR.

A value is either an IR `Node` (computed when the model runs) or a *static*
NumPy array, known at import: initializers that are not trained, `Constant`
nodes, and everything computed from them and from shapes (`Shape`, `Gather`,
`Concat`, ... on dims). Static integer arrays may hold symbolic dims (`Sym`,
object dtype), so a torch `Shape -> Gather -> Unsqueeze -> Concat -> Reshape`
chain folds to a reshape to `[B, 16]`. A converter folds when all its inputs
are static and builds IR otherwise; `node(v)` turns a static into a constant.
"""
from __future__ import annotations

import numpy as np
import onnx

from ..errors import SpecError
from ..ir import dims as D
from ..ir.node import Node, ShapeError, apply, const

# ONNX element types -> IR dtypes (integers are i64 in the IR; int32 statics are widened)
DTYPE = {onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.DOUBLE: "f64", onnx.TensorProto.INT64: "i64",
         onnx.TensorProto.INT32: "i64", onnx.TensorProto.BOOL: "bool", onnx.TensorProto.INT8: "i64",
         onnx.TensorProto.INT16: "i64", onnx.TensorProto.UINT8: "i64"}
NP = {"f32": np.float32, "f64": np.float64, "i64": np.int64, "bool": np.bool_}


class Unsupported(Exception):
    """A converter cannot import this node (message says why); the importer names op, node, opset."""


def is_static(v) -> bool:
    return isinstance(v, np.ndarray)


def is_symbolic(a: np.ndarray) -> bool:
    return a.dtype == object


def canon(a) -> np.ndarray:
    """A static array with NumPy dtypes the IR knows (int32 -> int64; all-int object -> int64)."""
    a = np.asarray(a)
    if a.dtype == object:
        if all(isinstance(x, (int, np.integer)) for x in a.flat):
            return a.astype(np.int64)
        return a
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype == np.float16:
        return a.astype(np.float32)
    return a


class Ctx:
    """One node being converted: its attributes, opset, and the helpers converters share."""

    def __init__(self, onode: onnx.NodeProto, opset: int, loc, outer):
        self.onode, self.opset, self.loc, self.outer = onode, opset, loc, outer
        self.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in onode.attribute}

    def attr(self, name, default=None):
        v = self.attrs.get(name, default)
        if isinstance(v, bytes):
            v = v.decode()
        return v

    # -- values -------------------------------------------------------------
    def node(self, v, like: Node | None = None) -> Node:
        """An IR node for v (a static becomes a constant, of like's dtype for numbers)."""
        if isinstance(v, Node):
            return v
        a = canon(v)
        if is_symbolic(a):      # dims read off the shapes of tensors that have them
            parts = [self.outer.dim_value(d) for d in a.reshape(-1)]
            flat = apply("concat", *[apply("reshape", p, shape=(1,)) for p in parts], axis=0)
            return apply("reshape", flat, shape=tuple(a.shape))
        if like is not None and a.dtype.kind in "fiub" and a.dtype != NP[like.dtype] \
                and (a.ndim == 0 or a.size == 1 or like.dtype in ("f32", "f64")):
            a = a.astype(NP[like.dtype])
        dt = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(np.int64): "i64",
              np.dtype(np.bool_): "bool"}.get(a.dtype)
        if dt is None:
            raise Unsupported(f"a constant of type {a.dtype}")
        return const(a, dt)

    def index(self, v) -> Node:
        """An IR node for indices v, as int64 (ONNX allows int32)."""
        n = self.node(v)
        return n if n.dtype == "i64" else apply("cast", n, dtype="i64")

    def static(self, v, what: str) -> np.ndarray:
        if not is_static(v):
            raise Unsupported(f"{what} must be known when importing (a constant or a shape), "
                              f"but it is computed at run time")
        return canon(v)

    def ints(self, v, what: str) -> list:
        """A static 1-D list of dims (ints or Syms)."""
        a = self.static(v, what)
        return [x if isinstance(x, D.Sym) else int(x) for x in a.reshape(-1)]

    def state_of(self, v):
        """v as a state leaf (BatchNormalization's running statistics)."""
        return self.outer.state_of(v)

    def update(self, v, new: Node):
        """The state v's new value after a training step."""
        self.outer.update(v, new)

    def fail(self, msg: str):
        raise Unsupported(msg)


def dim_list(shape) -> np.ndarray:
    """A node's shape as a static 1-D array (object dtype when a dim is symbolic)."""
    if all(isinstance(d, int) for d in shape):
        return np.asarray(shape, dtype=np.int64).reshape(-1)
    out = np.empty(len(shape), dtype=object)
    for i, d in enumerate(shape):
        out[i] = d
    return out


def ir(fn, *args, **kwargs):
    """Build IR; a shape complaint becomes Unsupported (reported at the import)."""
    try:
        return fn(*args, **kwargs)
    except ShapeError as e:
        raise Unsupported(str(e)) from None
    except SpecError as e:
        raise Unsupported(e.message) from None
