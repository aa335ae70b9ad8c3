"""Word embeddings of the lecture notes (§7): skip-gram with negative sampling,
trained from specs/skipgram.dl on Python's documentation text, checked against
closed forms: the loss at initialisation, (K + 1) log 2, and the shifted PMI that
the optimum's scores x_w . z_v approach (Levy & Goldberg, 2014).

    python bench/zoo.py skipgram
"""
from __future__ import annotations

import numpy as np

from bench.zoo import Entry, Result
from bench.zoo.generative import SPECS, ensure_data, session

WORDS = ["int", "true", "list", "class", "error", "file", "string", "first"]


def run_skipgram() -> Result:
    import dslc
    from scipy.stats import spearmanr
    d = np.load(ensure_data("skipgram"))
    path = SPECS / "skipgram.dl"
    compiled = dslc.compile(dslc.load(str(path)))
    tr = dslc.Trainer(compiled, spec_path=str(path), log=lambda s: None, progress=False)
    n = int(0.9 * len(d["center"]))            # the train block's split
    k = d["neg"].shape[1]
    val = {name: d[name][n:] for name in ("center", "context", "neg")}
    before = tr.evaluate(val)["loss"]
    hist = tr.fit()
    after = tr.evaluate(val)["loss"]
    p = tr.params()
    X, Z = p["X"], p["Z"]
    V = len(X)

    # shifted PMI of the training pairs: log p(w, v) / (p(w) p_n(v)) - log K, where the
    # pairs are frequent enough for the estimate to mean something (count >= 10)
    counts = np.zeros((V, V))
    np.add.at(counts, (d["center"][:n], d["context"][:n]), 1)
    pw = counts.sum(1) / counts.sum()
    wi, ci = np.nonzero(counts >= 10)
    spmi = np.log(counts[wi, ci] / counts.sum() / (pw[wi] * d["noise"][ci])) - np.log(k)
    rho = float(spearmanr(spmi, (X[wi] * Z[ci]).sum(1))[0])

    vocab = bytes(d["vocab"]).decode().split("\n")
    ids = np.arange(V, dtype=np.int64)
    vec = session(tr).run(["vectors"], {"words": ids})[0]      # the inference graph: id -> x_w
    unit = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
    print("   nearest neighbours (cosine of the input vectors):")
    for w in WORDS:
        i = vocab.index(w)
        near = np.argsort(-(unit @ unit[i]))[1:7]
        print(f"     {w:<8} " + ", ".join(vocab[j] for j in near))

    init = (k + 1) * np.log(2.0)
    ok = abs(before - init) < 0.01 and after < before - 1.0 and rho > 0.6
    return Result(f"val loss {before:.3f} -> {after:.3f} ({len(hist)} epochs); "
                  f"Spearman(x.z, SPMI) = {rho:.2f} on {len(wi)} pairs",
                  f"(K+1) log 2 = {init:.3f} at init; scores ~ shifted PMI (rho > 0.6)", ok)


ENTRIES = [
    Entry("skipgram", "specs/skipgram.dl",
          "skip-gram with negative sampling learns embeddings whose scores track PMI (§7)",
          run_skipgram),
]
