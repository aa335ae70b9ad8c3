"""The primitive registry, grouped by family. Importing this package registers them all."""
from . import elementwise, leaves, nn, pool, random, reduce, scan, shape, softmax, trig  # noqa: F401  (registration)
from ..ir.registry import REGISTRY, Primitive, get, primitive

__all__ = ["REGISTRY", "Primitive", "get", "primitive"]
