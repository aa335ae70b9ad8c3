"""The primitive registry, grouped by family. Importing this package registers them all."""
from . import (construct, einsum, elementwise, index, leaves, linalg, nn, pool, random, reduce,  # noqa: F401
               scan, shape, softmax, special, trig)  # (registration)
from ..ir.registry import REGISTRY, Primitive, get, primitive

__all__ = ["REGISTRY", "Primitive", "get", "primitive"]
