"""Built-ins: indexing by integer tensors (LANGUAGE.md §7) — `gather`, `x[idx]`,
`take_along_axis`, `scatter_add`. Compositions of the primitives in index.py."""
from __future__ import annotations

from ..ir.dims import show_shape
from ..ir.node import Node, ShapeError, apply as P
from .builtins_core import builtin, norm_axis, tensor, unify


def _indices(idx, fname: str) -> Node:
    if isinstance(idx, bool):
        raise ShapeError(f"{fname} needs i64 indices, found {idx!r}")
    idx = tensor(idx, "i64") if not isinstance(idx, float) else idx
    if not isinstance(idx, Node) or idx.dtype != "i64":
        found = idx.type if isinstance(idx, Node) else repr(idx)
        hint = ' (cast(idx, "i64"))' if isinstance(idx, Node) and idx.dtype != "bool" else ""
        raise ShapeError(f"{fname} needs i64 indices, found {found}{hint}")
    return idx


def _source(x, fname: str) -> Node:
    x = tensor(x)
    if x.rank < 1:
        raise ShapeError(f"{fname} needs a tensor with at least one axis, found {x.type}")
    return x


@builtin("x:tensor, idx:tensor, axis:int=0")
def gather(x, idx, axis=0):
    """x's slices at i64 indices idx along axis: shape x.shape[:axis] + idx.shape + x.shape[axis+1:]"""
    x, idx = _source(x, "gather"), _indices(idx, "gather")
    return P("gather", x, idx, axis=norm_axis(axis, x.rank, x, "gather"))


@builtin("x:tensor, idx:tensor, axis:int")
def take_along_axis(x, idx, axis):
    """y[.., j, ..] = x[.., idx[.., j, ..], ..] (idx: x's rank; other dims equal or 1)"""
    x, idx = _source(x, "take_along_axis"), _indices(idx, "take_along_axis")
    ax = norm_axis(axis, x.rank, x, "take_along_axis")
    if idx.rank != x.rank:
        raise ShapeError(f"take_along_axis needs indices of the rank of {x.type} ({x.rank}), found {idx.type}")
    want = tuple(d if i == ax else x.shape[i] for i, d in enumerate(idx.shape))
    for i, (a, b) in enumerate(zip(idx.shape, want)):
        if a != b and a != 1:
            raise ShapeError(f"take_along_axis of {x.type} along axis {ax}: indices {idx.type} differ in "
                             f"axis {i} (expected {show_shape(want)})")
    if want != idx.shape:
        idx = P("expand", idx, shape=want)
    return P("take_along_axis", x, idx, axis=ax)


@builtin("x:tensor, idx:tensor, updates:tensor, axis:int=0")
def scatter_add(x, idx, updates, axis=0):
    """x with updates added at i64 indices idx along axis (repeats add up): the adjoint of gather;
    updates: x.shape[:axis] + idx.shape + x.shape[axis+1:]"""
    x, u = unify(x, updates, what="scatter")
    x = _source(x, "scatter_add")
    if x.dtype == "bool":
        raise ShapeError(f"scatter_add needs a number tensor, found {x.type}")
    idx = _indices(idx, "scatter_add")
    ax = norm_axis(axis, x.rank, x, "scatter_add")
    want = x.shape[:ax] + idx.shape + x.shape[ax + 1:]
    if u.shape != want:
        from .registry import broadcast_shapes
        try:
            ok = broadcast_shapes(u.shape, want) == want
        except ShapeError:
            ok = False
        if not ok:
            raise ShapeError(f"scatter_add into {x.type} at indices {idx.type} along axis {ax} needs updates "
                             f"of shape {show_shape(want)}, found {u.type}")
        u = P("expand", u, shape=want)
    return x + P("scatter_add", idx, u, rows=x.shape[ax], axis=ax)


def tensor_index(x: Node, items: list, basic) -> Node:
    """x[..., idx, ...] with one i64 tensor among the items: the other items
    index first (`basic`), then a gather along the tensor's axis. As in NumPy,
    the index's dims take its place unless integer indices on the far side of a
    slice separate them, in which case they come first."""
    where = [i for i, it in enumerate(items) if isinstance(it, Node)]
    if len(where) > 1:
        raise ShapeError("indexing with several index tensors is not supported: "
                         "gather along one axis at a time, or use take_along_axis")
    (pos,) = where
    idx = items[pos]
    if idx.dtype == "bool":
        raise ShapeError(f"cannot index with a bool mask {idx.type} (the result's shape would depend "
                         f"on the data): use where(mask, x, 0)")
    idx = _indices(idx, "an index tensor")
    ints = [i for i, it in enumerate(items) if not isinstance(it, (Node, tuple, list, slice)) and it is not None]
    y = basic(x, [None if i == pos else it for i, it in enumerate(items)])
    ax = pos - sum(1 for i in ints if i < pos)
    y = P("gather", y, idx, axis=ax)
    adv = sorted(ints + [pos])
    if adv != list(range(adv[0], adv[-1] + 1)) and ax:
        k = idx.rank
        perm = tuple(range(ax, ax + k)) + tuple(range(ax)) + tuple(range(ax + k, y.rank))
        y = P("transpose", y, perm=perm)
    return y
