"""Backprop through time: the gradient rule of the `scan` primitive (ops/scan.py).

With cotangents  λ_T = dL/dcarry_T  and  ȳ_t = dL/dy_t:

    for t = T..1:   λ_{t-1}, x̄_t, θ̄_t = vjp of f at (carry_{t-1}, x_t; θ) with seeds (λ_t, ȳ_t)
    dL/dinit = λ_0,   dL/dx_t = x̄_t,   dL/dθ = Σ_t θ̄_t   (θ is shared across time)

That loop is itself a scan, run in reverse. Its body is `autodiff.vjp` applied
to the step's own body, so every primitive's rule is reused and the backward
scan can be differentiated again. Three things keep it cheap:

  * residuals: the primal values the pullback reads (gate activations, tanh c_t, ...)
    are stacked by the forward scan as extra outputs (the same Scan: its body is
    the step with those outputs added, `Body.base` links the two, passes/scans.py
    merges them) and read back as sequences, instead of recomputing the step;
    carry_{t-1} is the stacked carries shifted by one, x_t the forward's own sequence;
  * weight gradients once, after the loop: a per-step term θ̄_t = u_tᵀ v_t becomes
    Σ_t u_tᵀ v_t = Uᵀ V over the stacked [T·B, n] and [T·B, k] (one GEMM), and a
    term linear in one per-step value (a bias: Σ_b v_t) becomes L(Σ_t v_t);
    other terms are accumulated in a carry Σθ̄;
  * what nobody reads (dL/dx_t for data) is pruned afterwards (passes/scans.py).
"""
from __future__ import annotations

from .autodiff import vjp, zeros_like
from .ir import dims as D
from .ir.graph import Graph, substitute_roots
from .ir.node import Node, apply as P
from .ir.types import is_float
from .ops.scan import SCAN, Body, new_label, placeholder, split
from .ops.shape import slice_axis

_LINEAR = ("reshape", "sum")        # per-step maps L with Σ_t L(v_t) = L(Σ_t v_t)


def scan_vjp(g, out, *ins, body, index, reverse):
    nc, nx, _ = body.counts
    inits, seqs, caps = split(body, ins)
    T = seqs[0].shape[0]
    aug, res = _residuals(body)
    stacked = [P("scan", *ins, body=aug, index=nc + m, reverse=reverse) for m in range(len(aug.ys))]
    # the carry each step read: [init, c_1 .. c_{T-1}] forward in time; [c_2 .. c_T, init] in reverse
    prev = []
    for init, st in zip(inits, _stacked_carries(body, aug, stacked)):
        first = P("unsqueeze", init, axes=(0,))
        prev.append(P("concat", first, slice_axis(st, 0, 0, D.sub(T, 1)), axis=0) if not reverse
                    else P("concat", slice_axis(st, 0, 1, T), first, axis=0))
    seeded = index - nc if index >= nc else None
    bw, fc, fx, terms = _backward(body, seeded)
    lam0 = [g if j == index else zeros_like(inits[j]) for j in fc]       # λ_T = dL/dcarry_T
    acc0 = [zeros_like(caps[k]) for k, kind, *_ in _flat(terms) if kind == "acc"]   # Σθ̄ starts at 0
    seq_in = (*prev, *seqs, *[stacked[m] for m in res], *([g] if seeded is not None else []))
    bins = (*lam0, *acc0, *seq_in, *caps)

    def part(i):
        return P("scan", *bins, body=bw, index=i, reverse=not reverse)

    def ref(r):                              # a stacked per-step value: a bw output or a bw sequence
        return part(len(bw.carries) + r[1]) if r[0] == "y" else seq_in[r[1]]

    grads: list = [None] * len(ins)
    for k, j in enumerate(fc):
        grads[j] = part(k)                                              # dL/dinit = λ_0
    for k, i in enumerate(fx):
        grads[nc + i] = part(len(bw.carries) + k)                       # dL/dx_t, stacked
    for c, ts in terms.items():                                         # dL/dθ = Σ_t θ̄_t
        parts = [_outer(t, part, ref) for t in ts]
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        grads[nc + nx + c] = total
    return tuple(grads)


