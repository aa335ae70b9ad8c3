"""Benchmark: the character-level LSTM language model, specs/charlm.dl.

    python bench/charlm.py [--epochs N]

Reports
  - compile time and training-graph node count for the spec as is (symbolic T),
    and for copies of the spec with T fixed to 1, 5 and 300: the counts are the
    same and the compile time does not grow with T (`scan` is one ONNX Scan node,
    not an unrolled loop);
  - the held-out loss in bits per character before and after training, measured
    by running the exported inference graph in plain onnxruntime on
    specs/data/chars_valid.npz (and, as a cross-check, the trainer's own
    evaluation), next to the unigram baseline (the entropy of the training
    character frequencies);
  - the training time (the train block's epochs, on this machine);
  - one inference graph run on sequences of length T = 1, 5 and 300;
  - samples: the exported graph run on a growing prefix, the next character drawn
    from its softmax with a fixed seed.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "charlm.dl"
DATA = ROOT / "specs" / "data"
LN2 = math.log(2.0)


def node_count(graph: onnx.GraphProto) -> tuple[int, int]:
    """(nodes of the top graph, nodes including every subgraph: Scan bodies)."""
    top = len(graph.node)
    total = 0
    stack = [graph]
    while stack:
        g = stack.pop()
        total += len(g.node)
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    stack.append(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(a.graphs)
    return top, total


def compile_timed(text: str):
    import dslc
    t0 = time.perf_counter()
    prog = dslc.parse(text, filename=str(SPEC))
    m = dslc.compile(prog, "charlm")
    return m, time.perf_counter() - t0


def make_data_module():
    spec = importlib.util.spec_from_file_location("make_seq_data", DATA / "make_seq_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def bits_per_char(sess: ort.InferenceSession, xs: np.ndarray, ys: np.ndarray, batch: int = 256) -> float:
    """Mean -log2 p(next char) over every position of the held-out windows."""
    total, count = 0.0, 0
    for s in range(0, xs.shape[1], batch):
        p = sess.run(["probs"], {"xs": xs[:, s:s + batch]})[0]              # [T, b, V]
        y = ys[:, s:s + batch]
        py = np.take_along_axis(p, y[..., None], axis=-1)[..., 0].astype(np.float64)
        total += float(-np.log2(np.maximum(py, 1e-30)).sum())
        count += y.size
    return total / count


def sample(sess: ort.InferenceSession, prefix: str, n: int, vocab, seed: int, temperature: float = 0.8) -> str:
    """Grow `prefix` by n characters: run the whole prefix through the graph (T grows
    by one each time), draw the next character from softmax(logits / temperature)."""
    mod = make_data_module()
    chars = [chr(int(c)) for c in vocab]
    ids = list(mod.encode(prefix, chars))
    rng = np.random.default_rng(seed)
    for _ in range(n):
        p = sess.run(["probs"], {"xs": np.array(ids, dtype=np.int64)[:, None]})[0][-1, 0].astype(np.float64)
        logp = np.log(np.maximum(p, 1e-30)) / temperature
        q = np.exp(logp - logp.max())
        q /= q.sum()
        ids.append(int(rng.choice(len(q), p=q)))
    return mod.decode(ids, vocab)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=None, help="override the train block's epochs")
    a = ap.parse_args(argv)
    import dslc

    text = SPEC.read_text()
    # -- compile: the spec as is (symbolic T) and with T fixed -----------------------
    print("== compile (specs/charlm.dl)")
    compiled, t_compile = compile_timed(text)
    top, total = node_count(compiled.training.graph)
    print(f"  symbolic T : compile {t_compile:.3f} s, training graph {top} nodes "
          f"({total} with the Scan bodies), {compiled.training.ByteSize() / 1e6:.2f} MB")
    rows = []
    for T in (1, 5, 300):
        fixed = re.sub(r"i64\[T, B\]", f"i64[{T}, B]", text)
        assert fixed != text
        m, t = compile_timed(fixed)
        rows.append((T, t, *node_count(m.training.graph)))
        print(f"  T = {T:<7d}: compile {t:.3f} s, training graph {rows[-1][2]} nodes ({rows[-1][3]} with bodies)")
    # A known T lets shape arithmetic fold (at T = 1 the `T - 1` of the shifted carries is
    # a constant: a Shape and an Add fewer); what matters is that nothing grows with T.
    same = rows[1][2:] == rows[2][2:] == (top, total) and all(abs(r[3] - total) <= 4 for r in rows)
    print(f"  node count independent of T (no unrolling; T = 1 folds a shape computation): "
          f"{'yes' if same else 'NO'}")

    # -- data -----------------------------------------------------------------------
    train = np.load(DATA / "chars.npz")
    valid = np.load(DATA / "chars_valid.npz")
    vocab = train["vocab"]
    counts = train["counts"].astype(np.float64)
    freq = counts / counts.sum()
    unigram = float(np.mean(-np.log2(np.maximum(freq[valid["ys"]], 1e-12))))   # cross-entropy on held-out
    print(f"\n== data: {train['xs'].shape[1]} training windows, {valid['xs'].shape[1]} held-out, "
          f"T = {train['xs'].shape[0]}, V = {len(counts)}")
    print(f"  unigram baseline (training character frequencies) on held-out: {unigram:.3f} bits/char")

    # -- before training ------------------------------------------------------------
    trainer = dslc.Trainer(compiled, progress=False, log=lambda s: print("  " + s))
    before = bits_per_char(session(trainer.inference_model()), valid["xs"], valid["ys"])
    print(f"\n== before training: held-out {before:.3f} bits/char (uniform over V: {math.log2(len(counts)):.3f})")

    # -- train ----------------------------------------------------------------------
    epochs = a.epochs or trainer.settings["epochs"]
    print(f"== training: {epochs} epochs, batch {trainer.settings['batch']}, clip = norm(1.0)")
    t0 = time.perf_counter()
    trainer.fit(epochs=epochs)
    t_train = time.perf_counter() - t0
    inference = trainer.inference_model()
    sess = session(inference)
    after = bits_per_char(sess, valid["xs"], valid["ys"])
    ev = trainer.evaluate({"xs": valid["xs"], "ys": valid["ys"]})
    print(f"  training time: {t_train:.1f} s ({trainer.step} steps; {t_train / max(trainer.step, 1) * 1e3:.0f} ms/step)")
    print(f"\n== after training: held-out {after:.3f} bits/char in onnxruntime on the exported graph "
          f"(trainer.evaluate: {ev['loss'] / LN2:.3f}; next-char accuracy {ev['acc']:.3f})")
    print(f"  before {before:.3f} -> after {after:.3f} bits/char; unigram baseline {unigram:.3f}")

    # -- one graph, any length --------------------------------------------------------
    print("\n== one inference graph, any length (input xs: i64[T, B], T symbolic)")
    dims = [d.dim_param or d.dim_value for d in inference.graph.input[0].type.tensor_type.shape.dim]
    print(f"  graph input xs dims: {dims}")
    stream = valid["xs"].T.reshape(-1)
    ok_len = True
    for T in (1, 5, 300):
        xs = stream[: 2 * T].reshape(2, T).T.copy()                        # [T, 2]
        p = sess.run(["probs"], {"xs": xs})[0]
        good = p.shape == (T, 2, len(counts)) and np.allclose(p.sum(-1), 1, atol=1e-4)
        # causal: the prefix of a longer run gives the same probabilities as a shorter run
        if T > 1:
            q = sess.run(["probs"], {"xs": xs[:1]})[0]
            good = good and np.allclose(p[:1], q, atol=1e-5)
        ok_len &= bool(good)
        print(f"  T = {T:<4d} probs {tuple(p.shape)}  sums to 1: {np.allclose(p.sum(-1), 1, atol=1e-4)}  "
              f"{'ok' if good else 'WRONG'}")

    # -- samples ----------------------------------------------------------------------
    print("\n== samples (temperature 0.8, seed 0; prefix in brackets)")
    for k, prefix in enumerate(["The ", "def ", "If the "]):
        s = sample(sess, prefix, 160, vocab, seed=k)
        print(f"  [{prefix}]{s[len(prefix):]!r}")

    ok = same and ok_len and after < before and after < unigram
    print("\nPASS" if ok else "\nFAIL", "(bits/char after < before and < unigram; one graph for any T)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
