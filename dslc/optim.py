"""Optimizers as IR (DESIGN.md principle 7), in torch.optim's standard form.

Each optimizer is a table row: its arguments with defaults, the slots it
keeps per param, and a step function that, given a gradient g, its slots,
the learning rate η and the step count t (1 at the first step), builds the
step Δ and the new slots as IR; the param moves θ ← θ − Δ. The rules are
elementwise, so the compiler runs one over all params at once: g, the slots
and Δ are then flat vectors (one per group of params, step.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .ir.node import Node, apply as P

REQUIRED = object()      # an argument without a default (optimizers here, built-ins in the front end)


def sqrt(x):
    return P("sqrt", x)


def sgd(g, s, lr, t, momentum, nesterov):
    # b ← μ b + g ;  g ← g + μ b (Nesterov) or b ;  Δ = η g
    if momentum == 0:
        return lr * g, {}
    b = momentum * s["momentum"] + g
    step = g + momentum * b if nesterov else b
    return lr * step, {"momentum": b}


def adagrad(g, s, lr, t, eps):
    # r ← r + g² ;  Δ = η g / (√r + ε)
    r = s["sum_sq"] + g * g
    return lr * g / (sqrt(r) + eps), {"sum_sq": r}


def rmsprop(g, s, lr, t, rho, eps):
    # v ← ρ v + (1 − ρ) g² ;  Δ = η g / (√v + ε)
    v = rho * s["sq_avg"] + (1.0 - rho) * g * g
    return lr * g / (sqrt(v) + eps), {"sq_avg": v}


def adam(g, s, lr, t, beta1, beta2, eps):
    # m ← β1 m + (1 − β1) g ;  v ← β2 v + (1 − β2) g²
    # m̂ = m / (1 − β1^t) ;  v̂ = v / (1 − β2^t) ;  Δ = η m̂ / (√v̂ + ε)
    # with the bias corrections and η folded into per-step scalars (shared by all params):
    #   Δ = a_t m / (√v + ε_t),  a_t = η √(1 − β2^t) / (1 − β1^t),  ε_t = ε √(1 − β2^t)
    m = beta1 * s["m"] + (1.0 - beta1) * g
    v = beta2 * s["v"] + (1.0 - beta2) * (g * g)
    c2 = sqrt(1.0 - beta2 ** t)
    a_t = lr * c2 / (1.0 - beta1 ** t)
    return (a_t * m) / (sqrt(v) + eps * c2), {"m": m, "v": v}


@dataclass
class OptimizerRule:
    step: Callable
    defaults: dict                      # argument -> default (REQUIRED: must be given)
    slots: Callable[[dict], list[str]]  # which slots, given the arguments
    counts_steps: bool = False          # reads t (bias correction): each loss then counts its own updates


OPTIMIZERS: dict[str, OptimizerRule] = {
    "sgd": OptimizerRule(sgd, {"lr": REQUIRED, "momentum": 0.0, "nesterov": False},
                         lambda a: ["momentum"] if a["momentum"] else []),
    "adagrad": OptimizerRule(adagrad, {"lr": 0.01, "eps": 1e-10}, lambda a: ["sum_sq"]),
    "rmsprop": OptimizerRule(rmsprop, {"lr": 0.01, "rho": 0.99, "eps": 1e-8}, lambda a: ["sq_avg"]),
    "adam": OptimizerRule(adam, {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                          lambda a: ["m", "v"], counts_steps=True),
}


def resolve_args(kind: str, args: dict) -> dict:
    rule = OPTIMIZERS[kind]
    out = dict(rule.defaults)
    out.update(args)
    missing = [k for k, v in out.items() if v is REQUIRED]
    assert not missing, f"{kind}: missing {missing}"
    return out


# -- learning-rate schedules: a factor on lr, as IR of t (f32, 1 at the first step)
def schedule_factor(schedule, t: Node, ti: Node) -> Node | float:
    if schedule is None:
        return 1.0
    if callable(schedule):
        return schedule(t)
    kind, *a = schedule
    if kind == "constant":
        return 1.0
    if kind == "inverse_power":            # η(t) = t^−α
        return t ** (-float(a[0]))
    if kind == "step":                     # factor^⌊(t − 1) / every⌋
        k = P("cast", (ti - 1) / int(a[0]), dtype="f32")
        return float(a[1]) ** k
    if kind == "cosine":                   # ½ (1 + cos(π min(t − 1, T) / T)): torch's CosineAnnealingLR, 0 after T
        total = float(a[0])
        return 0.5 * (1.0 + P("cos", P("minimum", t - 1.0, t * 0.0 + total) * (math.pi / total)))
    if kind == "warmup":                   # min(1, t / steps)
        return P("minimum", t / float(a[0]), t * 0.0 + 1.0)
    raise AssertionError(f"unknown schedule {kind}")
