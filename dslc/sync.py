"""Exact data-parallel steps when the rows of a batch interact (batch norm).

Data parallelism splits a batch of B rows into shards of b_s rows. A
*batch reduction* r = reduce_B(e) (sum, mean, max or min over the batch axis)
is the one place where rows meet. Two kinds:

- terminal: the losses, metrics and new states are affine in r, with
  coefficients free of the batch (a loss or metric `mean(...)`). Then each
  worker's share w_s = b_s / B of its own values adds up to the global
  batch's, gradients included: the plain gradient graph. A terminal *sum*
  enters as sum_s / w_s, so that its share is sum_s.
- inner: anything else (batch norm: x - mean(x) feeds the next layer; the
  running variance's N / (N - 1)). No worker can compute it alone.

Inner reductions are made inputs `sync.<k>` of the step, and the workers
agree on them stage by stage (depth d: the inner reductions whose input
depends on inner reductions of depth < d only), as SyncBatchNorm does:

    forward stage d:  part_k = w_s mean_s(e_k) | sum_s(e_k) | max_s(e_k)    (k at depth d)
                      sync_k = combine over workers of part_k
    gradient graph:   losses, metrics, states (with the terminal shares),
                      w_s dL_s/dθ and adj_k = w_s dL_s/dsync_k for every k
    backward stage d: (θ̄, adj_j for j of depth < d) += vjp(part_k, adj_k)
                      for k at depth d, with adj_k summed over workers

which is reverse mode over the global batch's graph: summing every worker's
θ̄ gives the gradient one process computes on the whole batch.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .autodiff import vjp
from .errors import SpecError
from .ir import dims as D
from .ir.graph import Graph, subgraphs, substitute_roots
from .ir.node import Node, apply as P, at, const
from .ir.types import TensorType
from .ops.einsum import parse as parse_einsum
from .ops.leaves import input_
from .step import selected

# ops on the last two axes as matrices (trilu numbers the rows: a shard's row i is not the batch's)
MATRIX_OPS = ("solve", "trisolve", "cholesky", "det", "trilu")
REDUCTIONS = {"sum": "sum", "mean": "sum", "max": "max", "min": "min"}   # op -> how shards combine
# ops through which the roots stay affine in a value (the other operands batch-free)
LINEAR = {"add", "sub", "neg", "reshape", "squeeze", "unsqueeze", "expand", "sum", "mean", "identity"}


@dataclass
class Point:
    """One inner batch reduction: graph input `sync.<k>`, made at depth `depth`."""
    k: int
    node: Node                 # the reduction in the forward graph
    depth: int
    combine: str               # "sum" | "max" | "min"
    leaf: Node = None          # the input that stands for it

    @property
    def name(self) -> str:
        return f"sync.{self.k}"


@dataclass
class SyncPlan:
    points: list[Point]
    terminal_sums: list[Node]              # terminal sums over the batch (enter as sum_s / w_s)
    weight: Node                           # f32 input shard_weight = b_s / B

    @property
    def depth(self) -> int:
        return max((p.depth for p in self.points), default=0)

    @property
    def needed(self) -> bool:
        """Whether the plain gradient graph needs anything of this (else it is exact as it is)."""
        return bool(self.points or self.terminal_sums)

    def at_depth(self, d: int) -> list[Point]:
        return [p for p in self.points if p.depth == d]


# -- analysis ----------------------------------------------------------------------------
def _batched(n: Node, b: str) -> bool:
    return bool(_batch_axes(n, b))


def analyse(roots: dict[str, Node], batch: str | None) -> SyncPlan:
    """The batch reductions of the training-mode forward `roots`, classified;
    a SpecError for a way of mixing rows that the workers cannot split."""
    weight = input_("shard_weight", TensorType("f32", ()))
    if batch is None:
        return SyncPlan([], [], weight)
    order = Graph(roots).order()
    users: dict[int, list[tuple[Node, int]]] = {}
    for n in order:
        for i, x in enumerate(n.inputs):
            users.setdefault(x.id, []).append((n, i))
    dep = {}                                           # depends on the batch's rows
    for n in order:
        dep[n.id] = _batched(n, batch) or any(dep[i.id] for i in n.inputs)
        _refuse(n, batch)
        if _mixes_rows(n, batch):
            raise SpecError(f"`{n.op}` along the batch axis mixes the rows of the batch: data-parallel "
                            "training cannot split it across workers", n.loc)
    reductions = [n for n in order if n.inputs and any(_batched(i, batch) for i in n.inputs) and not _batched(n, batch)]
    for r in reductions:
        if r.op not in REDUCTIONS or not _over_batch(r, batch):
            raise SpecError(f"`{r.op}` mixes the rows of the batch in a way data-parallel training "
                            "cannot split (only sum, mean, max and min over the batch axis)", r.loc)
    memo: dict[int, bool] = {}

    def affine(n: Node) -> bool:
        """Are the roots affine in n (batch-free coefficients)?"""
        if n.id not in memo:
            memo[n.id] = all(_linear_use(u, i, dep) and affine(u) for u, i in users.get(n.id, []))
        return memo[n.id]

    inner, sums = [], []
    for r in reductions:
        if r.op in ("sum", "mean") and affine(r):
            if r.op == "sum":
                sums.append(r)
        else:
            inner.append(r)
    return SyncPlan(_points(order, inner), sums, weight)


def _over_batch(r: Node, batch: str) -> bool:
    """A reduction over every axis that carries the batch."""
    (x,) = r.inputs
    axes = set(r.attrs.get("axes", ()))
    return all(a in axes for a, d in enumerate(x.shape) if isinstance(d, D.Sym) and batch in d.atoms())


def _linear_use(u: Node, i: int, dep: dict) -> bool:
    others = [x for j, x in enumerate(u.inputs) if j != i]
    if u.op in LINEAR:
        return True
    if u.op == "mul":
        return not any(dep[x.id] for x in others)
    if u.op == "div":
        return i == 0 and not dep[u.inputs[1].id]
    if u.op == "where":
        return i > 0 and not dep[u.inputs[0].id]
    if u.op == "cast":
        return u.dtype in ("f32", "f64")
    return False


def _batch_axes(x: Node, batch: str) -> set[int]:
    return {a for a, d in enumerate(x.shape) if isinstance(d, D.Sym) and batch in d.atoms()}


def _mixes_rows(n: Node, batch: str) -> bool:
    """Does row i of n's output read other rows of its input (x[1:], cumsum along
    the batch, a batched right-hand side of a matmul, ...)?"""
    if n.op == "einsum":
        return _einsum_mixes(n, batch)
    if n.op in ("scatter_add", "scatter_along"):      # updates land on other rows of the output
        return n.attrs["axis"] % n.rank in _batch_axes(n, batch) and any(_batched(i, batch) for i in n.inputs)
    if n.op in MATRIX_OPS:                           # the batch as a matrix axis: rows meet (or are numbered)
        if n.op in ("solve", "trisolve") and n.inputs[1].rank >= 2:   # B's columns are solved apart
            a, b = n.inputs
            return any(x >= a.rank - 2 for x in _batch_axes(a, batch)) or b.rank - 2 in _batch_axes(b, batch)
        return any(a >= i.rank - 2 for i in n.inputs for a in _batch_axes(i, batch))
    if not n.inputs or not _batched(n.inputs[0], batch) and n.op != "matmul":
        return False
    x = n.inputs[0]
    axes = _batch_axes(x, batch)
    if n.op in ("cumsum", "log_softmax", "gather", "take_along_axis"):
        return n.attrs.get("axis", 0) % max(x.rank, 1) in axes
    if n.op == "flip":
        return any(a % x.rank in axes for a in n.attrs["axes"])
    if n.op in ("slice", "pad"):
        return any(n.shape[a] != x.shape[a] for a in axes)
    if n.op == "matmul":
        y = n.inputs[1]
        return any(a >= y.rank - 2 for a in _batch_axes(y, batch))
    return False


def _einsum_mixes(n: Node, batch: str) -> bool:
    """einsum keeps rows apart when every batched operand labels its batch axes with the
    same letters and the output keeps them: `bi,ij->bj` does; `bi,ci->bc` on two batched
    operands (rows meet rows) and `bi,bj->ij` (a sum over the rows) do not."""
    subs, out = parse_einsum(n.attrs["eq"])
    per_operand = [{s[a] for a in _batch_axes(x, batch)} for s, x in zip(subs, n.inputs)]
    per_operand = [p for p in per_operand if p]
    return bool(per_operand) and (any(p != per_operand[0] for p in per_operand) or not per_operand[0] <= set(out))


def _refuse(n: Node, batch: str) -> None:
    """Rows meeting inside a loop body: not split across workers (yet)."""
    for sg in subgraphs(n):
        for m in sg.graph().order():
            if m.op in REDUCTIONS and m.inputs and _batched(m.inputs[0], batch) and not _batched(m, batch):
                raise SpecError(f"a `{m.op}` over the batch inside a loop body: data-parallel training "
                                "cannot split it across workers", m.loc or n.loc)


def _points(order: list[Node], inner: list[Node]) -> list[Point]:
    """Each inner reduction's depth: 1 + the deepest inner reduction it depends on."""
    ids = {n.id for n in inner}
    level: dict[int, int] = {}
    for n in order:
        below = max((level[i.id] for i in n.inputs), default=0)
        level[n.id] = below + 1 if n.id in ids else below
    out = []
    for k, n in enumerate(inner):
        if not all(isinstance(d, int) for d in n.shape):
            raise SpecError(f"a `{n.op}` over the batch with the symbolic shape {D.show_shape(n.shape)}: "
                            "data-parallel training needs its size to agree on it", n.loc)
        with at(n.loc):
            out.append(Point(k, n, level[n.id], REDUCTIONS[n.op], input_(f"sync.{k}", n.type)))
    return out


