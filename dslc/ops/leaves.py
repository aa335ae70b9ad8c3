"""Leaves of the graph (inputs, params, running state, constants) and the
training/inference mode switch."""
from __future__ import annotations

import numpy as np

from ..ir.node import Node
from ..ir.types import TensorType
from ..ir.registry import primitive


def _leaf(types, **attrs):
    raise AssertionError("leaves carry their own type")


for _name in ("input", "param", "state"):
    primitive(_name, "leaf", _leaf, onnx=None, np=None)
primitive("const", "leaf", _leaf, vjp=lambda g, out: (),
          onnx=lambda b, value: b.tensor_const(value), np=lambda value: value)


def input_(name: str, type: TensorType, doc: str = "") -> Node:
    return Node("input", (), {"name": name}, type, hint=name)


def param(name: str, type: TensorType, init: tuple = ("zeros",)) -> Node:
    """A trainable tensor; `init` is (initializer name, *args)."""
    return Node("param", (), {"name": name, "init": tuple(init)}, type, hint=name)


def state(name: str, type: TensorType, init: tuple = ("zeros",)) -> Node:
    """A non-trainable tensor carried across training steps (e.g. running means)."""
    return Node("state", (), {"name": name, "init": tuple(init)}, type, hint=name)


# -- mode switch: training(a, b) is a in the training graph, b in inference --
def _mode_shape(types):
    a, b = types
    assert a == b, (a, b)
    return a


primitive("training", "mode", _mode_shape, vjp=None, onnx=None,
          np=lambda a, b: a, doc="specialised away before autodiff and lowering")
