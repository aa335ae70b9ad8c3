"""Recurrence: the `scan` primitive (LANGUAGE.md §6) and backprop through time.

    carry_0 = init;   for t = 1..T:  carry_t, y_t = f(carry_{t-1}, x_t; θ)
    outputs:  carry_T (final carries)  and  Y = [y_1, ..., y_T] (stacked along axis 0)

`f` is a traced `Body`: a closed sub-graph over placeholder leaves for
carry_{t-1}, x_t and the captured outer values θ (params and any tensor
computed outside the step). The scan node's inputs are (inits, sequences,
captured), so the outer DAG sees every value the loop reads. IR nodes have one
value each, so a scan with K outputs is K `scan` nodes sharing one body and the
same inputs (attribute `index` picks the output); the engines run such a group
once (ONNX: one `Scan` node; NumPy: one loop, memoised per evaluation).

Gradient (BPTT). With cotangents  λ_T = dL/dcarry_T  and  ȳ_t = dL/dy_t:

    for t = T..1:   λ_{t-1}, x̄_t, θ̄_t = vjp of f at (carry_{t-1}, x_t; θ) with seeds (λ_t, ȳ_t)
    dL/dinit = λ_0,   dL/dx_t = x̄_t,   dL/dθ = Σ_t θ̄_t   (θ is shared across time)

That loop is itself a scan, run in reverse: carries (λ, Σθ̄), sequences
(carry_{t-1}, x_t, ȳ_t), captured θ. Its body is `autodiff.vjp` applied to the
step's own body, recomputing the step's forward from the stacked carries
(carry_{t-1} = [init, carry_1 .. carry_{T-1}]), so every primitive's rule is
reused and the backward scan can be differentiated again.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import SpecError
from ..ir import dims as D
from ..ir.graph import Graph, Subgraph
from ..ir.node import Node, ShapeError, apply as P, at
from ..ir.types import TensorType, is_float
from ..ir.registry import REGISTRY, primitive
from .shape import slice_axis

_labels = itertools.count(1)


def _placeholder(label: str, role: str, i: int, ty: TensorType) -> Node:
    """A body's formal argument: an input leaf named uniquely for this body."""
    name = f"{label}.{role}{i}"
    return Node("input", (), {"name": name}, ty, hint=name)


class Body(Subgraph):
    """A traced step f: placeholder leaves `carries` (carry_{t-1}), `xs` (x_t) and
    `consts` (captured outer values); roots `new_carries` (carry_t) and `ys`
    (per-step outputs, stacked by the scan). Closed: every input leaf it
    reaches is one of its placeholders. Hashed by identity (CSE keys)."""

    def __init__(self, carries, xs, consts, new_carries, ys, label: str):
        self.carries, self.xs, self.consts = list(carries), list(xs), list(consts)
        self.new_carries, self.ys = list(new_carries), list(ys)
        self.label = label
        self._order = None
        self._derived: dict = {}          # backward bodies and the like, made once per body

    @property
    def counts(self) -> tuple[int, int, int]:
        return len(self.carries), len(self.xs), len(self.consts)

    def placeholders(self) -> list[Node]:
        return self.carries + self.xs + self.consts

    def roots(self) -> dict[str, Node]:
        out = {f"carry{j}": c for j, c in enumerate(self.new_carries)}
        out.update({f"y{m}": y for m, y in enumerate(self.ys)})
        return out

    def graph(self) -> Graph:
        return Graph(self.roots())

    def order(self) -> list[Node]:
        if self._order is None:
            self._order = self.graph().order()
        return self._order

    def derived(self, key, make):
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def __repr__(self):
        return f"body {self.label}"

    def header(self) -> str:
        def names(ns):
            return " ".join(f"%{n.attrs['name']}:{n.type}".replace(" ", "") for n in ns)
        return f"body {self.label}(carries {names(self.carries)} | xs {names(self.xs)} | " \
               f"captured {names(self.consts)}):"

    def lint(self) -> None:
        g = self.graph()
        g.lint()
        mine = {p.id for p in self.placeholders()}
        stray = [n for n in g.order() if n.op in ("input", "param", "state") and n.id not in mine]
        assert not stray, f"{self!r} is not closed: it reads " + ", ".join(n.attrs["name"] for n in stray)

    def rebuild(self, run) -> "Body":
        ph = self.placeholders()
        roots = {f"p{i}": p for i, p in enumerate(ph)}
        roots.update(self.roots())
        new = run(roots)
        if all(new[k] is v for k, v in roots.items()):
            return self
        nc, nx, _ = self.counts
        p = [new[f"p{i}"] for i in range(len(ph))]
        return Body(p[:nc], p[nc:nc + nx], p[nc + nx:], [new[f"carry{j}"] for j in range(len(self.new_carries))],
                    [new[f"y{m}"] for m in range(len(self.ys))], self.label)


