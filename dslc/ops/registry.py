"""The primitive registry now lives with the IR (dslc/ir/registry.py); this
name stays so that primitive files written against `ops.registry` keep working."""
from ..ir.registry import *  # noqa: F401,F403