def _outer(term, part, ref) -> Node:
    kind, *a = term
    if kind == "acc":                        # the carried sum
        return part(a[0])
    if kind == "mm":                         # Σ_t u_tᵀ v_t = Uᵀ V over [T·B, n] x [T·B, k]
        U, V = ref(a[0]), ref(a[1])
        flat = [P("reshape", S, shape=(D.mul(S.shape[0], S.shape[1]), S.shape[2])) for S in (U, V)]
        return P("transpose", flat[0], perm=(1, 0)) @ flat[1]
    v = P("sum", ref(a[0]), axes=(0,), keepdims=False)                  # Σ_t L(v_t) = L(Σ_t v_t)
    for op, attrs in reversed(a[1]):
        v = P(op, v, **attrs)
    return v


def _flat(terms: dict):
    return [(k, *t) for k, ts in terms.items() for t in ts]


def _stacked_carries(body: Body, aug: Body, stacked: list[Node]) -> list[Node]:
    """[c_1 .. c_T] for each carry, read off the residual-augmented forward scan."""
    return [stacked[next(m for m, y in enumerate(aug.ys) if y is c)] for c in body.new_carries]


# -- residuals ----------------------------------------------------------------------
def _residuals(body: Body):
    """(aug, res): the step with its residuals (and carries) stacked as outputs, and
    the indices in aug.ys of the residuals. Residuals are the step's inner values
    that depend on the carries or x_t and that the pullback of every output reads;
    values of the captured θ alone are recomputed (hoisted out of the loop later)."""
    def make():
        fc = [c for c in body.new_carries if is_float(c.dtype)]
        fy = [y for y in body.ys if is_float(y.dtype)]
        seeds = [placeholder("res", "seed", i, o.type) for i, o in enumerate(fc + fy)]
        wrt = [p for p in body.carries + body.xs + body.consts if is_float(p.dtype)]
        gs = [g for g in vjp(fc + fy, seeds, wrt) if g is not None]
        read = _primal_reads(gs, body)
        extra = [n for n in read + body.new_carries if not any(n is y for y in body.ys)]
        extra = list({n.id: n for n in extra}.values())
        aug = body if not extra else Body(body.carries, body.xs, body.consts, body.new_carries,
                                          body.ys + extra, body.label + "+res")
        if aug is not body:
            aug.base = body                  # same loop, more outputs: passes/scans.py merges the two
        return aug, [next(m for m, y in enumerate(aug.ys) if y is n) for n in read]
    return body.derived("res", make)


def _variant(order: list[Node], sources: set[int]) -> set[int]:
    """Ids of the nodes that depend on a source (the per-step placeholders)."""
    out = set(sources)
    for n in order:
        if any(i.id in out for i in n.inputs):
            out.add(n.id)
    return out


def _primal_reads(roots: list[Node], body: Body) -> list[Node]:
    """The step's per-step inner values that the graph of `roots` reads directly."""
    order = body.order()
    mine = {n.id for n in order}
    per_step = _variant(order, {p.id for p in body.carries + body.xs})
    ph = {p.id for p in body.placeholders()}
    out, seen, stack = {}, set(), list(roots)
    while stack:
        n = stack.pop()
        if n.id in seen:
            continue
        seen.add(n.id)
        if n.id in mine:
            if n.id in per_step and n.id not in ph:
                out[n.id] = n
            continue
        stack.extend(n.inputs)
    return [out[i] for i in sorted(out)]


# -- the backward body -----------------------------------------------------------------
def _backward(body: Body, seeded):
    """The backward step's body (made once per body and seeded output):
    carries λ for float carries, then Σθ̄ for the weight-gradient terms kept in
    the loop; sequences carry_{t-1}, x_t, the residuals, and ȳ_t for the seeded
    output; captured θ; per-step outputs x̄_t for float sequences, then the
    per-step values of the terms reduced after the loop."""
    return body.derived(("bwd", seeded), lambda: _make_backward(body, seeded))


