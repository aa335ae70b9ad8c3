"""Sentence classification data for specs/textcnn.dl (nothing is downloaded).

    python specs/data/make_textcls_data.py     # writes specs/data/textcls.npz

Which standard-library package does a sentence of documentation come from? The
sentences are the docstrings that ship with Python of four packages (the
classes, in this order): asyncio, email, logging, xml.

  1. every module of the package (not tests, not private ones) is imported; its
     docstring and those of the classes, functions and methods it defines are
     collected in sorted order, each distinct docstring once;
  2. whitespace is collapsed and each docstring split into sentences after
     `.`, `!` or `?`; a sentence is its lower-cased words [a-z]+, kept when it
     has 5 to 40 words and was not seen before (in any class);
  3. every class keeps its first N_PER_CLASS sentences (balanced classes:
     chance is 1/4), and the examples are shuffled (fixed seed);
  4. the first 80% are the training part (`split = 0.8`); the vocabulary is the
     training part's words seen at least twice, most frequent first (ties
     alphabetically), ids from 2: id 0 pads, id 1 is any other word;
  5. each sentence becomes L = 32 ids (cut, or padded with 0 at the end).

Arrays: ids i64[N, L], y i64[N]; extra (not model inputs): `vocab` (the words,
a '\\n'-joined uint8 string), `classes` (likewise) and `text` (the sentences,
'\\n'-joined) for baselines that read words.
Deterministic for a given Python version (the text is the interpreter's own).
"""
from __future__ import annotations

import collections
import importlib
import inspect
import pkgutil
import re
import warnings
from pathlib import Path

import numpy as np

CLASSES = ("asyncio", "email", "logging", "xml")
N_PER_CLASS = 400
L = 32
SPLIT = 0.8
SEED = 0


def docstrings(pkg: str) -> list[str]:
    names = [pkg]
    root = importlib.import_module(pkg)
    if hasattr(root, "__path__"):
        names += [i.name for i in pkgutil.walk_packages(root.__path__, pkg + ".")
                  if "test" not in i.name and "._" not in i.name and "__main__" not in i.name]
    out, seen = [], set()
    for name in sorted(names):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mod = importlib.import_module(name)
        except Exception:       # noqa: BLE001 - a module that needs what this machine lacks
            continue
        objs = [mod]
        for _, v in sorted(vars(mod).items()):
            if getattr(v, "__module__", None) == name and (inspect.isclass(v) or inspect.isfunction(v)):
                objs.append(v)
                if inspect.isclass(v):
                    objs += [f for _, f in sorted(vars(v).items()) if inspect.isfunction(f)]
        for o in objs:
            d = o.__doc__
            if isinstance(d, str) and d not in seen:
                seen.add(d)
                out.append(d)
    return out


def sentences(doc: str):
    for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", doc)):
        words = re.findall(r"[a-z]+", s.lower())
        if 5 <= len(words) <= 40:
            yield " ".join(words)


def build(seed: int = SEED) -> dict[str, np.ndarray]:
    seen: set[str] = set()
    texts, labels = [], []
    for c, pkg in enumerate(CLASSES):
        got = []
        for d in docstrings(pkg):
            for s in sentences(d):
                if s not in seen and len(got) < N_PER_CLASS:
                    seen.add(s)
                    got.append(s)
        assert len(got) == N_PER_CLASS, (pkg, len(got))
        texts += got
        labels += [c] * len(got)
    order = np.random.default_rng(seed).permutation(len(texts))
    texts = [texts[i] for i in order]
    y = np.array(labels, dtype=np.int64)[order]
    n_train = int(SPLIT * len(texts))
    counts = collections.Counter(w for s in texts[:n_train] for w in s.split())
    vocab = [w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= 2]
    index = {w: i + 2 for i, w in enumerate(vocab)}
    ids = np.zeros((len(texts), L), dtype=np.int64)
    for i, s in enumerate(texts):
        row = [index.get(w, 1) for w in s.split()][:L]
        ids[i, :len(row)] = row
    enc = lambda xs: np.frombuffer("\n".join(xs).encode(), dtype=np.uint8)   # noqa: E731
    return {"ids": ids, "y": y, "vocab": enc(vocab), "classes": enc(CLASSES), "text": enc(texts)}


def main(out: str | None = None) -> Path:
    path = Path(out) if out else Path(__file__).resolve().parent / "textcls.npz"
    arrays = build()
    np.savez_compressed(path, **arrays)
    print(f"{path}: {len(arrays['y'])} sentences, {len(CLASSES)} classes, "
          f"vocabulary {len(bytes(arrays['vocab']).decode().split())} + 2, {path.stat().st_size / 1e6:.2f} MB")
    return path


if __name__ == "__main__":
    main()