# -- the public function ------------------------------------------------------
def scan(step_fn, xs: Node, inits: list[Node], loc=None, unroll: bool = False) -> list[Node]:
    """Run `step_fn(carries, x_t) -> new carries` along axis 0 of xs ([T, ...], T
    may be symbolic) from `inits`; returns the stacked carries, each [T, *carry].
    step_fn is called once, to trace the body; params it makes are shared across
    time. `unroll=True` (T known) substitutes the body T times instead."""
    inits = list(inits)
    with at(loc):
        if xs.rank < 1:
            raise SpecError(f"scan runs along the first axis of its sequence, found a scalar {xs.type}", loc)
        label = f"scan{next(_labels)}"
        carries = [_placeholder(label, "carry", j, c.type) for j, c in enumerate(inits)]
        x = _placeholder(label, "x", 0, xs.type.with_shape(xs.shape[1:]))
        mark = (carries[0] if carries else x).id          # nodes made before this are outer values
        new = step_fn(list(carries), x)
        new = list(new) if isinstance(new, (list, tuple)) else [new]
        if len(new) != len(inits):
            raise SpecError(f"the scan step returns {len(new)} values for {len(inits)} carries", loc)
        for j, (c, i) in enumerate(zip(new, inits)):
            if c.type != i.type:
                raise SpecError(f"the scan step returns {c.type} for carry {j + 1}, "
                                f"whose initial value is {i.type}; they must be equal", loc)
        body, captured = _close(label, carries, [x], new, new, mark, loc)
        ins = (*inits, xs, *captured)
        if unroll:
            if not isinstance(xs.shape[0], int):
                raise SpecError(f"cannot unroll a scan over a symbolic length {D.show(xs.shape[0])}", loc)
            return _unrolled(body, ins, False)[len(inits):]
        return [P("scan", *ins, body=body, index=len(inits) + j, reverse=False, loc=loc)
                for j in range(len(inits))]


def _close(label, carries, xs, new_carries, ys, mark, loc) -> tuple[Body, list[Node]]:
    """The traced step as a closed Body: every value it reads from outside (made
    before the trace, or a param/input/state leaf) becomes a captured placeholder."""
    formal = {p.id for p in carries + xs}
    captured: dict[int, Node] = {}
    inside: dict[int, Node] = {}
    stack = list(new_carries) + list(ys)
    while stack:
        n = stack.pop()
        if n.id in formal or n.id in captured or n.id in inside:
            continue
        if n.op in ("input", "param", "state") or (n.id < mark and n.op != "const"):
            captured[n.id] = n
            continue
        if REGISTRY[n.op].family == "random":
            raise SpecError("random draws (dropout, normal, uniform, ...) inside a scan step are not "
                            "supported; draw them outside the step and pass them in the sequence", n.loc or loc)
        inside[n.id] = n
        stack.extend(n.inputs)
    outer = [captured[i] for i in sorted(captured)]
    consts = [_placeholder(label, "in", k, n.type) for k, n in enumerate(outer)]
    sub = {n.id: p for n, p in zip(outer, consts)}
    for i in sorted(inside):                 # ids increase along every edge: a topological order
        n = inside[i]
        ins = tuple(sub.get(a.id, a) for a in n.inputs)
        sub[i] = n if all(a is b for a, b in zip(ins, n.inputs)) else Node(n.op, ins, n.attrs, n.type, n.loc, n.hint)
    body = Body(carries, xs, consts, [sub.get(c.id, c) for c in new_carries], [sub.get(y.id, y) for y in ys], label)
    return body, outer


# -- the primitive ------------------------------------------------------------
def _split(body: Body, ins):
    nc, nx, _ = body.counts
    return ins[:nc], ins[nc:nc + nx], ins[nc + nx:]


def _scan_shape(types, body, index, reverse):
    nc, nx, nk = body.counts
    if len(types) != nc + nx + nk:
        raise ShapeError(f"scan takes {nc + nx + nk} inputs, found {len(types)}")
    inits, seqs, caps = _split(body, types)
    for j, (t, p) in enumerate(zip(inits, body.carries)):
        if t != p.type:
            raise ShapeError(f"scan carry {j + 1}: the initial value is {t}, the step takes {p.type}")
    T = None
    for t, p in zip(seqs, body.xs):
        if t.rank < 1 or t.with_shape(t.shape[1:]) != p.type:
            raise ShapeError(f"scan sequence {t} does not hold steps of {p.type}")
        if T is None:
            T = t.shape[0]
        elif t.shape[0] != T:
            raise ShapeError(f"scan sequences differ in length: {D.show(T)} and {D.show(t.shape[0])}")
    for t, p in zip(caps, body.consts):
        if t != p.type:
            raise ShapeError(f"scan captured value {t} where the body reads {p.type}")
    if index < nc:
        return body.new_carries[index].type
    y = body.ys[index - nc].type
    return y.with_shape((T,) + y.shape)


def _scan_np(*arrays, body, index, reverse):
    from ..evaluate import context
    ctx = context()
    memo = ctx.memo if ctx is not None else {}
    key = ("scan", id(body), reverse, tuple(id(a) for a in arrays))
    if key not in memo:                      # keep the arrays: their ids stay unique while memoised
        memo[key] = (arrays, _run_np(body, arrays, reverse))
    return memo[key][1][index]


