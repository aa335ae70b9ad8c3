"""Binary trees for specs/recursive.dl (synthetic; nothing is downloaded).

    python specs/data/make_tree_data.py     # writes specs/data/trees.npz

Each example is a NAND formula: a random binary tree over L = 8 leaves, each leaf
a random bit, each inner node the NAND of its two children; the label is the
value at the root. The tree's shape, not the leaves' counts, decides the label:
the best any bag-of-leaves classifier can do is the majority label for each
count of ones (about the share of the majority class, 0.62).

  1. a tree: start from the leaves 0..L-1 in order and L - 1 times merge two
     neighbours chosen uniformly into a new node L, L + 1, ... (the inner
     nodes come in a topological order: children before parents; the root is
     node 2L - 2);
  2. N = 4000 examples, fixed seed; the first 80% train (`split = 0.8`).

Arrays: leaves i64[N, L] (the bits, which are also the embedding ids),
children i64[L - 1, N, 2] (time-major for `scan`: the left and right child of
inner node L + k of example n are children[k, n]), y i64[N] (the root's value).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

L = 8
N = 4000
SEED = 0


def tree(rng) -> np.ndarray:
    """[L - 1, 2] children of the inner nodes L .. 2L - 2, children first."""
    nodes, out = list(range(L)), []
    for k in range(L - 1):
        i = int(rng.integers(len(nodes) - 1))
        out.append((nodes[i], nodes[i + 1]))
        nodes[i:i + 2] = [L + k]
    return np.array(out, dtype=np.int64)


def nand_value(bits: np.ndarray, children: np.ndarray) -> int:
    v = list(bits) + [0] * (L - 1)
    for k, (a, b) in enumerate(children):
        v[L + k] = 1 - (v[a] & v[b])
    return v[-1]


def build(seed: int = SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    leaves = rng.integers(0, 2, size=(N, L)).astype(np.int64)
    children = np.stack([tree(rng) for _ in range(N)], axis=1)          # [L - 1, N, 2]
    y = np.array([nand_value(leaves[n], children[:, n]) for n in range(N)], dtype=np.int64)
    return {"leaves": leaves, "children": children, "y": y}


def main(out: str | None = None) -> Path:
    path = Path(out) if out else Path(__file__).resolve().parent / "trees.npz"
    arrays = build()
    np.savez_compressed(path, **arrays)
    print(f"{path}: {N} trees of {L} leaves, share of label 1: {arrays['y'].mean():.3f}, "
          f"{path.stat().st_size / 1e6:.2f} MB")
    return path


if __name__ == "__main__":
    main()
