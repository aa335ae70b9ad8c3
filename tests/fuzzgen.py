"""Grammar-aware spec generation plus mutation, and the property every input
must satisfy (issue 12):

  - it checks, or it raises a SpecError located inside the text (never an
    internal error);
  - when it checks, every model compiles, each graph passes
    onnx.checker.check_model(full_check=True), loads in ONNX Runtime, and one
    training step (and one inference run) goes through on generated data.

`run_case(text)` returns (outcome, detail): outcome is "ok" (checked, compiled
and ran), "error" (a clean, located SpecError, or a clean runtime error such
as a NaN loss), or "internal" (anything else: the property failed).
Used by tests/test_fuzz_property.py (CI) and `python tests/fuzzgen.py N` (the long run)."""
from __future__ import annotations

import random
import re
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ACTS = ["relu", "tanh", "sigmoid", "identity", "softplus"]
UNARY = ["relu", "tanh", "sigmoid", "abs", "softplus", "exp", "sign", "sqrt", "log", "stop_gradient"]
OPTS = ["sgd(lr = 0.05)", "sgd(lr = 0.01, momentum = 0.9)", "sgd(lr = 0.01, momentum = 0.9, nesterov = true)",
        "adam(lr = 1e-3)", "adam(lr = 2e-4, beta1 = 0.5)", "rmsprop(lr = 1e-3)", "adagrad(lr = 0.1)",
        "sgd(lr = 0.01 * (1 + 1e-4 * t) ** -0.75)"]
EXTRAS = ["", "weight_decay = 1e-4", "clip = norm(1.0)", "schedule = cosine(10)", "schedule = warmup(3)",
          "schedule = step(2, 0.5)", "average = polyak(0.9)", "l1 = 1e-5"]


# -- generation ---------------------------------------------------------------------
def generate(rng: random.Random) -> str:
    """A random, mostly valid spec: a chain of bindings over [B, w] tensors, a loss, a train block."""
    d = rng.choice([2, 3, 4, 8])
    dtype = rng.choice(["f32"] * 5 + ["f64"])
    task = rng.choice(["class", "regress", "auto"])
    lines = [f"model g {{", f"    input x: {dtype}[B, {d}]"]
    if task == "class":
        lines.append("    input y: i64[B]")
    if task == "regress":
        lines.append(f"    input t: {dtype}[B, 1]")
    width = {"x": d}
    names = ["x"]
    for i in range(rng.randint(1, 6)):
        src = rng.choice(names[-3:])
        w = width[src]
        kind = rng.randrange(11)
        out_w = w
        if kind == 0 or dtype == "f64" and kind in (5, 6):
            out_w = rng.choice([1, 2, 3, 5, 8])
            act = rng.choice(ACTS)
            expr = f"dense({src}, {out_w}" + (f", act = {act})" if act != "identity" else ")")
            if dtype == "f64":
                expr = None
        elif kind == 1:
            expr = f"{rng.choice(UNARY)}({src})"
        elif kind == 2:
            others = [n for n in names if width[n] == w]
            expr = f"{src} {rng.choice(['+', '-', '*'])} {rng.choice(others)}"
        elif kind == 3:
            expr = f"{src} * {rng.choice(['0.5', '2', '-1', '1e-3', '3'])}"
        elif kind == 4:
            others = rng.choice(names)
            out_w = w + width[others]
            expr = f"concat([{src}, {others}], axis = -1)"
        elif kind == 5:
            expr = f"layer_norm({src})"
        elif kind == 6:
            expr = f"batch_norm({src})" if rng.random() < 0.5 else f"dropout({src}, 0.25)"
        elif kind == 7 and w > 1:
            a = rng.randrange(w - 1)
            b = rng.randint(a + 1, w)
            out_w = b - a
            expr = f"{src}[:, {a}:{b}]"
        elif kind == 8:
            expr = f"softmax({src})" if rng.random() < 0.5 else f"{src} - mean({src}, axis = -1, keepdims = true)"
        elif kind == 9:
            expr = f"where({src} > 0, {src}, 0.1 * {src})"
        else:
            expr = f"clip({src}, -1, 1) ** 2"
        if expr is None:
            continue
        name = f"h{i}"
        lines.append(f"    {name} = {expr}")
        names.append(name)
        width[name] = out_w
    last = names[-1]
    param = f"    param W: {dtype}[{width[last]}, OUT] ~ {rng.choice(['glorot_uniform', 'normal(0.1)', 'uniform(-0.1, 0.1)', 'he_normal', 'orthogonal'])}"
    if task == "class":
        k = rng.choice([2, 3, 5])
        lines += [param.replace("OUT", str(k)), f"    logits = {last} @ W",
                  f"    loss = cross_entropy(logits, y)", "    metric acc = accuracy(logits, y)",
                  "    output probs = softmax(logits)"]
    elif task == "regress":
        lines += [param.replace("OUT", "1"), f"    pred = {last} @ W",
                  f"    loss = mse(pred, t)", "    output pred"]
    else:
        lines += [param.replace("OUT", str(d)), f"    recon = {last} @ W",
                  f"    loss = mean((recon - x) ** 2)", "    output recon"]
    lines.append("}")
    extra = rng.choice(EXTRAS)
    lines += ["train g {", f"    optimizer = {rng.choice(OPTS)}", f"    batch = {rng.choice([2, 4, 8])}",
              "    epochs = 1", f"    seed = {rng.randrange(1000)}"] + ([f"    {extra}"] if extra else []) + ["}"]
    return "\n".join(lines) + "\n"


TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+\.?\d*(?:[eE][+-]?\d+)?|\|>|\*\*|[^\sA-Za-z0-9_]")
NUMBERS = ["0", "1", "2", "3", "-1", "64", "0.5", "1e-3", "128", "7", "1e400", "99999999999999999999", "-3"]


def mutate(text: str, rng: random.Random) -> str:
    """One token-level mutation: a number, a name, an argument, a dim, a token deleted/duplicated/swapped."""
    toks = list(TOKEN.finditer(text))
    if not toks:
        return text
    t = toks[rng.randrange(len(toks))]
    tok = t.group()
    kind = rng.randrange(7)
    if kind == 0 and tok[0].isdigit():
        new = rng.choice(NUMBERS)
    elif kind == 1 and (tok[0].isalpha() or tok[0] == "_"):
        new = rng.choice(sorted({m.group() for m in toks if m.group()[0].isalpha()}) + [tok + "x"])
    elif kind == 2:
        j = text.find(",", t.start())
        if j < 0:
            return text
        k = min([x for x in (text.find(",", j + 1), text.find(")", j + 1)) if x > 0] or [j + 1])
        return text[:j] + text[k:]
    elif kind == 3 and text[t.start() - 1:t.start()] in "[, ":
        new = rng.choice(["B", "T", "n", "0", "4", "2*m", "n + 1", "-2"])
    elif kind == 4:
        new = ""
    elif kind == 5:
        new = tok + " " + tok
    else:
        new = rng.choice(toks).group()
    return text[:t.start()] + new + text[t.end():]


def bases() -> list[str]:
    return [p.read_text() for p in sorted((HERE / "lang").glob("*.dl"))]


def case(rng: random.Random, base_texts: list[str]) -> str:
    """Half generated specs, half mutants (of generated specs or the language's examples)."""
    r = rng.random()
    if r < 0.4:
        return generate(rng)
    text = generate(rng) if r < 0.75 else rng.choice(base_texts)
    for _ in range(rng.randint(1, 3)):
        text = mutate(text, rng)
    return text