# -- building the graphs -------------------------------------------------------------
def _weight(sp: SyncPlan, dtype: str) -> Node:
    return sp.weight if dtype == "f32" else P("cast", sp.weight, dtype=dtype)


def _share(sp: SyncPlan, r: Node) -> Node:
    """This worker's share of the terminal sum r, sum_s / w_s (so the shares add to the sum)."""
    return r / _weight(sp, r.dtype)


def substituted(sp: SyncPlan, roots: dict[str, Node], below: int | None = None) -> dict[str, Node]:
    """roots with the inner reductions of depth < below (all: None) read from
    their inputs, and the terminal sums as shares."""
    mapping = {p.node.id: p.leaf for p in sp.points if below is None or p.depth < below}
    mapping.update({r.id: _share(sp, r) for r in sp.terminal_sums})
    return substitute_roots(roots, mapping)


def forward_stage(sp: SyncPlan, d: int) -> dict[str, Node]:
    """`part.<k>` for the inner reductions of depth d: this worker's share."""
    nodes = substituted(sp, {p.name: p.node for p in sp.at_depth(d)}, below=d)
    out = {}
    for p in sp.at_depth(d):
        n = nodes[p.name]
        with at(p.node.loc):
            if p.node.op == "mean":        # w_s mean_s(e): the shares add to the global mean
                n = n * _weight(sp, n.dtype)
            out[f"part.{p.k}"] = n
    return out