def _make_backward(body: Body, seeded):
    lab = new_label()
    aug, res = _residuals(body)
    fc = [j for j, c in enumerate(body.carries) if is_float(c.dtype)]
    fx = [i for i, x in enumerate(body.xs) if is_float(x.dtype)]
    fk = [k for k, c in enumerate(body.consts) if is_float(c.dtype)]
    lam = [placeholder(lab, "dcarry", j, body.carries[j].type) for j in fc]
    dy = [placeholder(lab, "dy", 0, body.ys[seeded].type)] if seeded is not None else []
    rph = [placeholder(lab, "res", r, aug.ys[m].type) for r, m in enumerate(res)]
    outs = [body.new_carries[j] for j in fc] + ([body.ys[seeded]] if seeded is not None else [])
    wrt = [body.carries[j] for j in fc] + [body.xs[i] for i in fx] + [body.consts[k] for k in fk]
    gs = vjp(outs, lam + dy, wrt)
    # the pullback reads the stacked residuals, not the step's recomputed values
    gs = _substitute(gs, {aug.ys[m].id: p for m, p in zip(res, rph)})
    g_c, g_x, g_k = gs[:len(fc)], gs[len(fc):len(fc) + len(fx)], gs[len(fc) + len(fx):]
    new_lam = [g if g is not None else zeros_like(body.carries[j]) for g, j in zip(g_c, fc)]   # λ_{t-1}
    dxs = [g if g is not None else zeros_like(body.xs[i]) for g, i in zip(g_x, fx)]           # x̄_t
    seqs = body.carries + body.xs + rph + dy
    per_step = _variant(Graph({str(i): g for i, g in enumerate(gs) if g is not None}).order(),
                        {p.id for p in lam + seqs})
    acc, new_acc, ys, terms = [], [], list(dxs), {}
    for k, g in zip(fk, g_k):
        if g is None:
            continue
        for t in _split_sum(g):
            term = _reduced_term(t, per_step, seqs, ys)
            if term is None:                                            # Σθ̄ += θ̄_t in a carry
                a = placeholder(lab, "dcap", len(acc), body.consts[k].type)
                term = ("acc", len(fc) + len(acc))
                acc.append(a)
                new_acc.append(a + t)
            terms.setdefault(k, []).append(term)
    bw = Body(lam + acc, seqs, body.consts, new_lam + new_acc, ys, lab)
    return bw, fc, fx, terms


def _split_sum(g: Node) -> list[Node]:
    """The terms of a fan-out sum g = a + b + ... (same shapes, no broadcasting)."""
    if g.op == "add" and all(i.shape == g.shape for i in g.inputs):
        return [t for i in g.inputs for t in _split_sum(i)]
    return [g]


def _reduced_term(t: Node, per_step: set[int], seqs: list[Node], ys: list[Node]):
    """("mm", u, v) for t = u_tᵀ v_t, ("lin", v, chain) for t = L(v_t) with L
    linear; refs ("x", i) into the sequences or ("y", m) into ys (appended)."""
    def ref(n):
        for i, s in enumerate(seqs):
            if s is n:
                return ("x", i)
        for m, y in enumerate(ys):
            if y is n:
                return ("y", m)
        ys.append(n)
        return ("y", len(ys) - 1)

    if t.op == "matmul" and t.rank == 2:
        a, v = t.inputs
        if a.op == "transpose" and tuple(a.attrs["perm"]) == (1, 0) and a.inputs[0].rank == 2 \
                and a.inputs[0].id in per_step and v.id in per_step:
            return ("mm", ref(a.inputs[0]), ref(v))
    chain, n = [], t
    while n.op in _LINEAR and n.id in per_step:
        chain.append((n.op, {k: v for k, v in n.attrs.items()}))
        n = n.inputs[0]
    if chain and n.id in per_step:
        return ("lin", ref(n), chain)
    return None


def _substitute(roots: list, env: dict[int, Node]) -> list:
    """roots with the nodes whose ids are in env replaced (None passes through)."""
    live = {str(i): r for i, r in enumerate(roots) if r is not None}
    out = substitute_roots(live, env)
    return [out[str(i)] if r is not None else None for i, r in enumerate(roots)]


SCAN.vjp = scan_vjp
