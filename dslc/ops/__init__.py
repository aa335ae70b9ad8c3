"""The primitive registry, grouped by family. Importing this package registers them all."""
from . import construct, einsum, elementwise, index, leaves, linalg, nn, random, reduce, scan, shape, special, trig  # noqa: F401  (registration)
from .registry import REGISTRY, Primitive, get, primitive

__all__ = ["REGISTRY", "Primitive", "get", "primitive"]
