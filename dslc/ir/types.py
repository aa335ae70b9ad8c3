"""Tensor types: a dtype and a shape of dims (ints or symbolic `Sym`s)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dims import Dim, show_shape

DTYPES = ("f32", "f64", "i64", "bool")
NUMPY = {"f32": np.float32, "f64": np.float64, "i64": np.int64, "bool": np.bool_}
FLOATS = ("f32", "f64")


class ShapeError(Exception):
    """Raised by shape rules; `apply` turns it into a SpecError at the current location."""


def is_float(dtype: str) -> bool:
    return dtype in FLOATS


@dataclass(frozen=True)
class TensorType:
    dtype: str
    shape: tuple  # of Dim

    def __post_init__(self):
        assert self.dtype in DTYPES, self.dtype
        assert isinstance(self.shape, tuple), self.shape

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: str) -> "TensorType":
        return TensorType(dtype, self.shape)

    def __str__(self):
        return f"{self.dtype}{show_shape(self.shape)}"


def scalar(dtype: str = "f32") -> TensorType:
    return TensorType(dtype, ())


def dim_is(d: Dim, v: int) -> bool:
    return isinstance(d, int) and d == v