# -- the property ---------------------------------------------------------------------
def _located(e, text: str, filename: str) -> str | None:
    """None when every error of e points inside the text; else what is wrong."""
    errs = getattr(e, "errors", [e])
    n = text.count("\n") + 1
    for err in errs:
        if "internal error" in err.message:
            return f"internal error: {err.format()}"
        if err.filename != filename or not 1 <= err.line <= n:
            return f"error not located in the text: {err.format()}"
    return None


def _feeds(entries, rng: np.random.Generator, batch: int = 4) -> dict:
    out = {}
    for d in entries:
        shape = [s if isinstance(s, int) else batch for s in d["shape"]]
        if d["dtype"] in ("float32", "float64"):
            out[d["name"]] = rng.normal(size=shape).astype(d["dtype"])
        elif d["dtype"] == "bool":
            out[d["name"]] = rng.random(shape) < 0.5
        else:
            out[d["name"]] = rng.integers(0, d.get("classes") or 2, size=shape).astype(d["dtype"])
    return out


def run_compiled(prog, seed: int = 0) -> None:
    """Compile every model; full-check each graph; load in ORT; one training step, one inference run."""
    import json

    import onnx
    import onnxruntime as ort

    from dslc import compile as dslc_compile
    from dslc_runtime import Trainer
    rng = np.random.default_rng(seed)
    for name in prog.models:
        c = dslc_compile(prog, name)
        for g in (c.inference, c.training, c.evaluation):
            if g is not None:
                onnx.checker.check_model(g, full_check=True)
        if c.inference is not None:
            s = ort.InferenceSession(c.inference.SerializeToString(), providers=["CPUExecutionProvider"])
            entries = [{"name": i.name, "dtype": {1: "float32", 11: "float64", 7: "int64", 9: "bool"}[
                i.type.tensor_type.elem_type], "shape": [d.dim_value if d.HasField("dim_value") else "B"
                                                         for d in i.type.tensor_type.shape.dim]}
                       for i in c.inference.graph.input
                       if i.name not in {t.name for t in c.inference.graph.initializer}]
            s.run(None, _feeds(entries, rng))
        if c.training is not None:
            man = json.loads(next(p.value for p in c.training.metadata_props if p.key == "dslc.manifest"))
            t = Trainer(c, progress=False, log=lambda *_: None)
            t.train_step(_feeds(man["data"], rng))


def run_case(text: str, filename: str = "fuzz.dl", compile_too: bool = True) -> tuple[str, str]:
    from dslc import api
    from dslc.errors import SpecError
    from dslc_runtime import RuntimeFailure, TrainingDiverged
    try:
        prog = api.parse(text, filename)
    except SpecError as e:
        bad = _located(e, text, filename)
        return ("internal", bad) if bad else ("error", e.message)
    except Exception as e:  # noqa: BLE001 - the property
        return "internal", f"check raised {type(e).__name__}: {e}"
    if not compile_too:
        return "checked", ""
    try:
        run_compiled(prog)
    except TrainingDiverged as e:       # a NaN loss on random data: a clean, named runtime error
        return "error", str(e)
    except SpecError as e:
        return "internal", f"checked but compile refused: {e.format()}"
    except RuntimeFailure as e:
        return "internal", f"checked but the runtime failed: {e}"
    except Exception as e:  # noqa: BLE001
        return "internal", f"checked but {type(e).__name__}: {e}"
    return "ok", ""


def main(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    texts = bases()
    counts = {"ok": 0, "error": 0, "internal": 0, "slow": 0}
    first_internal = []
    t0 = time.perf_counter()
    for i in range(n):
        text = case(rng, texts)
        s = time.perf_counter()
        outcome, detail = run_case(text)
        took = time.perf_counter() - s
        counts[outcome] += 1
        if took > 1.0:
            counts["slow"] += 1
        if outcome == "internal" and len(first_internal) < 5:
            first_internal.append((detail, text))
    counts["seconds"] = round(time.perf_counter() - t0, 1)
    print(counts)
    for detail, text in first_internal:
        print("----", detail[:2000], text, sep="\n")
    return counts


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 0)
