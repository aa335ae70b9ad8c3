"""IR nodes: immutable SSA values.

A node is one application of a primitive to earlier nodes, with static
attributes, a computed type, and the spec location it came from. Leaves are
the primitives `input`, `param`, `state` and `const`. A graph is whatever is
reachable from a set of roots; nodes never change after they are made, so a
pass builds new nodes and leaves the old graph intact.
"""
from __future__ import annotations

import contextlib
import contextvars
import itertools

import numpy as np

from ..errors import Loc, SpecError
from .types import NUMPY, ShapeError, TensorType  # noqa: F401  (ShapeError: re-exported)
from . import registry

_ids = itertools.count(1)
_loc: contextvars.ContextVar = contextvars.ContextVar("dslc_loc", default=None)



@contextlib.contextmanager
def at(loc: Loc | None):
    """Nodes made inside `with at(loc):` remember loc (unless given one explicitly)."""
    tok = _loc.set(loc if loc is not None else _loc.get())
    try:
        yield
    finally:
        _loc.reset(tok)


def current_loc() -> Loc | None:
    return _loc.get()


def _freeze(v):
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, float) and v != v:
        return ("nan",)
    return v


class Node:
    """One SSA value: `op(inputs; attrs) : type`, made at `loc`."""

    __slots__ = ("op", "inputs", "attrs", "type", "loc", "id", "hint", "_key")

    def __init__(self, op: str, inputs: tuple, attrs: dict, type: TensorType,
                 loc: Loc | None = None, hint: str | None = None):
        self.op, self.inputs, self.attrs, self.type = op, tuple(inputs), dict(attrs), type
        self.loc = loc if loc is not None else _loc.get()
        self.hint = hint
        self.id = next(_ids)
        self._key = None

    # structural identity (used by CSE): same op, same attrs, same input nodes
    def key(self):
        if self._key is None:
            self._key = (self.op, tuple(i.id for i in self.inputs), _freeze(self.attrs))
        return self._key

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def rank(self) -> int:
        return len(self.type.shape)

    def __repr__(self):
        return f"%{self.id}:{self.type}={self.op}"

    def with_inputs(self, inputs) -> "Node":
        """This node over other inputs (itself when they are the same nodes)."""
        inputs = tuple(inputs)
        if all(a is b for a, b in zip(inputs, self.inputs)):
            return self
        return Node(self.op, inputs, self.attrs, self.type, self.loc, self.hint)

    # -- operators build IR (so gradient rules read like the math) ----------
    def __add__(self, o): return apply("add", self, lift(o, self))
    def __radd__(self, o): return apply("add", lift(o, self), self)
    def __sub__(self, o): return apply("sub", self, lift(o, self))
    def __rsub__(self, o): return apply("sub", lift(o, self), self)
    def __mul__(self, o): return apply("mul", self, lift(o, self))
    def __rmul__(self, o): return apply("mul", lift(o, self), self)
    def __truediv__(self, o): return apply("div", self, lift(o, self))
    def __rtruediv__(self, o): return apply("div", lift(o, self), self)
    def __pow__(self, o): return apply("pow", self, lift(o, self))
    def __rpow__(self, o): return apply("pow", lift(o, self), self)
    def __matmul__(self, o): return apply("matmul", self, o)
    def __neg__(self): return apply("neg", self)
    __hash__ = object.__hash__


def const(value, dtype: str = "f32") -> Node:
    """A constant tensor (scalars are the common case)."""
    arr = np.asarray(value, dtype=NUMPY[dtype])
    return Node("const", (), {"value": arr}, TensorType(dtype, tuple(arr.shape)))


def lift(v, like: Node) -> Node:
    """A Python number as a scalar constant of `like`'s dtype; nodes pass through."""
    if isinstance(v, Node):
        return v
    return const(v, like.dtype)


def apply(op: str, *inputs: Node, loc: Loc | None = None, hint: str | None = None, **attrs) -> Node:
    """Make the node `op(inputs; attrs)`, its type given by the primitive's shape rule.

    A shape rule's complaint becomes a SpecError at `loc` (or the current location)."""
    prim = registry.get(op)
    for x in inputs:
        assert isinstance(x, Node), f"{op}: input {x!r} is not a Node"
    try:
        ty = prim.shape([x.type for x in inputs], **attrs)
        bad = next((d for d in ty.shape if isinstance(d, int) and d < 1), None)
        if bad is not None:     # ONNX and the runtime need at least one element per axis
            raise ShapeError(f"{op} would make a tensor of shape {ty} with a "
                             f"{'zero-size' if bad == 0 else 'negative'} dim; every dim must be at least 1")
    except ShapeError as e:
        raise SpecError(str(e), loc if loc is not None else _loc.get()) from None
    return Node(op, inputs, attrs, ty, loc, hint)
