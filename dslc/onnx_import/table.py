"""The converter table: ONNX op type -> a function building IR for one node.

    @op("Relu")
    def _relu(cx, x):            # inputs in ONNX order (None for an absent optional one)
        return P("relu", x)      # one value, or a list/tuple for several outputs

A converter sees values that are IR nodes or static NumPy arrays (context.py);
`fold=np_fn` makes an op compute on statics at import (Shape chains).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .context import canon, is_static

CONVERTERS: dict[str, Callable] = {}


def op(*names: str, fold: Callable | None = None):
    """Register the decorated converter for the ONNX op types `names` (default domain)."""
    def deco(fn):
        def run(cx, *ins):
            if fold is not None and ins and all(v is None or is_static(v) for v in ins):
                out = fold(cx, *[None if v is None else canon(v) for v in ins])
                return out
            return fn(cx, *ins)
        run.__doc__ = fn.__doc__
        for n in names:
            assert n not in CONVERTERS, n
            CONVERTERS[n] = run
        return fn
    return deco


def key(op_type: str, domain: str = "") -> str:
    """Table key: the op type for the default domain, `domain:Op` otherwise (`ai.onnx.ml:...`)."""
    return op_type if domain in ("", "ai.onnx") else f"{domain}:{op_type}"


def supported(op_type: str, domain: str = "") -> bool:
    return key(op_type, domain) in CONVERTERS


def np_fold(fn):
    """A fold through a plain NumPy function of the static inputs."""
    return lambda cx, *xs: np.asarray(fn(*xs))
