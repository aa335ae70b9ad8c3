"""Optimizers, schedules, clipping, penalties and averaging, checked step by
step against their formulas (torch.optim's standard forms)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dslc.compile import compile
from dslc.ir.model import Optimizer, TrainSetup
from helpers import quadratic_model, run_steps

STEPS = 6


def reference(kind, args, h, th0, xs, wd=0.0, l1=0.0, clip=None, sched=None, lr_fn=None,
              average=None, scale=1.0):
    """NumPy transcription of the update rules, one step at a time."""
    th = th0.astype(np.float64).copy()
    s = {k: np.zeros_like(th) for k in ("b", "r", "v", "m", "vv")}
    avg = th.copy()
    traj = []
    for t, x in enumerate(xs, start=1):
        g = h * (th - x.mean(0))
        if clip is not None:
            n = math.sqrt((g * g).sum())
            g = g * min(1.0, clip / (n + 1e-6))
        g = g + wd * th + l1 * np.sign(th)
        lr = (lr_fn(t) if lr_fn else args["lr"]) * (sched(t) if sched else 1.0) * scale
        if kind == "sgd":
            mu = args.get("momentum", 0.0)
            if mu:
                s["b"] = mu * s["b"] + g
                g = g + mu * s["b"] if args.get("nesterov") else s["b"]
            th = th - lr * g
        elif kind == "adagrad":
            s["r"] = s["r"] + g * g
            th = th - lr * g / (np.sqrt(s["r"]) + args.get("eps", 1e-10))
        elif kind == "rmsprop":
            rho = args.get("rho", 0.99)
            s["v"] = rho * s["v"] + (1 - rho) * g * g
            th = th - lr * g / (np.sqrt(s["v"]) + args.get("eps", 1e-8))
        elif kind == "adam":
            b1, b2, eps = args.get("beta1", 0.9), args.get("beta2", 0.999), args.get("eps", 1e-8)
            s["m"] = b1 * s["m"] + (1 - b1) * g
            s["vv"] = b2 * s["vv"] + (1 - b2) * g * g
            mh, vh = s["m"] / (1 - b1 ** t), s["vv"] / (1 - b2 ** t)
            th = th - lr * mh / (np.sqrt(vh) + eps)
        if average == "linear":
            avg = avg + (th - avg) / t
        elif average is not None:
            avg = average * avg + (1 - average) * th
        traj.append((th.copy(), avg.copy()))
    return traj


CASES = {
    "sgd": ("sgd", {"lr": 0.05}, {}),
    "momentum": ("sgd", {"lr": 0.05, "momentum": 0.9}, {}),
    "nesterov": ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}, {}),
    "adagrad": ("adagrad", {"lr": 0.1}, {}),
    "rmsprop": ("rmsprop", {"lr": 0.01, "rho": 0.9}, {}),
    "adam": ("adam", {"lr": 0.01}, {}),
    "adam+decay": ("adam", {"lr": 0.01, "beta1": 0.5}, {"weight_decay": 0.1}),
    "sgd+l1": ("sgd", {"lr": 0.05}, {"l1": 0.01}),
    "sgd+clip": ("sgd", {"lr": 0.05}, {"clip": 0.5}),
    "inverse_power": ("sgd", {"lr": 0.05}, {"schedule": ("inverse_power", 0.5)}),
    "step": ("sgd", {"lr": 0.05}, {"schedule": ("step", 2, 0.5)}),
    "cosine": ("sgd", {"lr": 0.05}, {"schedule": ("cosine", 4)}),     # 6 steps: past T too
    "warmup": ("momentum", {"lr": 0.05}, {"schedule": ("warmup", 3)}),
    "lr_expr": ("sgd", {"lr": lambda t: 0.1 * (1 + 0.1 * t) ** -0.75}, {}),
    "polyak": ("sgd", {"lr": 0.05}, {"average": 0.9}),
    "polyak_linear": ("sgd", {"lr": 0.05}, {"average": "linear"}),
    "lr_scale": ("sgd", {"lr": 0.05}, {"lr_scale": {"theta": 0.5}}),
}

SCHED = {
    "inverse_power": lambda a: (lambda t: t ** -a[0]),
    "step": lambda a: (lambda t: a[1] ** ((t - 1) // a[0])),
    # torch's CosineAnnealingLR: ½(1 + cos(π (t − 1) / T)) for t ≤ T, then 0
    "cosine": lambda a: (lambda t: 0.5 * (1 + math.cos(math.pi * min(t - 1, a[0]) / a[0]))),
    "warmup": lambda a: (lambda t: min(1.0, t / a[0])),
}


@pytest.mark.parametrize("case", list(CASES))
def test_optimizer_matches_formula(case):
    kind, args, extra = CASES[case]
    kind = "sgd" if kind == "momentum" else kind
    model, h = quadratic_model()
    setup = TrainSetup("quad", Optimizer(kind, dict(args)), batch=4, **extra)
    c = compile(model, setup=setup)
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(4, 2, 2)).astype(np.float32) for _ in range(STEPS)]
    got = run_steps(c.training, [{"x": x} for x in xs])
    lr_fn = args["lr"] if callable(args["lr"]) else None
    sched = SCHED[extra["schedule"][0]](extra["schedule"][1:]) if "schedule" in extra else None
    ref = reference(kind, args, h, np.ones((2, 2)), xs, wd=extra.get("weight_decay", 0.0),
                    l1=extra.get("l1", 0.0), clip=extra.get("clip"), sched=sched, lr_fn=lr_fn,
                    average=extra.get("average"), scale=extra.get("lr_scale", {}).get("theta", 1.0))
    for step, (g, (th, avg)) in enumerate(zip(got, ref), start=1):
        np.testing.assert_allclose(g["theta"], th, rtol=2e-5, atol=2e-6, err_msg=f"{case} step {step}")
        if "average" in extra:
            np.testing.assert_allclose(g["theta.avg"], avg, rtol=2e-5, atol=2e-6, err_msg=f"{case} avg {step}")
        assert g["step"] == step


def test_weight_decay_skips_biases():
    """weight_decay acts on params of rank >= 2 only: a rank-1 param follows plain SGD."""
    model, h = quadratic_model(shape=(3,))
    c = compile(model, setup=TrainSetup("quad", Optimizer("sgd", {"lr": 0.1}), weight_decay=10.0))
    x = np.zeros((1, 3), np.float32)
    got = run_steps(c.training, [{"x": x}])
    ref = reference("sgd", {"lr": 0.1}, h[0] if h.ndim > 1 else h, np.ones(3), [x])
    np.testing.assert_allclose(got[0]["theta"], ref[0][0], rtol=1e-6)


def test_cosine_follows_torch():
    """cosine(4): factor 1.0, 0.854, 0.5, 0.146 at steps 1-4 (torch's CosineAnnealingLR), 0 after."""
    from dslc.evaluate import evaluate
    from dslc.ir import TensorType
    from dslc.ir.node import apply as P
    from dslc.ops.leaves import input_
    from dslc.optim import schedule_factor
    ti = input_("ti", TensorType("i64", ()))
    f = schedule_factor(("cosine", 4), P("cast", ti, dtype="f32"), ti)
    got = [float(evaluate({"f": f}, {"ti": np.asarray(t, np.int64)})["f"]) for t in range(1, 8)]
    np.testing.assert_allclose(got, [1.0, 0.853553, 0.5, 0.146447, 0.0, 0.0, 0.0], atol=1e-6)


def _two_loss_model():
    """la = ½ Σ (A − mean x)² updates A only; lb = ½ Σ (C + mean x)² updates C only."""
    from dslc.ir import Sym, TensorType, apply as P
    from dslc.ir.model import Loss, Model
    from dslc.ops.leaves import input_, param
    a = param("A", TensorType("f32", (2,)), ("constant", 1.0))
    cp = param("C", TensorType("f32", (2,)), ("constant", -1.0))
    x = input_("x", TensorType("f32", (Sym.var("B"), 2)))
    mx = P("mean", x, axes=(0,), keepdims=False)
    la = 0.5 * P("sum", (a - mx) * (a - mx), axes=(0,), keepdims=False)
    lb = 0.5 * P("sum", (cp + mx) * (cp + mx), axes=(0,), keepdims=False)
    return Model("two", inputs={"x": x}, params={"A": a, "C": cp},
                 losses={"la": Loss("la", la, wrt=["A"]), "lb": Loss("lb", lb, wrt=["C"])})


def test_adam_counts_each_losses_own_updates():
    """steps = [la, la, lb]: each param's bias correction uses the number of updates
    its loss has made (one torch.optim.Adam per param group), not the global step."""
    import onnxruntime as ort
    from onnx import numpy_helper
    c = compile(_two_loss_model(), setup=TrainSetup("two", Optimizer("adam", {"lr": 0.1}),
                                                    steps=["la", "la", "lb"]))
    man = c.manifest
    assert {e["input"]: e["kind"] for e in man["carried"]}["step.lb"] == "loss_step"
    sess = ort.InferenceSession(c.training.SerializeToString(), providers=["CPUExecutionProvider"])
    car = {t.name: numpy_helper.to_array(t) for t in c.training.graph.initializer
           if t.name in {e["input"] for e in man["carried"]}}
    outs = [e["output"] for e in man["carried"]]
    rng = np.random.default_rng(0)
    ref = {"A": [np.ones(2), np.zeros(2), np.zeros(2), 0], "C": [-np.ones(2), np.zeros(2), np.zeros(2), 0]}
    for k in range(9):
        loss = man["steps"][k % 3]
        x = rng.normal(size=(4, 2)).astype(np.float32)
        res = dict(zip(outs, sess.run(outs, {"x": x, "loss_select": np.asarray(man["select"]["values"][loss]), **car})))
        car = {e["input"]: res[e["output"]] for e in man["carried"]}
        name, sign = ("A", -1.0) if loss == "la" else ("C", 1.0)
        th, m, v, t = ref[name]
        g, t = th + sign * x.mean(0), t + 1
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        th = th - 0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        ref[name] = [th, m, v, t]
        for p in ("A", "C"):
            np.testing.assert_allclose(car[p], ref[p][0], rtol=1e-5, atol=1e-6, err_msg=f"{p} run {k + 1}")
    assert int(car["step"]) == 9 and int(car["step.la"]) == 6 and int(car["step.lb"]) == 3


def test_const_in_lr_expression_compiles():
    """`const BASE` inside an lr expression of t checks and compiles (issue 12 item 7):
    the expression is elaborated once to IR over t, compile substitutes the graph's t."""
    import dslc
    spec = """\
const BASE = 0.1
model m {
    input x: f32[B, 2]
    param w: [2] ~ zeros
    loss = sum(w * mean(x, axis = 0))
}
train m {
    optimizer = sgd(lr = BASE * (1 + t) ** -0.5)
}
"""
    c = dslc.compile(dslc.parse(spec))
    got = run_steps(c.training, [{"x": np.ones((3, 2), np.float32)}] * 4)   # gradient of w: 1
    want = -np.cumsum([0.1 * (1 + t) ** -0.5 for t in range(1, 5)])
    np.testing.assert_allclose([h["w"][0] for h in got], want, rtol=1e-6)


def _three_param_model():
    """loss = Σ_p ½ Σ h_p (θ_p − mean x_p)²: A [2, 2] and b [3] share a pack, c [2] has its own lr scale."""
    from dslc.ir import Sym, TensorType, apply as P
    from dslc.ir.model import Loss, Model
    from dslc.ir.node import const
    from dslc.ops.leaves import input_, param
    B = Sym.var("B")
    shapes = {"A": (2, 2), "b": (3,), "c": (2,)}
    curv = {k: np.linspace(1.0, 4.0, int(np.prod(s))).reshape(s).astype(np.float32) for k, s in shapes.items()}
    params = {k: param(k, TensorType("f32", s), ("constant", 1.0)) for k, s in shapes.items()}
    xs = {k: input_(f"x{k}", TensorType("f32", (B,) + s)) for k, s in shapes.items()}
    loss = None
    for k, s in shapes.items():
        d = params[k] - P("mean", xs[k], axes=(0,), keepdims=False)
        term = 0.5 * P("sum", const(curv[k]) * d * d, axes=tuple(range(len(s))), keepdims=False)
        loss = term if loss is None else loss + term
    return Model("three", inputs={f"x{k}": v for k, v in xs.items()}, params=params,
                 losses={"loss": Loss("loss", loss)}), shapes, curv


@pytest.mark.parametrize("case", ["adam", "momentum", "nesterov", "adagrad", "rmsprop", "adam+decay"])
def test_packed_slots_follow_the_formulas(case):
    """Small params share one flat vector per slot (`opt.m`, params listed in order); a
    param with another lr scale has its own (`c.m`, its shape); every param still follows
    its formula step by step, weight decay on the rank-2 one only."""
    kind, args, extra = CASES[case]
    kind = "sgd" if kind == "momentum" else kind
    if case in ("momentum", "nesterov"):
        args = {"lr": 0.05, "momentum": 0.9, "nesterov": case == "nesterov"}
    model, shapes, curv = _three_param_model()
    setup = TrainSetup("three", Optimizer(kind, dict(args)), batch=4, lr_scale={"c": 0.5}, **extra)
    c = compile(model, setup=setup)
    slots = {e["input"]: e for e in c.manifest["carried"] if e["kind"] == "slot"}
    first = next(iter(slots.values()))["input"].split(".")[-1]
    assert slots[f"opt.{first}"]["params"] == ["A", "b"] and slots[f"opt.{first}"]["shape"] == [7]
    assert slots[f"c.{first}"]["params"] == ["c"] and slots[f"c.{first}"]["shape"] == [2]
    rng = np.random.default_rng(3)
    feeds = [{f"x{k}": rng.normal(size=(4,) + s).astype(np.float32) for k, s in shapes.items()} for _ in range(STEPS)]
    got = run_steps(c.training, feeds)
    for k, s in shapes.items():
        ref = reference(kind, args, curv[k], np.ones(s), [f[f"x{k}"] for f in feeds],
                        wd=extra.get("weight_decay", 0.0) if len(s) >= 2 else 0.0, scale=0.5 if k == "c" else 1.0)
        for step, (g, (th, _)) in enumerate(zip(got, ref), start=1):
            np.testing.assert_allclose(g[k], th, rtol=2e-5, atol=2e-6, err_msg=f"{case} {k} step {step}")


def test_packs_split_by_loss_and_skip_frozen_params():
    """Params updated by different losses are packed apart (each loss updates whole packs),
    and a param no loss updates has no slots."""
    from dslc.ir import Sym, TensorType, apply as P
    from dslc.ir.model import Loss, Model
    from dslc.ops.leaves import input_, param
    x = input_("x", TensorType("f32", (Sym.var("B"), 2)))
    ps = {k: param(k, TensorType("f32", (2,)), ("constant", 1.0)) for k in ("A", "A2", "C", "C2", "F")}
    mx = P("mean", x, axes=(0,), keepdims=False)

    def sq(v):
        return P("sum", v * v, axes=(0,), keepdims=False)
    la = sq(ps["A"] - mx) + sq(ps["A2"] + mx) + sq(ps["F"])
    lb = sq(ps["C"] - mx) + sq(ps["C2"] * mx)
    model = Model("four", inputs={"x": x}, params=ps,
                  losses={"la": Loss("la", la, wrt=["A", "A2"]), "lb": Loss("lb", lb, wrt=["C", "C2"])})
    c = compile(model, setup=TrainSetup("four", Optimizer("sgd", {"lr": 0.1, "momentum": 0.9}), steps=["la", "lb"]))
    slots = {e["input"]: e["params"] for e in c.manifest["carried"] if e["kind"] == "slot"}
    assert slots == {"opt.momentum": ["A", "A2"], "opt.1.momentum": ["C", "C2"]}