def backward_stage(sp: SyncPlan, d: int, wrt: dict[str, Node],
                   masks: dict[str, Node]) -> tuple[dict[str, Node], dict[str, Node]]:
    """vjp of the depth-d parts with cotangents `cot.<k>`: (outputs, cotangent inputs).
    Outputs `grad.<path>` (masked to the selected loss's params) and `sync_grad.<j>`
    for the inner reductions of lower depth."""
    ps = forward_stage(sp, d)
    cots = {p.k: input_(f"cot.{p.k}", p.node.type) for p in sp.at_depth(d)}
    lower = [p for p in sp.points if p.depth < d]
    targets = list(wrt.values()) + [p.leaf for p in lower]
    gs = vjp([ps[f"part.{k}"] for k in cots], list(cots.values()), targets)
    out = {}
    for (path, w), g in zip(wrt.items(), gs):
        g = g if g is not None else _zeros(w)
        out[f"grad.{path}"] = g if path not in masks else P("where", masks[path], g, _zeros(w))
    for p, g in zip(lower, gs[len(wrt):]):
        out[f"sync_grad.{p.k}"] = g if g is not None else _zeros(p.leaf)
    return out, cots


def _zeros(like: Node) -> Node:
    return const(np.zeros(tuple(like.shape)), like.dtype)


def sync_gradients(sp: SyncPlan, fwd: dict[str, Node], order: list[str], select) -> dict[str, Node]:
    """`sync_grad.<k>`: d(selected loss)/d sync.<k> in the gradient graph (zeros where none)."""
    out: dict[str, Node] = {}
    leaves = [p.leaf for p in sp.points]
    for j, lname in enumerate(order):
        gs = vjp([fwd[f"loss:{lname}"]], [const(1.0, fwd[f"loss:{lname}"].dtype)], leaves)
        on = selected(select, j)
        for p, g in zip(sp.points, gs):
            if g is not None and p.combine != "sum":
                raise SpecError(f"a loss depends on a `{p.node.op}` over the batch: data-parallel training "
                                "cannot differentiate it across workers", p.node.loc)
            g = g if g is not None else _zeros(p.leaf)
            prev = out.get(f"sync_grad.{p.k}", _zeros(p.leaf))
            out[f"sync_grad.{p.k}"] = g if on is None else P("where", on, g, prev)
    return out


def with_fwd(pl, sp: SyncPlan):
    """The plan with the inner reductions read from inputs and terminal sums as shares."""
    return replace(pl, fwd=substituted(sp, pl.fwd))
