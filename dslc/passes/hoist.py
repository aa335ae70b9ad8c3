"""Loop-invariant code motion out of scan bodies (graph -> (graph, changed)).

Each value of a step is one of: K, a function of the captured θ alone (the same
at every step); X, a function of x_t and θ (independent of the carries); C, it
depends on a carry. Then, per loop:

  split:     concat([a, h], axis=-1) @ W  ->  a @ W[:na] + h @ W[na:]   (a of class K or X, h of C)
             (u ∘ v) ∘ b  ->  (u ∘ b) ∘ v   for ∘ in {+, ×}              (u, b of K or X; v of C)
             concat(u1 × v1, .., uk × vk) -> concat(u1, .., uk) × concat(v1, .., vk)
                                                  (ui of K or X, vi of C, all of one shape)
  hoist K:   computed once before the loop, read as a captured value (Wᵀ, W[na:], ...);
  hoist X:   computed for all t at once on the stacked sequences, scanned over as a new
             sequence: elementwise ops on [T, ...] (broadcasting unchanged), and
             x_t W as one GEMM:  reshape(reshape(X, [T·B, n]) W, [T, B, k]); concats on [T, ...].
             A stacked output y_t of class X is that stacked value itself.

So the LSTM's input projection x_t W_x + b is one [T·B, n] x [n, 4m] GEMM before the
loop, and its gradient one GEMM after the backward loop (the matmul rule).
"""
from __future__ import annotations

import itertools

from ..ir import dims as D
from ..ir.graph import Graph, substitute_roots
from ..ir.node import Node, apply as P
from ..ops.registry import get
from ..ops.scan import Body, placeholder, split
from ..ops.shape import slice_axis
from .rewrite import rebuild
from .scans import group_key, groups, replace_scans

K, X, C = 0, 1, 2
_FREE = ("const", "fill")            # leaves a hoisted value may read in place


class _Classes(dict):
    """id -> K / X / C for the nodes of one body, computed on demand."""

    def __init__(self, body: Body):
        super().__init__({p.id: K for p in body.consts})
        self.update({p.id: X for p in body.xs})
        self.update({p.id: C for p in body.carries})

    def of(self, n: Node) -> int:
        if n.id not in self:
            for m in Graph({"r": n}).order():
                if m.id not in self:
                    self[m.id] = max((self[i.id] for i in m.inputs), default=K)
        return self[n.id]


# -- split: the parts of a concat-matmul, the bias next to the hoisted part ---------------
def _split_rules(body: Body) -> Body:
    cls = _Classes(body)

    def fn(n, ins):
        if n.op == "matmul" and ins[0].op == "concat" and ins[0].rank == 2 and ins[1].rank == 2 \
                and ins[0].attrs["axis"] == 1 and cls.of(ins[1]) == K:
            parts = ins[0].inputs
            kinds = [cls.of(p) for p in parts]
            if C in kinds and min(kinds) < C:
                terms, start = [], 0
                for p in parts:                 # a @ W[rows of a]
                    end = D.add(start, p.shape[1])
                    terms.append((cls.of(p), p @ slice_axis(ins[1], 0, start, end)))
                    start = end
                terms.sort(key=lambda t: t[0])   # hoistable parts first: (x Wx + ...) + h Wh
                out = terms[0][1]
                for _, t in terms[1:]:
                    out = out + t
                return out
        if n.op in ("add", "mul"):
            return _reassociate(n, ins, cls)
        if n.op == "concat":
            return _factor_concat(n, ins, cls)
        return None
    return body.rebuild(lambda r: rebuild(r, fn)[0])


def _factor_concat(n: Node, ins, cls: "_Classes"):
    """concat(u1 × v1, .., uk × vk) -> concat(u) × concat(v): the per-step factors u join one
    hoisted sequence, and the step does one concat and one multiply instead of k multiplies
    (the pullback of an LSTM's gates: [i' dc, f' dc, o' dh, g' dc])."""
    if len(ins) < 2:
        return None
    us, vs = [], []
    for m in ins:
        if m.op != "mul":
            return None
        a, b = m.inputs
        if cls.of(a) == C and cls.of(b) < C:
            a, b = b, a
        if not (cls.of(a) < C <= cls.of(b) and a.type == m.type and b.type == m.type):
            return None
        us.append(a)
        vs.append(b)
    axis = n.attrs["axis"]
    return P("mul", P("concat", *us, axis=axis, loc=n.loc), P("concat", *vs, axis=axis, loc=n.loc), loc=n.loc)


def _reassociate(n: Node, ins, cls: "_Classes"):
    """(u ∘ v) ∘ b -> (u ∘ b) ∘ v for ∘ in {+, ×}, u and b of class K or X, v of C,
    when u already has the result's shape (so broadcasting is unchanged)."""
    for inner, b in ((ins[0], ins[1]), (ins[1], ins[0])):
        if inner.op != n.op or cls.of(b) == C:
            continue
        u, v = inner.inputs
        if cls.of(v) < C <= cls.of(u):
            u, v = v, u
        if cls.of(u) < C <= cls.of(v) and u.shape == n.shape and u.dtype == b.dtype:
            return P(n.op, P(n.op, u, b), v)
    return None


