"""Data for specs/factor_analysis.dl (nothing is downloaded).

    python specs/data/make_fa_data.py     # writes specs/data/digits_fa.npz

The built-in 8x8 digits (runtime/datasets/digits.npz, pixels in [0, 1]) without
the pixels that are (almost) constant over the training part (the first 80%, as
`split = 0.8`): those with training variance <= 1e-3, mostly the blank border,
leaving P = 52 pixels. A Gaussian model of a pixel that never varies in training
has a vanishing noise variance, and any held-out image that inks it gets a
likelihood of -infinity (scikit-learn's FactorAnalysis scores -5e6 per image on
all 64 pixels); without them the held-out likelihood is finite and comparable.

Arrays: x f32[N, 52] (same order as the built-in set), pixels i64[52] (which of
the 64 pixels were kept).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPLIT = 0.8
MIN_VAR = 1e-3


def build() -> dict[str, np.ndarray]:
    x = np.load(HERE.parents[1] / "runtime" / "datasets" / "digits.npz")["x"]
    n = int(SPLIT * len(x))
    keep = np.flatnonzero(x[:n].astype(np.float64).var(0) > MIN_VAR)
    return {"x": x[:, keep].astype(np.float32), "pixels": keep.astype(np.int64)}


def main(out: str | None = None) -> Path:
    path = Path(out) if out else HERE / "digits_fa.npz"
    arrays = build()
    np.savez_compressed(path, **arrays)
    print(f"{path}: {arrays['x'].shape}, {path.stat().st_size / 1e6:.2f} MB")
    return path


if __name__ == "__main__":
    main()
