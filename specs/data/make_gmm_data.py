"""Data for specs/gmm.dl (nothing is downloaded).

    python specs/data/make_gmm_data.py     # writes specs/data/digits_pca.npz

The built-in 8x8 digits (runtime/datasets/digits.npz, pixels in [0, 1]) in the
coordinates of their first P = 10 principal components, whitened: PCA is fit on
the training part only (the first 80%, as `split = 0.8`), every image is
projected and each coordinate divided by the training part's standard
deviation, so the training part has mean 0 and unit variance per coordinate.
A full-covariance Gaussian mixture is well posed there (on the raw pixels the
always-blank border pixels make every covariance singular).

Arrays: x f32[N, P] (same order as the built-in set).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
P = 10
SPLIT = 0.8


def build() -> dict[str, np.ndarray]:
    x = np.load(HERE.parents[1] / "runtime" / "datasets" / "digits.npz")["x"].astype(np.float64)
    n = int(SPLIT * len(x))
    mean = x[:n].mean(0)
    _, s, vt = np.linalg.svd(x[:n] - mean, full_matrices=False)
    z = (x - mean) @ vt[:P].T
    z /= z[:n].std(0)
    return {"x": z.astype(np.float32)}


def main(out: str | None = None) -> Path:
    path = Path(out) if out else HERE / "digits_pca.npz"
    arrays = build()
    np.savez_compressed(path, **arrays)
    print(f"{path}: {arrays['x'].shape}, {path.stat().st_size / 1e6:.2f} MB")
    return path


if __name__ == "__main__":
    main()
