"""Toy data sets for the generative specs (deterministic; nothing is downloaded).

    python specs/data/make_gen_data.py      # writes ring.npz, gauss2d.npz, nce.npz here

ring.npz     x f32[N, 2]: a mixture of 8 Gaussians, equal weights, centres on a circle
             of radius RING_R at angles 2*pi*k/8, isotropic std RING_STD (for gan.dl);
             also `centers` f32[8, 2] and `std` f32[] for the mode count.
gauss2d.npz  x f32[N, 2] ~ N(0, SIGMA) with SIGMA = [[1, 0.8], [0.8, 1]] (for score.dl);
             also `sigma` f64[2, 2]: the true score is -inv(sigma) @ x.
nce.npz      x  f32[N, 1]: samples of p(x) = exp(-A x^4 + B x^2) / Z (A = 1, B = 2: two
             modes at +-1), drawn by exact inverse-CDF sampling on a fine grid;
             xn f32[N, 1]: noise samples from N(0, NOISE_STD^2) (known density, for nce.dl);
             also `a`, `b`, `noise_std`.  log Z is left to the bench (quadrature).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

RING_N, RING_R, RING_STD = 8192, 2.0, 0.05
GAUSS_N = 8192
SIGMA = np.array([[1.0, 0.8], [0.8, 1.0]])
NCE_N, NCE_A, NCE_B, NOISE_STD = 20000, 1.0, 2.0, 1.5
SEED = 0


def ring(rng) -> dict:
    angles = 2 * np.pi * np.arange(8) / 8
    centers = RING_R * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    k = rng.integers(0, 8, RING_N)
    x = centers[k] + RING_STD * rng.standard_normal((RING_N, 2))
    return {"x": x.astype(np.float32), "centers": centers.astype(np.float32),
            "std": np.float32(RING_STD)}


def gauss2d(rng) -> dict:
    x = rng.standard_normal((GAUSS_N, 2)) @ np.linalg.cholesky(SIGMA).T
    return {"x": x.astype(np.float32), "sigma": SIGMA}


def nce(rng) -> dict:
    grid = np.linspace(-4, 4, 400_001)
    logp = -NCE_A * grid ** 4 + NCE_B * grid ** 2
    cdf = np.cumsum(np.exp(logp - logp.max()))
    cdf /= cdf[-1]
    x = np.interp(rng.random(NCE_N), cdf, grid)
    xn = NOISE_STD * rng.standard_normal(NCE_N)
    return {"x": x[:, None].astype(np.float32), "xn": xn[:, None].astype(np.float32),
            "a": np.float64(NCE_A), "b": np.float64(NCE_B), "noise_std": np.float64(NOISE_STD)}


def main(out_dir: str | None = None) -> None:
    out = Path(out_dir) if out_dir else Path(__file__).resolve().parent
    for i, (name, fn) in enumerate([("ring", ring), ("gauss2d", gauss2d), ("nce", nce)]):
        arrays = fn(np.random.default_rng([SEED, i]))
        np.savez_compressed(out / f"{name}.npz", **arrays)
        print(f"{out / (name + '.npz')}: " + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in arrays.items()))


if __name__ == "__main__":
    main(*sys.argv[1:2])
