"""Graph passes: each takes roots and returns (roots, changed). Dead code is
gone by construction: a graph is what its roots reach."""
from .cse import cse
from .hoist import hoist_scans
from .scans import merge_scans, prune_scans
from .simplify import simplify
from .specialize import specialize
from .unroll import unroll, unroll_short
from .windows import windows

# merge_scans first: it reads the residual links between bodies that a rebuild drops
PIPELINE = (unroll_short, merge_scans, prune_scans, hoist_scans, simplify, windows, cse)
# on the forward graph before differentiation, so BPTT differentiates the hoisted loop
FORWARD = (unroll_short, hoist_scans)


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


__all__ = ["cse", "hoist_scans", "merge_scans", "prune_scans", "simplify", "specialize", "unroll", "unroll_short", "windows", "optimize", "PIPELINE", "FORWARD"]
