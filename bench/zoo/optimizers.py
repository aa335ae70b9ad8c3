"""Zoo entries for the lecture notes' optimisation chapter (§6): the six
optimizers on the ill-conditioned quadratic and a small network (one plot,
bench/out/optimizers.png), Polyak averaging on a noisy convex problem, and
weight decay on a quadratic against its closed form (H + μI)⁻¹Hθ*."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from bench.zoo import Entry, Result

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
OUT = ROOT / "bench" / "out"

# name -> (dslc optimizer, its arguments other than lr); momentum α = 0.9 and
# Adam's (0.9, 0.999, 1e-8) as in the notes.
OPTIMIZERS = {
    "SGD": ("sgd", {}),
    "momentum": ("sgd", {"momentum": 0.9}),
    "Nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
    "AdaGrad": ("adagrad", {"eps": 1e-10}),
    "RMSprop": ("rmsprop", {"rho": 0.9, "eps": 1e-8}),
    "Adam": ("adam", {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
}
# learning rates tried for each (the best final loss is kept): half decades
LRS = [1e-3, 3e-3, 1e-2, 2e-2, 3e-2, 0.1, 0.3, 1.0]
QUAD_STEPS = 150
MLP_STEPS = 400
H_DIAG = np.array([1.0, 50.0])          # optimizers.dl: H = diag(H1, H2)


def _quiet(_msg: str) -> None:
    pass


def _load(spec: str):
    import dslc
    return dslc.load(str(SPECS / spec))


def compile_with(prog, model: str, kind: str, args: dict):
    """Compile `model` with its train block's optimizer replaced by kind(lr, **args)."""
    import dslc
    from dslc.ir.model import Optimizer
    setup = prog.trains[model]
    lr = setup.optimizer.args.get("lr", 0.01)
    setup = dataclasses.replace(setup, optimizer=Optimizer(kind, {"lr": lr, **args}, setup.optimizer.loc))
    return dslc.compile(prog, model, setup=setup)


def run_steps(compiled, lr: float, batches) -> list[float]:
    """Per-step training losses (inf from the first non-finite one on)."""
    import dslc
    from dslc_runtime import TrainingDiverged
    tr = dslc.Trainer(compiled, progress=False, log=_quiet, hyper={"lr": lr})
    losses = []
    for b in batches:
        try:
            losses.append(tr.train_step(b)["loss"])
        except TrainingDiverged:
            break
        if not math.isfinite(losses[-1]) or losses[-1] > 1e6:
            break
    losses += [math.inf] * (len(batches) - len(losses))
    return losses, tr


def _digits_batches(steps: int, batch: int = 32, seed: int = 0):
    import dslc_runtime
    d = np.load(Path(dslc_runtime.__file__).parent / "datasets" / "digits.npz")
    n = int(0.8 * len(d["x"]))
    x, y = d["x"][:n], d["y"][:n]
    rng = np.random.default_rng(seed)
    out, order = [], np.array([], dtype=int)
    while len(out) < steps:
        if len(order) < batch:
            order = np.concatenate([order, rng.permutation(n)])
        idx, order = order[:batch], order[batch:]
        out.append({"x": x[idx], "y": y[idx]})
    return out, {"x": x, "y": y}


def _best(curves: dict[float, list[float]], final) -> tuple[float, list[float]]:
    lr = min(curves, key=lambda k: (final(k), k))
    return lr, curves[lr]


