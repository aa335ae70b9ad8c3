"""Random primitives: fresh values at every training step. Each node has a
unique `uid`, so two draws are never merged by CSE. A draw may carry a fixed
`seed` (one imported from an ONNX random op): outside the training graph it is
lowered with that seed, so a re-exported model draws what the original drew."""
from __future__ import annotations

import itertools

import numpy as np

from ..ir.node import Node
from ..ir.registry import primitive
from ..ir.types import NUMPY, TensorType
from . import rng

_uids = itertools.count()


def _rand_shape(types, shape, dtype, uid, seed=None):
    return TensorType(dtype, tuple(shape))


def _like(b, shape, dtype):
    return b.ConstantOfShape(b.dims(shape), value=b.tensor([0.0], dtype))


def _lower(kind):
    # in the training graph: counter-based draws keyed by the step (resumable);
    # elsewhere: ONNX Runtime's own generator
    def lower(b, shape, dtype, uid, seed=None):
        if b.rng_counter is not None:
            return getattr(rng, kind)(b, shape, dtype, uid)
        op = "RandomNormalLike" if kind == "normal" else "RandomUniformLike"
        return b.op(op, _like(b, shape, dtype), seed=b.seed(uid) if seed is None else float(seed))
    return lower


primitive("random_normal", "random", _rand_shape, vjp=lambda g, out, **_: (),
          onnx=_lower("normal"),
          np=lambda shape, dtype, uid, seed=None:
          np.random.default_rng(uid).standard_normal(shape).astype(NUMPY[dtype]))
primitive("random_uniform", "random", _rand_shape, vjp=lambda g, out, **_: (),
          onnx=_lower("uniform"),
          np=lambda shape, dtype, uid, seed=None:
          np.random.default_rng(uid).random(shape).astype(NUMPY[dtype]))


def random(kind: str, shape, dtype: str = "f32", seed: float | None = None) -> Node:
    """A fresh draw: kind 'normal' (N(0, 1)) or 'uniform' (U[0, 1)); `seed` fixes ONNX's seed."""
    uid = next(_uids)
    attrs = {"shape": tuple(shape), "dtype": dtype, "uid": uid}
    if seed is not None:
        attrs["seed"] = float(seed)
    return Node(f"random_{kind}", (), attrs, TensorType(dtype, tuple(shape)))
