"""Skip-gram training pairs from text that ships with Python (nothing is downloaded).

    python specs/data/make_text_data.py      # writes specs/data/skipgram.npz

The text is the documentation in `pydoc_data.topics.topics` (the help texts of
the `help()` system: ~64,000 words).  Deterministic for a given Python version:

  1. lower-case, split into words [a-z]+ (topics in sorted key order);
  2. vocabulary: the V = 2000 most frequent words (ties broken alphabetically),
     index 0 is the most frequent; out-of-vocabulary words are dropped;
  3. frequent words are subsampled as in word2vec: a token of word w is kept with
     probability min(1, sqrt(t / f(w)) + t / f(w)), t = 1e-3 (fixed seed);
  4. pairs (center, context) at distance 1..R (R = 2) in the subsampled text;
     shuffled once and cut to at most N_PAIRS;
  5. for each pair K = 5 negatives from the unigram^0.75 distribution.

Arrays (all int64, except `counts` and `noise`):
  center [N], context [N], neg [N, K]  -- the model's inputs
  vocab  [V] (a '\\n'-joined uint8 string, decode with bytes(...).decode())
  counts [V] word counts in the corpus, noise [V] f64 the negative-sampling distribution
"""
from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

import numpy as np

V = 2000          # vocabulary size
R = 2             # context window: |i - j| in 1..R
K = 5             # negatives per pair
T_SUB = 1e-3      # subsampling threshold
N_PAIRS = 100_000  # keeps the file < 2 MB
SEED = 0


def words() -> list[str]:
    from pydoc_data.topics import topics
    text = " ".join(topics[k] for k in sorted(topics)).lower()
    return re.findall(r"[a-z]+", text)


def build(seed: int = SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    toks = words()
    counts = collections.Counter(toks)
    vocab = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:V]]
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.array([index[w] for w in toks if w in index], dtype=np.int64)
    cnt = np.array([counts[w] for w in vocab], dtype=np.float64)

    freq = cnt / cnt.sum()
    keep_p = np.minimum(1.0, np.sqrt(T_SUB / freq) + T_SUB / freq)
    ids = ids[rng.random(len(ids)) < keep_p[ids]]

    centers, contexts = [], []
    for d in range(1, R + 1):
        centers += [ids[:-d], ids[d:]]
        contexts += [ids[d:], ids[:-d]]
    center = np.concatenate(centers)
    context = np.concatenate(contexts)
    order = rng.permutation(len(center))[:N_PAIRS]
    center, context = center[order], context[order]

    noise = cnt ** 0.75
    noise /= noise.sum()
    neg = rng.choice(V, size=(len(center), K), p=noise).astype(np.int64)
    return {"center": center, "context": context, "neg": neg,
            "vocab": np.frombuffer("\n".join(vocab).encode(), dtype=np.uint8),
            "counts": cnt.astype(np.int64), "noise": noise}


def main(out: str | None = None) -> Path:
    path = Path(out) if out else Path(__file__).resolve().parent / "skipgram.npz"
    arrays = build()
    np.savez_compressed(path, **arrays)
    print(f"{path}: {len(arrays['center'])} pairs, V = {V}, K = {K}, "
          f"{path.stat().st_size / 1e6:.2f} MB")
    return path


if __name__ == "__main__":
    main(*sys.argv[1:2])
