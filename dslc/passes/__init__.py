"""Graph passes: each takes roots and returns (roots, changed). Dead code is
gone by construction: a graph is what its roots reach."""
from __future__ import annotations

import contextlib

from .cse import cse
from .fold import fold
from .simplify import simplify
from .specialize import specialize

PIPELINE = (simplify, fold, cse)
_AFTER_EACH: list = []      # checks run on the roots after every pass (tests lint here)


@contextlib.contextmanager
def check_after_each_pass(check):
    """Within the block, `check(pass_name, roots)` runs after every pass of `optimize`."""
    _AFTER_EACH.append(check)
    try:
        yield
    finally:
        _AFTER_EACH.remove(check)


def optimize(roots, passes=PIPELINE, max_rounds: int = 10):
    """Run the passes to a fixed point."""
    for _ in range(max_rounds):
        changed = False
        for p in passes:
            roots, c = p(roots)
            for check in _AFTER_EACH:
                check(p.__name__, roots)
            changed |= c
        if not changed:
            break
    return roots


__all__ = ["cse", "fold", "simplify", "specialize", "optimize", "PIPELINE", "check_after_each_pass"]