# -- hoist ---------------------------------------------------------------------------------
def _liftable(n: Node, cls: _Classes, ok: dict) -> bool:
    """An X value whose whole X-cone can be computed on stacked sequences."""
    if n.id in ok:
        return ok[n.id]
    r = False
    if n.op != "input":
        xin = [i for i in n.inputs if cls.of(i) == X]
        kin = [i for i in n.inputs if cls.of(i) == K]
        if get(n.op).family == "elementwise":
            r = all(i.rank == n.rank for i in xin) and all(i.rank <= n.rank for i in kin)
        elif n.op == "matmul":
            a, w = n.inputs
            r = cls.of(a) == X and cls.of(w) == K and a.rank == 2 and w.rank == 2
        elif n.op == "concat":
            r = not kin
        r = r and all(i.op == "input" or _liftable(i, cls, ok) for i in xin)
    ok[n.id] = r
    return r


def _plan(body: Body):
    """(body with hoisted values read from new placeholders, K values, X values), or None."""
    body = _split_rules(body)
    cls, ok = _Classes(body), {}
    order = body.order()
    ph = {p.id for p in body.placeholders()}
    hoist_k, hoist_x = {}, {}
    roots = body.new_carries + body.ys
    users: dict[int, list[Node]] = {}
    for n in order:
        for i in n.inputs:
            users.setdefault(i.id, []).append(n)
    root_ids = {r.id for r in roots}
    for n in order:
        if n.id in ph or n.op in _FREE:
            continue
        c = cls.of(n)
        if c == K:
            if n.id in root_ids or any(cls.of(u) > K for u in users.get(n.id, [])):
                hoist_k[n.id] = n
        elif c == X and _liftable(n, cls, ok):
            if n.id in root_ids or any(not (cls.of(u) == X and _liftable(u, cls, ok)) for u in users.get(n.id, [])):
                hoist_x[n.id] = n
    hoist_k = {i: n for i, n in hoist_k.items() if n not in body.new_carries}   # a carry stays a carry
    if not hoist_k and not hoist_x:
        return None
    taken = {p.attrs["name"] for p in body.placeholders()}
    fresh = (i for i in itertools.count(len(taken)) if f"{body.label}.h{i}" not in taken)   # names stay unique
    env = {}
    new_k = [placeholder(body.label, "h", next(fresh), n.type) for n in hoist_k.values()]
    new_x = [placeholder(body.label, "h", next(fresh), n.type) for n in hoist_x.values()]
    env.update({n.id: p for n, p in zip(hoist_k.values(), new_k)})
    env.update({n.id: p for n, p in zip(hoist_x.values(), new_x)})
    memo = substitute_roots({str(r.id): r for r in roots}, env)
    new = Body(body.carries, body.xs + new_x, body.consts + new_k, [memo[str(c.id)] for c in body.new_carries],
               [memo[str(y.id)] for y in body.ys], body.label)
    return body, new, list(hoist_k.values()), list(hoist_x.values()), cls


def _outer(body: Body, cls: _Classes, seqs, caps):
    """Builders of the outer values: K nodes over the captured inputs, X nodes stacked."""
    memo = {p.id: v for p, v in zip(body.consts, caps)}
    memo.update({p.id: v for p, v in zip(body.xs, seqs)})
    T = seqs[0].shape[0]

    def value(n: Node) -> Node:
        for m in Graph({"r": n}).order():
            if m.id in memo:
                continue
            ins = [memo[i.id] for i in m.inputs]
            if cls.of(m) == K:
                memo[m.id] = m if all(a is b for a, b in zip(ins, m.inputs)) else Node(m.op, tuple(ins), m.attrs,
                                                                                     m.type, m.loc, m.hint)
            elif m.op == "matmul":                 # x_t W for all t: one GEMM over [T·B, n]
                A, W = ins
                rows = D.mul(T, A.shape[1])
                flat = P("reshape", A, shape=(rows, A.shape[2]), loc=m.loc) @ W
                memo[m.id] = P("reshape", flat, shape=(T,) + m.shape, loc=m.loc)
            elif m.op == "concat":                 # one axis further in on [T, ...]
                memo[m.id] = P("concat", *ins, axis=m.attrs["axis"] + 1, loc=m.loc)
            else:                                  # elementwise on [T, ...]: broadcasting unchanged
                memo[m.id] = P(m.op, *ins, loc=m.loc, **m.attrs)
        return memo[n.id]
    return value


def hoist_scans(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    plans = {}
    for key, (body, _) in groups(roots).items():
        if not body.xs:
            continue
        p = _plan(body)
        if p is not None:
            plans[key] = (body, *p)              # keep body alive: its id stays unique
    if not plans:
        return roots, False

    built: dict = {}

    def table(n, ins):
        key = group_key(n)
        if key not in plans:
            return None
        _, sb, new, ks, xs, cls = plans[key]
        if key not in built:                     # the outer values once per loop
            inits, seqs, caps = split(sb, ins)
            value = _outer(sb, cls, seqs, caps)
            built[key] = value, (*inits, *seqs, *[value(x) for x in xs], *caps, *[value(k) for k in ks])
        value, ins2 = built[key]
        i, nc = n.attrs["index"], len(sb.carries)
        if i >= nc and any(sb.ys[i - nc] is x for x in xs):     # a stacked X output: the hoisted value
            return value(sb.ys[i - nc])
        return P("scan", *ins2, body=new, index=i, reverse=n.attrs["reverse"], loc=n.loc)
    return replace_scans(roots, table)
