"""Text models of issue 13: a convolutional sentence classifier (§7.1, specs/textcnn.dl)
and a transformer character language model (specs/charlm_transformer.dl) on the same text
as the LSTM of specs/charlm.dl.

Every figure is measured on the exported inference graph run by plain onnxruntime.

    python bench/zoo.py textcnn charlm_transformer
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np

from bench.zoo import Entry, Result
from bench.zoo.generative import SPECS, session, train

DATA = SPECS / "data"


# -- text CNN ------------------------------------------------------------------------------

def _textcls():
    d = np.load(DATA / "textcls.npz")
    n = int(0.8 * len(d["y"]))                  # the train block's `split = 0.8`
    text = bytes(d["text"]).decode().split("\n")
    return d, n, text


def _tfidf_logreg() -> float:
    """scikit-learn: TF-IDF of word unigrams and bigrams, LogisticRegression(C=10), same split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    d, n, text = _textcls()
    vec = TfidfVectorizer(ngram_range=(1, 2))
    xt, xv = vec.fit_transform(text[:n]), vec.transform(text[n:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LogisticRegression(C=10.0, max_iter=5000).fit(xt, d["y"][:n])
    return float(clf.score(xv, d["y"][n:]))


def run_textcnn() -> Result:
    d, n, _ = _textcls()
    _, tr, hist = train("textcnn")
    probs = session(tr).run(["probs"], {"ids": d["ids"][n:]})[0]
    acc = float((probs.argmax(-1) == d["y"][n:]).mean())
    ref = _tfidf_logreg()
    chance = float(np.bincount(d["y"][n:]).max() / (len(d["y"]) - n))
    return Result(f"val acc {acc:.4f} ({len(hist)} epochs)",
                  f"sklearn TF-IDF (1-2 grams) + LogisticRegression(C=10) {ref:.4f} (>= -0.02); "
                  f"majority class {chance:.3f}", acc >= ref - 0.02 and acc > chance + 0.5)


# -- transformer character LM ----------------------------------------------------------------
LSTM_BITS = 1.90        # specs/charlm.dl's held-out bits/char (specs/README.md, bench/charlm.py)
LSTM_PARAMS = 191_025


def run_charlm_transformer() -> Result:
    from bench.zoo.sequences import _bits_per_char
    train_d, valid = np.load(DATA / "chars.npz"), np.load(DATA / "chars_valid.npz")
    freq = train_d["counts"].astype(np.float64) / train_d["counts"].sum()
    unigram = float(np.mean(-np.log2(np.maximum(freq[valid["ys"]], 1e-12))))
    t0 = time.perf_counter()
    _, tr, hist = train("charlm_transformer")
    seconds = time.perf_counter() - t0
    bits = _bits_per_char(session(tr), valid["xs"], valid["ys"])
    n_params = sum(int(np.prod(v.shape)) for v in tr.params().values())
    return Result(f"held-out {bits:.3f} bits/char, {n_params:,} params, {len(hist)} epochs in {seconds:.0f} s",
                  f"LSTM (specs/charlm.dl, {LSTM_PARAMS:,} params, 12 epochs) {LSTM_BITS:.2f} bits/char "
                  f"(<= +0.1); unigram {unigram:.3f}", bits <= LSTM_BITS + 0.1 and bits < unigram,
                  f"val loss {hist[-1]['val_loss'] / math.log(2):.3f} bits/char by the trainer")


ENTRIES = [
    Entry("textcnn", "specs/textcnn.dl",
          "embedding -> conv1d (widths 3, 4, 5) -> max over time -> softmax classifies documentation "
          "sentences by package as well as a bag-of-n-grams linear model", run_textcnn),
    Entry("charlm_transformer", "specs/charlm_transformer.dl",
          "a causal transformer (2 pre-norm blocks, sinusoidal positions) predicts held-out text as well "
          "as the LSTM of specs/charlm.dl at a similar param count and training time", run_charlm_transformer,
          required=False),
]
