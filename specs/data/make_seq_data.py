"""Sequence data for specs/charlm.dl and specs/seqclass*.dl (nothing is downloaded).

    python specs/data/make_seq_data.py     # writes chars.npz, chars_valid.npz, digits_rows.npz

chars.npz / chars_valid.npz — a character-level language-model corpus made from
Python's own documentation text, `pydoc_data.topics.topics` (the help texts of
the `help()` system, ~465,000 characters; it ships with Python):

  1. the topics joined in sorted key order, separated by a blank line;
  2. vocabulary: the V_TOP = 80 most frequent characters (ties broken by code
     point) get ids 0..79 in that order; every other character maps to
     OTHER = 80, so the vocabulary has V = 81 ids;
  3. the id stream is cut into non-overlapping windows of T + 1 = 65 ids; a window
     gives the input `xs` (its first 64 ids) and the target `ys` (its last 64:
     the next character at every step);
  4. the first 90% of the text (in order) is the training part (chars.npz), the
     last 10% the held-out part (chars_valid.npz; different help topics);
  5. arrays are stored time-major, as the model's inputs are declared:
     xs i64[T, N], ys i64[T, N] (N = the number of windows, the batch axis is 1).

Extra arrays (not model inputs): `vocab` (the characters, as UTF-32 code points,
i64[V - 1]) and `counts` (i64[V], character counts over the training part).

digits_rows.npz — the built-in 8x8 digits (runtime/datasets/digits.npz, values in
[0, 1]) read row by row: xs f32[8, N, 8] (row t of image n is xs[t, n]), y i64[N],
same order as the built-in set, so `split = 0.8` gives the same split as
specs/digits.dl.

Deterministic for a given Python version (the text is the interpreter's own).
"""
from __future__ import annotations

import collections
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
V_TOP = 80            # characters with their own id
OTHER = V_TOP         # id of every other character
V = V_TOP + 1
T = 64                # sequence length
VALID = 0.1           # held-out fraction of the text (its end)


def text() -> str:
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k] for k in sorted(topics))


def vocabulary(s: str) -> list[str]:
    counts = collections.Counter(s)
    return [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], ord(kv[0])))[:V_TOP]]


def encode(s: str, vocab: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(vocab)}
    return np.array([index.get(c, OTHER) for c in s], dtype=np.int64)


def decode(ids, vocab) -> str:
    vocab = [chr(int(c)) for c in vocab]
    return "".join(vocab[i] if i < len(vocab) else "\N{REPLACEMENT CHARACTER}" for i in np.asarray(ids).ravel())


def windows(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = (len(ids) - 1) // T
    x = ids[: n * T].reshape(n, T)
    y = ids[1: n * T + 1].reshape(n, T)
    return np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)   # time-major [T, N]


def build_chars() -> tuple[dict, dict]:
    s = text()
    vocab = vocabulary(s)
    ids = encode(s, vocab)
    cut = int(len(ids) * (1 - VALID))
    train, valid = ids[:cut], ids[cut:]
    counts = np.bincount(train, minlength=V).astype(np.int64)
    code = np.array([ord(c) for c in vocab], dtype=np.int64)
    parts = []
    for part in (train, valid):
        xs, ys = windows(part)
        parts.append({"xs": xs, "ys": ys, "vocab": code, "counts": counts})
    return parts[0], parts[1]


def build_digits_rows() -> dict:
    d = np.load(ROOT / "runtime" / "datasets" / "digits.npz")
    x, y = d["x"].astype(np.float32), d["y"].astype(np.int64)
    xs = np.ascontiguousarray(x.reshape(-1, 8, 8).transpose(1, 0, 2))   # [8 rows, N, 8 pixels]
    return {"xs": xs, "y": y}


def main() -> int:
    train, valid = build_chars()
    np.savez_compressed(HERE / "chars.npz", **train)
    np.savez_compressed(HERE / "chars_valid.npz", **valid)
    np.savez_compressed(HERE / "digits_rows.npz", **build_digits_rows())
    for name in ("chars.npz", "chars_valid.npz", "digits_rows.npz"):
        p = HERE / name
        with np.load(p) as z:
            shapes = ", ".join(f"{k} {z[k].dtype}{list(z[k].shape)}" for k in z.files)
        print(f"{p.relative_to(ROOT)}: {p.stat().st_size / 1e6:.2f} MB ({shapes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
