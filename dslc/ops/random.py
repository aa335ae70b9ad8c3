"""Random primitives: fresh values at every training step. Each node has a
unique `uid`, so two draws are never merged by CSE."""
from __future__ import annotations

import itertools

import numpy as np

from ..ir.node import Node
from ..ir.types import NUMPY, TensorType
from .registry import primitive

_uids = itertools.count()


def _rand_shape(types, shape, dtype, uid):
    return TensorType(dtype, tuple(shape))


def _like(b, shape, dtype):
    return b.ConstantOfShape(b.dims(shape), value=b.tensor([0.0], dtype))


primitive("random_normal", "random", _rand_shape, vjp=lambda g, out, **_: (),
          onnx=lambda b, shape, dtype, uid: b.RandomNormalLike(_like(b, shape, dtype), seed=b.seed(uid)),
          np=lambda shape, dtype, uid: np.random.default_rng(uid).standard_normal(shape).astype(NUMPY[dtype]))
primitive("random_uniform", "random", _rand_shape, vjp=lambda g, out, **_: (),
          onnx=lambda b, shape, dtype, uid: b.RandomUniformLike(_like(b, shape, dtype), seed=b.seed(uid)),
          np=lambda shape, dtype, uid: np.random.default_rng(uid).random(shape).astype(NUMPY[dtype]))


def random(kind: str, shape, dtype: str = "f32") -> Node:
    """A fresh draw: kind 'normal' (N(0, 1)) or 'uniform' (U[0, 1))."""
    uid = next(_uids)
    return Node(f"random_{kind}", (), {"shape": tuple(shape), "dtype": dtype, "uid": uid},
                TensorType(dtype, tuple(shape)))
