"""The recursive network of the lecture notes (§8.1), specs/recursive.dl: one composition
F(h_left, h_right) applied bottom-up over binary trees given as child-index arrays
(`gather`-style reads with take_along_axis, writes with scatter_add, in a `scan`).
Compared with bag-of-leaves classifiers, which see which leaves a tree has but not its shape.

    python bench/zoo.py recursive
"""
from __future__ import annotations

import warnings

import numpy as np

from bench.zoo import Entry, Result
from bench.zoo.generative import SPECS, session, train


def _trees():
    path = SPECS / "data" / "trees.npz"
    if not path.is_file():
        import importlib.util
        spec = importlib.util.spec_from_file_location("make_tree_data", SPECS / "data" / "make_tree_data.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.main()
    return np.load(path)


def _bag_baselines(d, n) -> tuple[float, float]:
    """Held-out accuracy of (a) the best bag-of-leaves rule, the majority training label for
    each count of ones, and (b) scikit-learn LogisticRegression on the leaf counts."""
    from sklearn.linear_model import LogisticRegression
    counts = np.stack([(d["leaves"] == v).sum(1) for v in range(int(d["leaves"].max()) + 1)], 1)
    ones, y = counts[:, 1], d["y"]
    rule = {k: int(np.bincount(y[:n][ones[:n] == k], minlength=2).argmax()) if np.any(ones[:n] == k)
            else int(np.bincount(y[:n]).argmax()) for k in np.unique(ones)}
    bayes = float(np.mean([rule[k] == t for k, t in zip(ones[n:], y[n:])]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(max_iter=2000).fit(counts[:n], y[:n])
    return bayes, float(lr.score(counts[n:], y[n:]))


def run_recursive() -> Result:
    d = _trees()
    n = int(0.8 * len(d["y"]))                  # the train block's `split = 0.8`
    _, tr, hist = train("recursive")
    probs = session(tr).run(["probs"], {"leaves": d["leaves"][n:], "children": d["children"][:, n:]})[0]
    acc = float((probs.argmax(-1) == d["y"][n:]).mean())
    bayes, lr = _bag_baselines(d, n)
    return Result(f"val acc {acc:.4f} ({len(hist)} epochs)",
                  f"bag of leaves: best count rule {bayes:.4f}, sklearn LogisticRegression on counts "
                  f"{lr:.4f} (margin >= 0.2)", acc >= max(bayes, lr) + 0.2)


ENTRIES = [
    Entry("recursive", "specs/recursive.dl",
          "a recursive network composing children bottom-up learns a label that depends on the "
          "tree's shape, far beyond any bag-of-leaves classifier", run_recursive),
]
