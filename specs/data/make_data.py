"""Regenerate the small data sets the zoo specs use (deterministic; nothing is
downloaded):

    python specs/data/make_data.py

approx.npz   x f32[256, 1] evenly spaced on [-2, 2], y = sin(2x) f32[256, 1]
             (approx.dl: one hidden layer of ReLU / |x| / sigmoid / maxout units)
pwl.npz      x f32[201, 1] evenly spaced on [-2, 2], y = g(x) f32[201, 1] with
             g(x) = max(-x - 1, 0.5x, 2x - 1.5) - max(0, 1.5x - 1), a continuous
             piecewise-linear function with kinks at -2/3, 2/3 and 1 written as a
             difference of two convex (max-affine) functions (approx.dl: maxout2)
target.npz   t f32[64, 2], every row theta* = (3, 1): a dummy input carrying the
             minimiser of the quadratics in optimizers.dl and polyak.dl
quad_wd.npz  t f32[64, 3] rows theta* = (1, -2, 3) and h f32[64, 3, 3] rows
             H = Q diag(0.5, 5, 50) Q^T with Q a fixed random rotation
             (weight_decay.dl: the minimiser under weight decay mu is
             (H + mu I)^-1 H theta*)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def approx_target(x):
    """The 1-D function of approx.dl's ReLU/abs/sigmoid/maxout models."""
    return np.sin(2.0 * x)


# g = max over A_PLUS of (w x + b)  -  max over A_MINUS of (w x + b)   (slope w, intercept b)
A_PLUS = [(-1.0, -1.0), (0.5, 0.0), (2.0, -1.5)]
A_MINUS = [(0.0, 0.0), (1.5, -1.0)]


def pwl_target(x):
    """The continuous piecewise-linear function of approx.dl's maxout2 model."""
    x = np.asarray(x, dtype=np.float64)
    hp = np.max([w * x + b for w, b in A_PLUS], axis=0)
    hm = np.max([w * x + b for w, b in A_MINUS], axis=0)
    return hp - hm


THETA_STAR = np.array([3.0, 1.0])            # optimizers.dl, polyak.dl (H = diag(1, 50) in the specs)
WD_THETA_STAR = np.array([1.0, -2.0, 3.0])    # weight_decay.dl
WD_EIGS = np.array([0.5, 5.0, 50.0])


def wd_hessian() -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(7).normal(size=(3, 3)))
    return (q * WD_EIGS) @ q.T


def main() -> None:
    x = np.linspace(-2.0, 2.0, 256)[:, None]
    np.savez_compressed(HERE / "approx.npz", x=x.astype(np.float32), y=approx_target(x).astype(np.float32))
    x = np.linspace(-2.0, 2.0, 201)[:, None]
    np.savez_compressed(HERE / "pwl.npz", x=x.astype(np.float32), y=pwl_target(x).astype(np.float32))
    np.savez_compressed(HERE / "target.npz", t=np.tile(THETA_STAR, (64, 1)).astype(np.float32))
    h = wd_hessian().astype(np.float32)
    np.savez_compressed(HERE / "quad_wd.npz", t=np.tile(WD_THETA_STAR, (64, 1)).astype(np.float32),
                        h=np.tile(h, (64, 1, 1)))


if __name__ == "__main__":
    main()
