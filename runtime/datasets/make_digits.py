"""Regenerate the built-in digits data sets from scikit-learn's 8x8 digits
(which ship inside scikit-learn; nothing is downloaded):

    python runtime/datasets/make_digits.py

digits.npz:        x float32 [1797, 64] in [0, 1] (pixel / 16), y int64 [1797]
digits_images.npz: x float32 [1797, 1, 8, 8],                   y int64 [1797]
Rows are permuted once with a fixed seed, so the first 80% and the rest are
i.i.d. samples (the `split = 0.8` of a train block)."""
from pathlib import Path

import numpy as np


def main() -> None:
    from sklearn.datasets import load_digits   # only this script needs scikit-learn
    d = load_digits()
    order = np.random.default_rng(20240601).permutation(len(d.target))
    x = (d.data[order] / 16.0).astype(np.float32)
    y = d.target[order].astype(np.int64)
    here = Path(__file__).resolve().parent
    np.savez_compressed(here / "digits.npz", x=x, y=y)
    np.savez_compressed(here / "digits_images.npz", x=x.reshape(-1, 1, 8, 8), y=y)
    (here / "README.txt").write_text(__doc__)


if __name__ == "__main__":
    main()
