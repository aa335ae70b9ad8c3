"""Param initializers (LANGUAGE.md §5), drawn in NumPy at compile time.

fan_in / fan_out: a matrix W[n, m] used as x @ W has fan_in n, fan_out m; a
kernel [out, in, *k] has fan_in = in * prod(k), fan_out = out * prod(k).
"""
from __future__ import annotations

import zlib

import numpy as np

class stored(str):
    """A param's stored starting value (an imported initializer): prints as its
    origin (`model.onnx:fc.weight`), holds the array in `.value`."""

    def __new__(cls, value, origin: str):
        s = super().__new__(cls, origin)
        s.value = np.asarray(value)
        return s


INITIALIZERS = ("zeros", "ones", "constant", "normal", "uniform", "glorot_uniform",
                "glorot_normal", "he_uniform", "he_normal", "orthogonal")


def fans(shape) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    rf = int(np.prod(shape[2:]))
    return shape[1] * rf, shape[0] * rf


def initial_value(init: tuple, shape, dtype, seed: int, path: str) -> np.ndarray:
    """The starting value of the param `path`: reproducible from (seed, path)."""
    kind, *args = init
    rng = np.random.default_rng([seed, zlib.crc32(path.encode())])
    fi, fo = fans(shape)
    if kind == "onnx":                      # an imported initializer, as stored
        v = args[0].value
    elif kind == "zeros":
        v = np.zeros(shape)
    elif kind == "ones":
        v = np.ones(shape)
    elif kind == "constant":
        v = np.full(shape, args[0])
    elif kind == "normal":
        v = rng.normal(0.0, args[0] if args else 1.0, shape)
    elif kind == "uniform":
        a, b = (args + [-0.05, 0.05][len(args):]) if len(args) < 2 else args[:2]
        v = rng.uniform(a, b, shape)
    elif kind == "glorot_uniform":          # U(-r, r), r = sqrt(6 / (fan_in + fan_out))
        r = np.sqrt(6.0 / (fi + fo))
        v = rng.uniform(-r, r, shape)
    elif kind == "glorot_normal":           # N(0, 2 / (fan_in + fan_out))
        v = rng.normal(0.0, np.sqrt(2.0 / (fi + fo)), shape)
    elif kind == "he_uniform":              # U(-r, r), r = sqrt(6 / fan_in)
        r = np.sqrt(6.0 / fi)
        v = rng.uniform(-r, r, shape)
    elif kind == "he_normal":               # N(0, 2 / fan_in)
        v = rng.normal(0.0, np.sqrt(2.0 / fi), shape)
    elif kind == "orthogonal":              # Q of a Gaussian matrix's QR, signs fixed
        rows, cols = (shape[0], int(np.prod(shape[1:]))) if len(shape) >= 2 else (1, int(np.prod(shape)))
        a = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        v = (q if rows >= cols else q.T)[:rows, :cols].reshape(shape)
    else:
        raise AssertionError(f"unknown initializer {kind}")
    from .ir.types import NUMPY
    return np.asarray(v, dtype=NUMPY[dtype])
