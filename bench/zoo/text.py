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


ENTRIES = [
    Entry("textcnn", "specs/textcnn.dl",
          "embedding -> conv1d (widths 3, 4, 5) -> max over time -> softmax classifies documentation "
          "sentences by package as well as a bag-of-n-grams linear model", run_textcnn),
]
