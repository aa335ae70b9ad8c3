"""Whole-graph passes over groups of scan nodes. A group is the scan nodes that
share a body, a direction and inputs: one loop (one ONNX `Scan`), whose outputs
they pick by `index` (final carries, then stacked ys).

  merge_scans: a loop whose body `base` another group's body extends (the same
               step with residuals stacked as more outputs, bptt.py) is that loop:
               scan(f, ins)[i] -> scan(f + residuals, ins)[i].
  prune_scans: dead values inside loops. A stacked output nobody reads is
               dropped; a carry is dropped when neither a read output nor a
               kept carry depends on it; sequences and captured values the kept
               outputs do not reach are dropped; ys that are the same node are one.
               (So no dL/dx_t is computed for data sequences.)
"""
from __future__ import annotations

from ..ir import dims as D
from ..ir.graph import Graph
from ..ir.node import Node, apply as P
from ..ops.scan import Body, split
from .rewrite import rebuild


def group_key(n: Node):
    return (id(n.attrs["body"]), n.attrs["reverse"], tuple(i.id for i in n.inputs))


def find_ops(roots, ops) -> list[Node]:
    """The top-level nodes with an op in `ops`, by a plain walk (no sort: passes
    with nothing to do on a graph cost one walk)."""
    out, seen, stack = [], set(), list(roots.values())
    while stack:
        n = stack.pop()
        if n.id in seen:
            continue
        seen.add(n.id)
        if n.op in ops:
            out.append(n)
        stack.extend(n.inputs)
    return sorted(out, key=lambda n: n.id)


def groups(roots) -> dict:
    """key -> (body, set of read indices), over the top-level graph."""
    out: dict = {}
    for n in find_ops(roots, ("scan",)):
        out.setdefault(group_key(n), (n.attrs["body"], set()))[1].add(n.attrs["index"])
    return out


def replace_scans(roots, table: dict) -> tuple[dict, bool]:
    """Rebuild with each top-level scan node that `table(n, ins)` maps replaced."""
    memo: dict[int, Node] = {}
    changed = False
    for old in Graph(roots).order():
        ins = tuple(memo[i.id] for i in old.inputs)
        r = table(old, ins) if old.op == "scan" else None
        if r is None:
            r = old if all(a is b for a, b in zip(ins, old.inputs)) else Node(old.op, ins, old.attrs, old.type,
                                                                           old.loc, old.hint)
        changed |= r is not old
        memo[old.id] = r
    return {k: memo[v.id] for k, v in roots.items()}, changed


# -- merge -----------------------------------------------------------------------------
def merge_scans(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    found = groups(roots)
    wider = {}
    for (bid, rev, ins), (body, _) in found.items():
        b = getattr(body, "base", None)
        while b is not None:                 # the widest body of the same loop wins
            wider.setdefault((id(b), rev, ins), body)
            b = getattr(b, "base", None)
    wider = {k: v for k, v in wider.items() if k in found}
    if not wider:
        return roots, False

    def table(n, ins):
        w = wider.get(group_key(n))
        if w is None:
            return None
        return P("scan", *ins, body=w, index=n.attrs["index"], reverse=n.attrs["reverse"], loc=n.loc)
    return replace_scans(roots, table)


# -- prune -----------------------------------------------------------------------------
def _reached(body: Body, outs: list[Node]) -> set[int]:
    return {n.id for n in Graph({str(i): o for i, o in enumerate(outs)}).order()}


def _plan(body: Body, used: set[int]):
    """(kept carries, kept xs, kept captured, kept ys (deduplicated), old index -> new), or None."""
    nc = len(body.carries)
    carries = {i for i in used if i < nc}
    ys = sorted({i - nc for i in used if i >= nc})
    while True:                                          # carries the kept outputs depend on
        seen = _reached(body, [body.new_carries[j] for j in sorted(carries)] + [body.ys[m] for m in ys])
        more = {j for j, p in enumerate(body.carries) if p.id in seen} - carries
        if not more:
            break
        carries |= more
    kc = sorted(carries)
    kx = [i for i, p in enumerate(body.xs) if p.id in seen] or [0]    # a loop needs a sequence: its length
    kk = [k for k, p in enumerate(body.consts) if p.id in seen]
    ky, first = [], {}
    for m in ys:                                         # one output per distinct node
        first.setdefault(body.ys[m].id, len(ky))
        if first[body.ys[m].id] == len(ky):
            ky.append(m)
    if len(kc) == nc and len(kx) == len(body.xs) and len(kk) == len(body.consts) and len(ky) == len(body.ys):
        return None
    index = {j: kc.index(j) for j in kc}
    index.update({nc + m: len(kc) + first[body.ys[m].id] for m in ys})
    return kc, kx, kk, ky, index


def prune_scans(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    plans = {}
    for key, (body, used) in groups(roots).items():
        p = _plan(body, used)
        if p is not None:
            kc, kx, kk, ky, index = p
            new = Body([body.carries[j] for j in kc], [body.xs[i] for i in kx], [body.consts[k] for k in kk],
                       [body.new_carries[j] for j in kc], [body.ys[m] for m in ky], body.label)
            plans[key] = (body, new, kc, kx, kk, index)      # keep body alive: its id stays unique
    if not plans:
        return roots, False

    def table(n, ins):
        p = plans.get(group_key(n))
        if p is None:
            return None
        _, new, kc, kx, kk, index = p
        inits, seqs, caps = split(n.attrs["body"], ins)
        kept = [inits[j] for j in kc] + [seqs[i] for i in kx] + [caps[k] for k in kk]
        return P("scan", *kept, body=new, index=index[n.attrs["index"]], reverse=n.attrs["reverse"], loc=n.loc)
    return replace_scans(roots, table)


# -- last steps ------------------------------------------------------------------------
def _last_carry(n: Node, s: Node):
    """The carry index j when n = s[T-1:T] along axis 0, s a forward loop's stacked y that
    is its carry j; else None."""
    if s.op != "scan" or s.attrs["reverse"] or n.attrs["spec"] != ((0, D.sub(s.shape[0], 1), s.shape[0], 1),):
        return None
    body = s.attrs["body"]
    nc = len(body.carries)
    if s.attrs["index"] < nc:
        return None
    y = body.ys[s.attrs["index"] - nc]
    return next((j for j, c in enumerate(body.new_carries) if c is y), None)


def last_steps(roots: dict[str, Node]) -> tuple[dict[str, Node], bool]:
    if not any(_last_carry(n, n.inputs[0]) is not None for n in find_ops(roots, ("slice",))):
        return roots, False

    def fn(n, ins):
        if n.op != "slice" or ins[0].op != "scan":
            return None
        j = _last_carry(n, ins[0])
        if j is None:
            return None
        s = ins[0]
        final = P("scan", *s.inputs, body=s.attrs["body"], index=j, reverse=False, loc=s.loc)
        return P("unsqueeze", final, axes=(0,), loc=n.loc)
    return rebuild(roots, fn)
