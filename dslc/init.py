"""Param initializers (LANGUAGE.md §5), drawn in NumPy at compile time.

fan_in / fan_out: a matrix W[n, m] used as x @ W has fan_in n, fan_out m; a
kernel [out, in, *k] has fan_in = in * prod(k), fan_out = out * prod(k).
"""
from __future__ import annotations
from .ir.types import NUMPY

import zlib

import numpy as np

# initializer -> (min, max) number of arguments
INITIALIZERS = {"zeros": (0, 0), "ones": (0, 0), "constant": (1, 1), "normal": (0, 1), "uniform": (0, 2),
                "glorot_uniform": (0, 0), "glorot_normal": (0, 0), "he_uniform": (0, 0),
                "he_normal": (0, 0), "orthogonal": (0, 0)}


class stored(str):
    """A param's stored starting value (an imported initializer): prints as its
    origin (`model.onnx:fc.weight`), holds the array in `.value`."""

    def __new__(cls, value, origin: str):
        s = super().__new__(cls, origin)
        s.value = np.asarray(value)
        return s


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
    """The starting value of the param `path`: reproducible from (seed, path),
    drawn directly in the param's dtype (an f32 param never passes through f64)."""
    kind, *args = init
    dt = np.dtype(NUMPY[dtype])
    if not np.issubdtype(dt, np.floating):          # integer/bool state: exact fills only
        fill = {"zeros": 0, "ones": 1}.get(kind, args[0] if kind == "constant" else 0)
        return np.full(shape, fill, dtype=dt)
    rng = np.random.default_rng([seed, zlib.crc32(path.encode())])
    fi, fo = fans(shape)

    def normal(std):                                # N(0, std²)
        return rng.standard_normal(shape, dtype=dt) * dt.type(std)

    def uniform(a, b):                              # U(a, b)
        return dt.type(a) + dt.type(b - a) * rng.random(shape, dtype=dt)

    if kind == "onnx":                      # an imported initializer, as stored
        v = np.asarray(args[0].value, dt)
    elif kind == "zeros":
        v = np.zeros(shape, dt)
    elif kind == "ones":
        v = np.ones(shape, dt)
    elif kind == "constant":
        v = np.full(shape, args[0], dt)
    elif kind == "normal":
        v = normal(args[0] if args else 1.0)
    elif kind == "uniform":
        a, b = args[:2] if len(args) >= 2 else (-0.05, 0.05)
        v = uniform(a, b)
    elif kind == "glorot_uniform":          # U(-r, r), r = sqrt(6 / (fan_in + fan_out))
        r = np.sqrt(6.0 / (fi + fo))
        v = uniform(-r, r)
    elif kind == "glorot_normal":           # N(0, 2 / (fan_in + fan_out))
        v = normal(np.sqrt(2.0 / (fi + fo)))
    elif kind == "he_uniform":              # U(-r, r), r = sqrt(6 / fan_in)
        r = np.sqrt(6.0 / fi)
        v = uniform(-r, r)
    elif kind == "he_normal":               # N(0, 2 / fan_in)
        v = normal(np.sqrt(2.0 / fi))
    elif kind == "orthogonal":              # Q of a Gaussian matrix's QR, signs fixed (QR in f64)
        rows, cols = (shape[0], int(np.prod(shape[1:]))) if len(shape) >= 2 else (1, int(np.prod(shape)))
        a = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        v = (q if rows >= cols else q.T)[:rows, :cols].reshape(shape)
    else:
        raise AssertionError(f"unknown initializer {kind}")
    return np.asarray(v, dtype=dt)
