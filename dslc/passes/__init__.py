"""Graph passes: each takes roots and returns (roots, changed). Dead code is
gone by construction: a graph is what its roots reach."""
from .cse import cse
from .fold import fold
from .simplify import simplify
from .specialize import specialize

PIPELINE = (simplify, fold, cse)


def optimize(roots, passes=PIPELINE, max_rounds: int = 10):
    """Run the passes to a fixed point."""
    for _ in range(max_rounds):
        changed = False
        for p in passes:
            roots, c = p(roots)
            changed |= c
        if not changed:
            break
    return roots


__all__ = ["cse", "fold", "simplify", "specialize", "optimize", "PIPELINE"]