def run_optimizers() -> Result:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quad_prog, net_prog = _load("optimizers.dl"), _load("optimizers.dl")
    t_rows = np.load(SPECS / "data" / "target.npz")["t"]
    theta_star = t_rows[0].astype(np.float64)
    quad_batches = [{"t": t_rows}] * QUAD_STEPS
    net_batches, train_set = _digits_batches(MLP_STEPS)

    results = {}
    for name, (kind, args) in OPTIMIZERS.items():
        cq = compile_with(quad_prog, "quad", kind, args)
        cn = compile_with(net_prog, "mlp", kind, args)
        quad, net, net_final = {}, {}, {}
        for lr in LRS:
            quad[lr], _ = run_steps(cq, lr, quad_batches)
            net[lr], tr = run_steps(cn, lr, net_batches)
            net_final[lr] = (tr.evaluate(train_set)["loss"] if math.isfinite(net[lr][-1]) else math.inf)
        # the loss after the last step: one more forward pass = the quad's closed form at θ_T
        qlr, qcurve = _best(quad, lambda k: quad[k][-1])
        nlr, ncurve = _best(net, lambda k: net_final[k])
        results[name] = {"quad_lr": qlr, "quad": qcurve, "net_lr": nlr, "net": ncurve,
                         "net_final": net_final[nlr]}

    # the spec's own setting: plain gradient descent at η = 1/L against the notes' rate
    gd_lr = float(quad_prog.trains["quad"].optimizer.args["lr"])                  # the spec's 1 / L
    gd, _ = run_steps(compile_with(quad_prog, "quad", "sgd", {}), gd_lr, quad_batches)
    r0 = 0.5 * float(np.sum(H_DIAG * theta_star ** 2))           # θ(0) = 0, R* = 0
    assert abs(gd[0] - r0) <= 1e-4 * r0, f"R(θ(0)) = {gd[0]}, expected {r0}: is H in optimizers.dl still {H_DIAG}?"
    kappa = H_DIAG.max() / H_DIAG.min()
    bound = (1.0 - 1.0 / kappa) ** (QUAD_STEPS - 1) * r0            # loss at step index t = QUAD_STEPS - 1
    gd_ok = gd[-1] <= bound

    OUT.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, r in results.items():
        ax1.semilogy(np.maximum(r["quad"], 1e-12), label=f"{name} (lr {r['quad_lr']:g})")
        smooth = np.convolve(r["net"], np.ones(20) / 20, mode="valid")
        ax2.plot(smooth, label=f"{name} (lr {r['net_lr']:g})")
    ax1.semilogy(r0 * (1.0 - 1.0 / kappa) ** np.arange(QUAD_STEPS),
                 "k--", lw=1, label="notes' GD bound (1 - μ/L)^t R(0)")
    ax1.set(title=f"ill-conditioned quadratic, H = diag(1, 50), κ = {kappa:g}", xlabel="step", ylabel="R(θ)")
    ax2.set(title="MLP 64-32-10 on digits, batch 32 (20-step running mean)", xlabel="step", ylabel="training loss")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "optimizers.png", dpi=110)
    plt.close(fig)

    q = {n: r["quad"][-1] for n, r in results.items()}
    accel = q["momentum"] < q["SGD"] and q["Nesterov"] < q["SGD"]
    figure = "final loss quad / MLP: " + "; ".join(
        f"{n} {r['quad'][-1]:.1e} / {r['net_final']:.3f}" for n, r in results.items())
    note = (f"best lr of {LRS} for each (quad: " + ", ".join(f"{n} {r['quad_lr']:g}" for n, r in results.items())
            + "; MLP: " + ", ".join(f"{n} {r['net_lr']:g}" for n, r in results.items())
            + f"); quad {QUAD_STEPS} steps, MLP {MLP_STEPS} steps of batch 32, MLP loss on the whole training set; "
            f"GD η = {gd_lr:g}: {gd[-1]:.2e} vs bound {bound:.2e}; plot {OUT / 'optimizers.png'}")
    return Result(figure, "notes: GD within (1-μ/L)^t R(0); momentum/Nesterov beat SGD on κ = 50",
                  gd_ok and accel, note)


POLYAK_SEEDS = range(8)


def infer_estimate(trainer) -> np.ndarray:
    """The trained model's output `estimate` (θ), from its exported inference graph in onnxruntime."""
    import onnxruntime as ort
    sess = ort.InferenceSession(trainer.inference_model().SerializeToString(),
                                providers=["CPUExecutionProvider"])
    return sess.run(["estimate"], {})[0]