def _run_np(body: Body, arrays, reverse) -> list[np.ndarray]:
    from ..evaluate import evaluate
    inits, seqs, caps = _split(body, arrays)
    T = seqs[0].shape[0]
    if T == 0:
        raise ValueError("scan over an empty sequence")
    fixed = {p.attrs["name"]: v for p, v in zip(body.consts, caps)}
    roots, order = body.roots(), body.order()
    carries = list(inits)
    ys: list[list] = [[None] * T for _ in body.ys]
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        feeds = dict(fixed)
        feeds.update({p.attrs["name"]: v for p, v in zip(body.carries, carries)})
        feeds.update({p.attrs["name"]: s[t] for p, s in zip(body.xs, seqs)})
        out = evaluate(roots, feeds, order=order)
        carries = [out[f"carry{j}"] for j in range(len(carries))]
        for m, y in enumerate(ys):
            y[t] = out[f"y{m}"]
    return carries + [np.stack(y) for y in ys]


def _scan_onnx(b, *names, body, index, reverse):
    key = ("scan", id(body), reverse, names)
    if key not in b._cache:                  # one Scan node for all outputs of the group
        from ..lower.driver import lower_subgraph
        nc, nx, _ = body.counts
        outer = {p.id: nm for p, nm in zip(body.consts, names[nc + nx:])}   # outer-scope references
        g = lower_subgraph(b, body.new_carries + body.ys, body.carries + body.xs, outer,
                           name=body.label.replace(".", "_"))
        k = nc + len(body.ys)
        outs = b.op("Scan", *names[:nc + nx], _outputs=k, body=g, num_scan_inputs=nx,
                    scan_input_directions=[1] * nx if reverse else None,
                    scan_output_directions=[1] * len(body.ys) if reverse and body.ys else None)
        b._cache[key] = outs if k > 1 else [outs]
    return b._cache[key][index]


def _scan_vjp(g, out, *ins, body, index, reverse):
    from ..autodiff import zeros_like
    nc, nx, _ = body.counts
    inits, seqs, caps = _split(body, ins)
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
    from ..autodiff import vjp, zeros_like
    lab = f"scan{next(_labels)}"
    fc = [j for j, c in enumerate(body.carries) if is_float(c.dtype)]
    fx = [i for i, x in enumerate(body.xs) if is_float(x.dtype)]
    fk = [k for k, c in enumerate(body.consts) if is_float(c.dtype)]
    lam = [_placeholder(lab, "dcarry", j, body.carries[j].type) for j in fc]
    acc = [_placeholder(lab, "dcap", k, body.consts[k].type) for k in fk]
    dy = [_placeholder(lab, "dy", 0, body.ys[seeded].type)] if seeded is not None else []
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


primitive("scan", "control", _scan_shape, vjp=_scan_vjp, onnx=_scan_onnx, np=_scan_np,
          doc="carry_t, y_t = body(carry_{t-1}, x_t; captured); outputs carry_T or stacked y")


# -- unrolling ------------------------------------------------------------------
def _substitute(body: Body, env: dict[int, Node]) -> list[Node]:
    """The body's outputs with its placeholders replaced by the nodes in env."""
    memo = dict(env)
    for n in body.order():
        if n.id in memo:
            continue
        ins = tuple(memo[i.id] for i in n.inputs)
        memo[n.id] = n if all(a is b for a, b in zip(ins, n.inputs)) else Node(n.op, ins, n.attrs, n.type,
                                                                             n.loc, n.hint)
    return [memo[r.id] for r in body.new_carries + body.ys]


def _unrolled(body: Body, ins, reverse) -> list[Node]:
    """The scan's outputs (final carries, stacked ys) with the body substituted T times."""
    inits, seqs, caps = _split(body, ins)
    T = seqs[0].shape[0]
    assert isinstance(T, int), T
    nc = len(inits)
    carries = list(inits)
    ys: list[list] = [[None] * T for _ in body.ys]
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        env = {p.id: v for p, v in zip(body.consts, caps)}
        env.update({p.id: v for p, v in zip(body.carries, carries)})
        env.update({p.id: P("squeeze", slice_axis(s, 0, t, t + 1), axes=(0,)) for p, s in zip(body.xs, seqs)})
        outs = _substitute(body, env)
        carries = outs[:nc]
        for m, y in enumerate(ys):
            y[t] = outs[nc + m]
    return carries + [P("concat", *[P("unsqueeze", v, axes=(0,)) for v in y], axis=0) for y in ys]


def unroll(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    """Pass: replace every scan of known length by its unrolled body (short sequences)."""
    from ..passes.rewrite import rebuild
    done: dict = {}

    def fn(n, ins):
        if n.op != "scan":
            return None
        body, reverse = n.attrs["body"], n.attrs["reverse"]
        if not isinstance(ins[len(body.carries)].shape[0], int):
            return None
        key = (id(body), reverse, tuple(i.id for i in ins))
        if key not in done:
            done[key] = (body, _unrolled(body, ins, reverse))
        return done[key][1][n.attrs["index"]]

    return rebuild(roots, fn)
