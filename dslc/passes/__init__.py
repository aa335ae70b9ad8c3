"""Graph passes: each takes roots and returns (roots, changed). Dead code is
gone by construction: a graph is what its roots reach."""
from __future__ import annotations

import contextlib

from .convpool import conv_pool
from .convs import conv_patches
from .cse import cse
from .fold import fold
from .hoist import hoist_scans
from .pools import pool_before_relu
from .scans import last_steps, merge_scans, prune_scans
from .simplify import simplify
from .specialize import specialize
from .unroll import unroll, unroll_short
from .windows import windows

# merge_scans first: it reads the residual links between bodies that a rebuild drops
PIPELINE = (unroll_short, merge_scans, prune_scans, last_steps, hoist_scans, pool_before_relu, simplify, fold,
            windows, cse, conv_patches)
# on the forward graph before differentiation, so BPTT differentiates the hoisted loop
FORWARD = (unroll_short, last_steps, hoist_scans, pool_before_relu, conv_pool)
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


__all__ = ["conv_patches", "conv_pool", "cse", "fold", "hoist_scans", "last_steps", "merge_scans", "prune_scans",
           "pool_before_relu", "simplify", "specialize", "unroll", "unroll_short", "windows", "optimize", "PIPELINE", "FORWARD",
           "check_after_each_pass"]
