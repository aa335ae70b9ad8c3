"""Backprop through time: the gradient rule of the `scan` primitive (ops/scan.py).

With cotangents  λ_T = dL/dcarry_T  and  ȳ_t = dL/dy_t:

    for t = T..1:   λ_{t-1}, x̄_t, θ̄_t = vjp of f at (carry_{t-1}, x_t; θ) with seeds (λ_t, ȳ_t)
    dL/dinit = λ_0,   dL/dx_t = x̄_t,   dL/dθ = Σ_t θ̄_t   (θ is shared across time)

That loop is itself a scan, run in reverse: carries (λ, Σθ̄), sequences
(carry_{t-1}, x_t, ȳ_t), captured θ. Its body is `autodiff.vjp` applied to the
step's own body, recomputing the step's forward from the stacked carries
(carry_{t-1} = [init, carry_1 .. carry_{T-1}]), so every primitive's rule is
reused and the backward scan can be differentiated again.
"""
from __future__ import annotations

from .autodiff import vjp, zeros_like
from .ir import dims as D
from .ir.node import Node, apply as P
from .ir.types import is_float
from .ops.scan import SCAN, Body, new_label, placeholder, split
from .ops.shape import slice_axis


def scan_vjp(g, out, *ins, body, index, reverse):
    nc, nx, _ = body.counts
    inits, seqs, caps = split(body, ins)
    T = seqs[0].shape[0]
    # the carry each step read: [init, c_1 .. c_{T-1}] forward in time; [c_2 .. c_T, init] in reverse
    prev = []
    for init, st in zip(inits, _stacked_carries(body, ins, reverse)):
        first = P("unsqueeze", init, axes=(0,))
        prev.append(P("concat", first, slice_axis(st, 0, 0, D.sub(T, 1)), axis=0) if not reverse
                    else P("concat", slice_axis(st, 0, 1, T), first, axis=0))
    seeded = index - nc if index >= nc else None
    bw, fc, fx, fk = _backward(body, seeded)
    lam0 = [g if j == index else zeros_like(inits[j]) for j in fc]       # λ_T = dL/dcarry_T
    acc0 = [zeros_like(caps[k]) for k in fk]                            # Σθ̄ starts at 0
    bins = (*lam0, *acc0, *prev, *seqs, *([g] if seeded is not None else []), *caps)

    def part(i):
        return P("scan", *bins, body=bw, index=i, reverse=not reverse)

    grads: list = [None] * len(ins)
    for k, j in enumerate(fc):
        grads[j] = part(k)                                              # dL/dinit = λ_0
    for k, c in enumerate(fk):
        grads[nc + nx + c] = part(len(fc) + k)                          # dL/dθ = Σ_t θ̄_t
    for k, i in enumerate(fx):
        grads[nc + i] = part(len(fc) + len(fk) + k)                     # dL/dx_t, stacked
    return tuple(grads)


def _stacked_carries(body: Body, ins, reverse) -> list[Node]:
    """[c_1 .. c_T] for each carry: a ys output when the body already stacks it
    (the public scan does), else an output of the same body with the carries added."""
    nc = len(body.carries)
    idx = [next((m for m, y in enumerate(body.ys) if y is c), None) for c in body.new_carries]
    if all(m is not None for m in idx):
        return [P("scan", *ins, body=body, index=nc + m, reverse=reverse) for m in idx]
    aug = body.derived("stacked", lambda: Body(body.carries, body.xs, body.consts, body.new_carries,
                                               body.ys + body.new_carries, body.label + "+carries"))
    return [P("scan", *ins, body=aug, index=nc + len(body.ys) + j, reverse=reverse) for j in range(nc)]


def _backward(body: Body, seeded):
    """The backward step's body (made once per body and seeded output):
    carries (λ for float carries, Σθ̄ for float captured values); sequences
    (carry_{t-1}, x_t, and ȳ_t for the seeded output); captured θ;
    per-step outputs x̄_t for float sequences."""
    return body.derived(("bwd", seeded), lambda: _make_backward(body, seeded))


def _make_backward(body: Body, seeded):
    lab = new_label()
    fc = [j for j, c in enumerate(body.carries) if is_float(c.dtype)]
    fx = [i for i, x in enumerate(body.xs) if is_float(x.dtype)]
    fk = [k for k, c in enumerate(body.consts) if is_float(c.dtype)]
    lam = [placeholder(lab, "dcarry", j, body.carries[j].type) for j in fc]
    acc = [placeholder(lab, "dcap", k, body.consts[k].type) for k in fk]
    dy = [placeholder(lab, "dy", 0, body.ys[seeded].type)] if seeded is not None else []
    outs = [body.new_carries[j] for j in fc] + ([body.ys[seeded]] if seeded is not None else [])
    wrt = [body.carries[j] for j in fc] + [body.xs[i] for i in fx] + [body.consts[k] for k in fk]
    # recompute the step from (carry_{t-1}, x_t; θ) — the forward body's own nodes — and pull back
    gs = vjp(outs, lam + dy, wrt)
    g_c, g_x, g_k = gs[:len(fc)], gs[len(fc):len(fc) + len(fx)], gs[len(fc) + len(fx):]
    new_lam = [g if g is not None else zeros_like(body.carries[j]) for g, j in zip(g_c, fc)]   # λ_{t-1}
    new_acc = [a + g if g is not None else a for a, g in zip(acc, g_k)]                       # Σθ̄ += θ̄_t
    dxs = [g if g is not None else zeros_like(body.xs[i]) for g, i in zip(g_x, fx)]           # x̄_t
    bw = Body(lam + acc, body.carries + body.xs + dy, body.consts, new_lam + new_acc, dxs, lab)
    return bw, fc, fx, fk


SCAN.vjp = scan_vjp