def _polyak_theory(h, lr: float, sigma: float, alpha: float) -> tuple[float, float]:
    """Stationary RMS distance to θ* of constant-step SGD on 1/2 Σ h_i (θ_i − θ*_i − σε_i)²
    and of its running average θ̄ ← αθ̄ + (1 − α)θ: per coordinate an AR(1) process
    e ← a e + s ε with a = 1 − ηh, s = ηhσ, of variance v = s² / (1 − a²); its
    exponential average has variance v (1 − α)(1 + αa) / ((1 + α)(1 − αa))."""
    a = 1.0 - lr * np.asarray(h, dtype=np.float64)
    v = (lr * np.asarray(h) * sigma) ** 2 / (1.0 - a ** 2)
    v_avg = v * (1 - alpha) * (1 + alpha * a) / ((1 + alpha) * (1 - alpha * a))
    return float(np.sqrt(v.sum())), float(np.sqrt(v_avg.sum()))


def run_polyak() -> Result:
    """One run is one draw of the noise, so the errors are RMS over several seeds
    (the train block's seed drives the in-graph normal() draws)."""
    import dslc
    prog = _load("polyak.dl")
    setup = prog.trains["polyak"]
    theta_star = np.load(SPECS / "data" / "target.npz")["t"][0].astype(np.float64)
    last, avg = [], []
    for seed in POLYAK_SEEDS:
        c = dslc.compile(prog, "polyak", setup=dataclasses.replace(setup, seed=seed))
        tr = dslc.Trainer(c, progress=False, log=_quiet)
        tr.fit()
        last.append(np.sum((tr.params()["theta"].ravel() - theta_star) ** 2))
        # the exported inference graph carries the averaged θ (its output `estimate`)
        exported = infer_estimate(tr)
        assert np.allclose(exported, tr.params(averaged=True)["theta"]), "export lost the Polyak average"
        avg.append(np.sum((exported.ravel() - theta_star) ** 2))
    last_rms, avg_rms = float(np.sqrt(np.mean(last))), float(np.sqrt(np.mean(avg)))
    lr = float(setup.optimizer.args["lr"])
    th_last, th_avg = _polyak_theory(H_DIAG, lr, 1.0, float(setup.average))   # SIGMA = 1 in polyak.dl
    wins = int(np.sum(np.array(avg) < np.array(last)))
    return Result(f"RMS ‖θ − θ*‖ over {len(last)} seeds: averaged {avg_rms:.3f}, last iterate {last_rms:.3f}",
                  f"notes: average beats last iterate; stationary theory {th_avg:.3f} vs {th_last:.3f}",
                  avg_rms < last_rms,
                  f"{tr.step} SGD steps (η = {lr:g}, α = {setup.average:g}) per seed; "
                  f"averaged closer in {wins}/{len(last)} seeds")


def run_weight_decay() -> Result:
    import dslc
    prog = _load("weight_decay.dl")
    setup = prog.trains["weight_decay"]
    tr = dslc.Trainer(dslc.compile(prog, "weight_decay"), progress=False, log=_quiet)
    tr.fit()
    d = np.load(SPECS / "data" / "quad_wd.npz")
    h, theta_star, mu = d["h"][0].astype(np.float64), d["t"][0].astype(np.float64), float(setup.weight_decay)
    closed = np.linalg.solve(h + mu * np.eye(len(theta_star)), h @ theta_star)
    theta = infer_estimate(tr).ravel().astype(np.float64)
    err = float(np.max(np.abs(theta - closed)))
    lam, q = np.linalg.eigh(h)
    shrink = (q.T @ theta) / (q.T @ theta_star)           # per eigen-direction: λ / (λ + μ)
    return Result(f"θ = {np.array2string(theta, precision=4)}, max diff {err:.1e}",
                  f"(H + μI)⁻¹Hθ* = {np.array2string(closed, precision=4)}", err < 1e-4,
                  "shrinkage along eigenvectors " + ", ".join(
                      f"λ={l:g}: {s:.3f} (λ/(λ+μ) = {l / (l + mu):.3f})" for l, s in zip(lam, shrink)))


ENTRIES = [
    Entry("optimizers", "specs/optimizers.dl",
          "SGD, momentum, Nesterov, AdaGrad, RMSprop, Adam on an ill-conditioned quadratic and a small net",
          run_optimizers),
    Entry("polyak", "specs/polyak.dl",
          "Polyak averaging: on a noisy convex problem the averaged iterate beats the last one", run_polyak),
    Entry("weight_decay", "specs/weight_decay.dl",
          "weight decay on a quadratic converges to (H + μI)⁻¹Hθ*", run_weight_decay),
]
