"""Latent-variable models of the lecture notes (§9.2-9.3) fit by gradient on their
likelihood or ELBO, against references the project did not compute: scikit-learn's
FactorAnalysis and GaussianMixture (same data, same sizes), and for the deep latent
Gaussian model a single-layer VAE and the best factorised model.

    python bench/zoo.py dlgm factor_analysis gmm
"""
from __future__ import annotations

import numpy as np

from bench.zoo import Entry, Result
from bench.zoo.generative import OUT, digits, grid_picture, session, train


# -- deep latent Gaussian model, two stochastic layers (§9.3) -----------------------------
def _neg_elbo(tr, xv, repeats: int = 5) -> dict[str, float]:
    """The evaluation graph's metrics on the held-out images; its normal() draws differ
    from run to run, so the figures are the mean of a few runs."""
    runs = [tr.evaluate({"x": xv}) for _ in range(repeats)]
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def run_dlgm() -> Result:
    xt, xv = digits()
    pm = np.clip(xt.mean(0), 1e-6, 1 - 1e-6)       # best independent-pixel model, exact NLL
    factorised = float(-(xv * np.log(pm) + (1 - xv) * np.log(1 - pm)).sum(1).mean())
    _, tr, hist = train("dlgm")
    ev = _neg_elbo(tr, xv)
    _, vae, _ = train("vae")
    ref = _neg_elbo(vae, xv)["loss"]
    z = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    samples = session(tr).run(["sample"], {"x": xv[:1], "z_prior": z})[0]
    grid_picture(samples, OUT / "dlgm_samples.png", cols=10,
                 title=f"DLGM samples (z2 ~ N(0, I), z1 | z2 drawn); val -ELBO {ev['loss']:.2f} nats")
    ok = ev["loss"] < factorised and ev["loss"] <= ref + 1.0
    return Result(f"val -ELBO {ev['loss']:.2f} nats (rec {ev['rec']:.2f} + KL1 {ev['kl1']:.2f} "
                  f"+ KL2 {ev['kl2']:.3f}), {len(hist)} epochs",
                  f"single-layer VAE (specs/vae.dl) {ref:.2f} (<= +1); factorised Bernoulli {factorised:.2f}",
                  ok, note=f"samples in {OUT / 'dlgm_samples.png'}")


# -- factor analysis (§9.2) ----------------------------------------------------------------
def _shipped(npz: str, maker: str):
    """Train and validation rows of a derived digits set in specs/data (made by
    its script when missing), split as the train block's `split = 0.8`."""
    from bench.zoo.generative import SPECS
    path = SPECS / "data" / npz
    if not path.is_file():
        import importlib.util
        spec = importlib.util.spec_from_file_location(maker, SPECS / "data" / f"{maker}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.main()
    x = np.load(path)["x"]
    n = int(0.8 * len(x))
    return x[:n], x[n:]


def run_factor_analysis() -> Result:
    from sklearn.decomposition import FactorAnalysis
    xt, xv = _shipped("digits_fa.npz", "make_fa_data")
    _, tr, hist = train("factor_analysis")
    ours = float(session(tr).run(["loglik"], {"x": xv})[0].astype(np.float64).mean())
    m = tr.params()["W"].shape[1]
    peer = FactorAnalysis(m, random_state=0).fit(xt.astype(np.float64))
    ref = float(peer.score(xv.astype(np.float64)))
    gap = (ref - ours) / abs(ref)               # > 0: ours is worse
    return Result(f"held-out mean log-likelihood {ours:.3f} nats (m = {m}, {len(hist)} epochs of Adam)",
                  f"sklearn FactorAnalysis({m}).score {ref:.3f}; gap {100 * gap:+.2f}% (|gap| <= 1%)",
                  abs(gap) <= 0.01)


# -- Gaussian mixture (§9.2) -------------------------------------------------------------
def run_gmm() -> Result:
    from sklearn.mixture import GaussianMixture
    xt, xv = _shipped("digits_pca.npz", "make_gmm_data")
    _, tr, hist = train("gmm")
    ours = float(session(tr).run(["loglik"], {"x": xv})[0].astype(np.float64).mean())
    k = tr.params()["mu"].shape[0]
    peer = GaussianMixture(k, covariance_type="full", random_state=0).fit(xt.astype(np.float64))
    ref = float(peer.score(xv.astype(np.float64)))
    gap = (ref - ours) / abs(ref)               # > 0: ours is worse
    return Result(f"held-out mean log-likelihood {ours:.3f} nats (K = {k}, {len(hist)} epochs of Adam)",
                  f"sklearn GaussianMixture({k}, full, EM) {ref:.3f}; gap {100 * gap:+.2f}% (<= 2%)", gap <= 0.02)


ENTRIES = [
    Entry("dlgm", "specs/dlgm.dl",
          "a deep latent Gaussian model with two stochastic layers, trained by stochastic backprop "
          "on the ELBO, models held-out digits as well as a one-layer VAE", run_dlgm),
    Entry("factor_analysis", "specs/factor_analysis.dl",
          "linear factor analysis by maximum likelihood (logdet, solve through the capacitance matrix) "
          "matches scikit-learn's FactorAnalysis on held-out digits", run_factor_analysis),
    Entry("gmm", "specs/gmm.dl",
          "a full-covariance Gaussian mixture (Cholesky-parameterised precisions) fit by gradient on the "
          "log-likelihood matches EM's held-out likelihood", run_gmm),
]
