"""The primitive registry.

A primitive declares, side by side (DESIGN.md principle 1):
  shape(types, **attrs) -> TensorType      the type rule (raise ShapeError to complain)
  vjp(g, out, *xs, **attrs) -> grads       one IR node (or None) per input, built from primitives
  onnx(b, *names, **attrs) -> name         the lowering, through the ONNX builder `b`
  np(*arrays, **attrs) -> array            the NumPy reference (second engine: folding, FD checks)
The engines (autodiff, lowering, evaluation) are generic loops over this table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .dims import show, show_shape
from .types import ShapeError, TensorType


@dataclass
class Primitive:
    """One operation of the IR: its type rule, its gradient rule and its lowerings."""
    name: str
    family: str
    shape: Callable
    vjp: Callable | None
    onnx: Callable | None
    np: Callable | None
    doc: str = ""


REGISTRY: dict[str, Primitive] = {}


def primitive(name: str, family: str, shape, vjp=None, onnx=None, np=None, doc: str = "") -> Primitive:
    assert name not in REGISTRY, f"primitive {name} registered twice"
    p = Primitive(name, family, shape, vjp, onnx, np, doc)
    REGISTRY[name] = p
    return p


def get(name: str) -> Primitive:
    try:
        return REGISTRY[name]
    except KeyError:
        raise AssertionError(f"no primitive named {name!r}") from None


# -- shape-rule helpers ----------------------------------------------------

def broadcast_shapes(*shapes, what: str = "combine") -> tuple:
    """NumPy broadcasting of dim tuples (1 stretches; equal dims agree)."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        ds = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        d = 1
        for x in ds:
            if x == 1:
                continue
            if d == 1:
                d = x
            elif d != x:
                raise ShapeError(f"cannot {what} " + " and ".join(show_shape(s) for s in shapes)
                                 + f": dims {_d(d)} and {_d(x)} do not broadcast")
        out.append(d)
    return tuple(out)


def _d(d):
    return show(d)


def same_dtype(types, what: str) -> str:
    dts = {t.dtype for t in types}
    if len(dts) > 1:
        raise ShapeError(f"cannot {what} " + " and ".join(str(t) for t in types) + ": dtypes differ")
    return types[0].dtype


def need_float(t, what: str) -> None:
    """`t` (a TensorType, or a node: its type) must be f32 or f64."""
    t = getattr(t, "type", t)
    if t.dtype not in ("f32", "f64"):
        raise ShapeError(f"{what} needs a float tensor, found {t}")


def norm_axis(axis, rank: int, x=None, fname: str = "") -> int:
    """axis in [-rank, rank) -> [0, rank) (x, a node, names the tensor in the message)."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or not -rank <= axis < max(rank, 1):
        of = f" of {x.type}" if x is not None else f" of a tensor of rank {rank}"
        raise ShapeError(f"{fname + ': ' if fname else ''}axis {axis} is out of range{of}")
    return int(axis) % rank if rank else 0


def norm_axes(axis, x, fname: str = "") -> tuple:
    """None -> every axis of node x; an int or a list -> sorted distinct axes in [0, rank)."""
    if axis is None:
        return tuple(range(x.rank))
    if not isinstance(axis, (list, tuple)):
        axis = (axis,)
    out = tuple(sorted({norm_axis(a, x.rank, x, fname) for a in axis}))
    if len(out) != len(axis):
        raise ShapeError(f"{fname}: axes {list(axis)} repeat an axis of {x.type}")
    return out
