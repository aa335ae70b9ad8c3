"""Built-ins, part 1: elementwise functions, operators, reductions, shape
functions and indexing. Each is a composition of primitives (no gradient
rules here: autodiff sees only the primitives)."""
from __future__ import annotations

from ..ir import dims as D
from ..ir.dims import Sym, show, show_shape
from ..ir.node import Node, ShapeError, apply as P
from .builtins_core import (builtin, known, need_float, norm_axes, norm_axis, prod, tensor,
                            unify)


# -- elementwise functions ------------------------------------------------------

def _unary(op: str, floats: bool = True):
    def fn(x):
        x = tensor(x)
        if floats:
            need_float(x, op)
        return P(op, x)
    fn.__name__ = op
    fn.__doc__ = f"{op}(x), elementwise"
    return builtin("x:tensor", name=op)(fn)


exp = _unary("exp")
log = _unary("log")
sqrt = _unary("sqrt")
relu = _unary("relu")
sigmoid = _unary("sigmoid")
tanh = _unary("tanh")
softplus = _unary("softplus")           # log(1 + e^x), stable in the primitive
abs_ = _unary("abs", floats=False)
sign = _unary("sign", floats=False)
stop_gradient = _unary("stop_gradient", floats=False)


@builtin("x:tensor")
def identity(x):
    """identity(x) = x"""
    return tensor(x)


@builtin("x:tensor")
def neg(x):
    """-x"""
    x = tensor(x)
    if x.dtype == "bool":
        raise ShapeError(f"cannot negate {x.type}")
    return P("neg", x)


def _binary(op: str, what: str):
    def fn(a, b):
        a, b = unify(a, b, what=what)
        return P(op, a, b)
    fn.__name__ = op
    fn.__doc__ = f"{op}(a, b), elementwise with NumPy broadcasting"
    return builtin("a:tensor, b:tensor", name=op)(fn)


add = _binary("add", "add")
sub = _binary("sub", "subtract")
mul = _binary("mul", "multiply")
div = _binary("div", "divide")
pow_ = _binary("pow", "raise")
maximum = _binary("maximum", "take the maximum of")
minimum = _binary("minimum", "take the minimum of")
lt = _binary("lt", "compare")
le = _binary("le", "compare")
gt = _binary("gt", "compare")
ge = _binary("ge", "compare")
eq = _binary("eq", "compare")
ne = _binary("ne", "compare")


@builtin("a:tensor, b:tensor")
def matmul(a, b):
    """a @ b, batched over leading dims; a vector operand is a row (left) or a column (right)."""
    a, b = unify(a, b, what="multiply")
    if a.rank == 0 or b.rank == 0:
        raise ShapeError(f"cannot multiply {a.type} by {b.type}: @ needs vectors or matrices")
    av, bv = a.rank == 1, b.rank == 1
    if av:
        a = P("unsqueeze", a, axes=(0,))
    if bv:
        b = P("unsqueeze", b, axes=(1,))
    y = P("matmul", a, b)
    drop = ((y.rank - 2,) if av else ()) + ((y.rank - 1,) if bv else ())
    return P("squeeze", y, axes=drop) if drop else y


@builtin("x:tensor, lo:tensor=None, hi:tensor=None")
def clip(x, lo=None, hi=None):
    """clip(x, lo, hi) = min(max(x, lo), hi)"""
    x = tensor(x)
    if lo is not None:
        x = maximum(x, lo)
    if hi is not None:
        x = minimum(x, hi)
    return x


@builtin("cond:tensor, a:tensor, b:tensor")
def where(cond, a, b):
    """where(c, a, b): a where c holds, b elsewhere"""
    if not isinstance(cond, Node) or cond.dtype != "bool":
        found = cond.type if isinstance(cond, Node) else repr(cond)
        raise ShapeError(f"where needs a bool condition (a comparison), found {found}")
    a, b = unify(a, b, what="select between")
    return P("where", cond, a, b)


@builtin("x:tensor, dtype:dtype")
def cast(x, dtype):
    """cast(x, dtype): convert to f32, f64, i64 or bool"""
    x = tensor(x)
    return x if x.dtype == dtype else P("cast", x, dtype=dtype)


# -- reductions -----------------------------------------------------------------

def _reduction(op: str, floats: bool):
    def fn(x, axis=None, keepdims=False):
        x = tensor(x)
        if floats:
            need_float(x, op)
        elif x.dtype == "bool":
            raise ShapeError(f"{op} needs a number tensor, found {x.type} (cast it first)")
        return P(op, x, axes=norm_axes(axis, x, op), keepdims=bool(keepdims))
    fn.__name__ = op
    fn.__doc__ = f"{op} over `axis` (None: all axes)"
    return builtin("x:tensor, axis:axes=None, keepdims:bool=False", name=op)(fn)


sum_ = _reduction("sum", floats=False)
mean = _reduction("mean", floats=True)
max_ = _reduction("max", floats=False)
min_ = _reduction("min", floats=False)


@builtin("x:tensor, axis:axes=None, keepdims:bool=False")
def logsumexp(x, axis=None, keepdims=False):
    """log sum exp x = m + log(sum(exp(x - m))), m = max x held constant (exact for any m)"""
    x = tensor(x)
    need_float(x, "logsumexp")
    axes = norm_axes(axis, x, "logsumexp")
    m = P("stop_gradient", P("max", x, axes=axes, keepdims=True))
    y = m + P("log", P("sum", P("exp", x - m), axes=axes, keepdims=True))
    return y if keepdims or not axes else P("squeeze", y, axes=axes)


@builtin("x:tensor, axis:int=None, keepdims:bool=False")
def argmax(x, axis=None, keepdims=False):
    """index of the largest entry along `axis` (None: of the flattened tensor), i64"""
    x = tensor(x)
    if axis is None:
        return P("argmax", reshape(x, (-1,)), axis=0, keepdims=False)
    return P("argmax", x, axis=norm_axis(axis, x.rank, x, "argmax"), keepdims=bool(keepdims))


# -- shape functions ------------------------------------------------------------

def _divide_out(total_dims: tuple, known_dims: list):
    """prod(total_dims) / prod(known_dims) as a dim, or None when not exact."""
    rest = list(total_dims)
    left = []
    for d in known_dims:                 # cancel equal factors first (symbolic dims)
        if d in rest and not known(d):
            rest.remove(d)
        else:
            left.append(d)
    num, den = prod(rest), prod(left)
    if not known(den) or den == 0:
        return None
    q = D.floordiv(num, den)
    return q if D.mul(q, den) == num else None


@builtin("x:tensor, shape:shape")
def reshape(x, shape):
    """reshape(x, shape); one dim may be -1 (inferred)"""
    x = tensor(x)
    shape = tuple(shape)
    holes = [i for i, d in enumerate(shape) if isinstance(d, int) and d == -1]
    if len(holes) > 1:
        raise ShapeError(f"reshape to {show_shape(shape)}: at most one dim may be -1")
    if holes:
        q = _divide_out(x.shape, [d for d in shape if not (isinstance(d, int) and d == -1)])
        if q is None:
            raise ShapeError(f"cannot reshape {x.type} to {show_shape(shape)}: the -1 cannot be inferred")
        shape = shape[:holes[0]] + (q,) + shape[holes[0] + 1:]
    if prod(x.shape) != prod(shape):
        raise ShapeError(f"cannot reshape {x.type} to {show_shape(shape)}: sizes differ")
    return x if shape == x.shape else P("reshape", x, shape=shape)


@builtin("x:tensor, perm:ints=None")
def transpose(x, perm=None):
    """transpose(x, perm); by default the axes are reversed (a matrix's transpose)"""
    x = tensor(x)
    if perm is None:
        perm = tuple(reversed(range(x.rank)))
    else:
        perm = (perm,) if isinstance(perm, int) else tuple(perm)
        if len(perm) != x.rank:
            raise ShapeError(f"transpose of {x.type} needs a permutation of {x.rank} axes, found {list(perm)}")
        perm = tuple(norm_axis(p, x.rank, x, "transpose") for p in perm)
    return x if perm == tuple(range(x.rank)) else P("transpose", x, perm=perm)


def _tensor_list(xs, fname):
    if not xs:
        raise ShapeError(f"{fname} needs at least one tensor")
    return unify(*xs, what=fname)


@builtin("xs:tensors, axis:int=0")
def concat(xs, axis=0):
    """concat([a, b, ...], axis): join along an existing axis"""
    xs = _tensor_list(xs, "concat")
    ranks = {x.rank for x in xs}
    if len(ranks) > 1:
        raise ShapeError("cannot concat " + " and ".join(str(x.type) for x in xs) + ": ranks differ")
    ax = norm_axis(axis, xs[0].rank, xs[0], "concat")
    return xs[0] if len(xs) == 1 else P("concat", *xs, axis=ax)


@builtin("xs:tensors, axis:int=0")
def stack(xs, axis=0):
    """stack([a, b, ...], axis): join along a new axis"""
    xs = _tensor_list(xs, "stack")
    r = xs[0].rank
    for x in xs[1:]:
        if x.shape != xs[0].shape:
            raise ShapeError(f"cannot stack {xs[0].type} and {x.type}: shapes differ")
    ax = norm_axis(axis, r + 1, None, "stack")
    parts = [P("unsqueeze", x, axes=(ax,)) for x in xs]
    return parts[0] if len(parts) == 1 else P("concat", *parts, axis=ax)


@builtin("x:tensor")
def flatten(x):
    """[N, ...] -> [N, prod(...)]"""
    x = tensor(x)
    if x.rank < 1:
        raise ShapeError(f"flatten needs a tensor with a batch axis, found {x.type}")
    return reshape(x, (x.shape[0], prod(x.shape[1:])))


@builtin("x:tensor, shape:shape")
def expand(x, shape):
    """broadcast x to `shape`"""
    x = tensor(x)
    shape = tuple(shape)
    return x if shape == x.shape else P("expand", x, shape=shape)


@builtin("x:tensor, axis:axes=None")
def squeeze(x, axis=None):
    """drop size-1 axes (None: every axis known to be 1)"""
    x = tensor(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if known(d) and d == 1)
    else:
        axes = norm_axes(axis, x, "squeeze")
        for a in axes:
            if x.shape[a] != 1:
                raise ShapeError(f"cannot squeeze axis {a} of {x.type}: it has size {show(x.shape[a])}, not 1")
    return P("squeeze", x, axes=axes) if axes else x


@builtin("x:tensor, axis:axes")
def unsqueeze(x, axis):
    """insert size-1 axes at `axis` (numbered in the result)"""
    x = tensor(x)
    axis = (axis,) if not isinstance(axis, (list, tuple)) else tuple(axis)
    r = x.rank + len(axis)
    axes = tuple(sorted(norm_axis(a, r, None, "unsqueeze") for a in axis))
    if len(set(axes)) != len(axes):
        raise ShapeError(f"unsqueeze: axes {list(axis)} repeat an axis")
    return P("unsqueeze", x, axes=axes)


def _fill(value, shape, dtype):
    return P("fill", value=value, shape=tuple(shape), dtype=dtype)


@builtin("shape:shape, dtype:dtype='f32'")
def zeros(shape, dtype="f32"):
    """a tensor of zeros (dims may be symbolic)"""
    return _fill(False if dtype == "bool" else 0, shape, dtype)


@builtin("shape:shape, dtype:dtype='f32'")
def ones(shape, dtype="f32"):
    """a tensor of ones (dims may be symbolic)"""
    return _fill(True if dtype == "bool" else 1, shape, dtype)


# -- indexing: x[i, a:b:s, :] -----------------------------------------------------

def _from_end(i, d):
    """A negative int counts from the end: -1 on a dim T is T - 1."""
    return D.add(d, i) if isinstance(i, int) and i < 0 else i


def _never_negative(d) -> bool:
    return not known(d) or d >= 0


def _fits(lo, hi) -> bool:
    """lo <= hi, unless that cannot be decided (symbolic)."""
    return _never_negative(D.sub(hi, lo))


def _entry_text(it) -> str:
    if isinstance(it, slice):
        it = (it.start, it.stop, it.step)
    if isinstance(it, (tuple, list)):
        a, b, *s = it
        txt = f"{'' if a is None else show(a)}:{'' if b is None else show(b)}"
        return txt + (f":{show(s[0])}" if s and s[0] is not None else "")
    return ":" if it is None else show(it)


@builtin("x:tensor, items:items")
def index(x, items):
    """x[items]: per axis an int (drops the axis; negative counts from the end),
    a slice (start, stop, step) of ints / dims / None, None for `:`, or one
    i64 tensor (a gather along that axis)."""
    x = tensor(x)
    items = list(items)
    if any(isinstance(it, Node) for it in items):      # x[idx] with an i64 tensor: a gather
        from .builtins_index import tensor_index
        return tensor_index(x, items, index)
    if len(items) > x.rank:
        raise ShapeError(f"too many indices ({len(items)}) for {x.type}")
    spec, drop = [], []
    for ax, it in enumerate(items):
        d = x.shape[ax]
        where = f"index [{', '.join(_entry_text(i) for i in items)}] of {x.type}"
        if it is None:
            continue
        if isinstance(it, slice):
            it = (it.start, it.stop, it.step)
        if isinstance(it, (tuple, list)):           # a slice
            start, stop, step = (tuple(it) + (None,))[:3]
            step = 1 if step is None else step
            if not isinstance(step, int) or step < 1:
                raise ShapeError(f"{where}: slice steps must be positive integers, found {show(step)}")
            start = 0 if start is None else _from_end(start, d)
            stop = d if stop is None else _from_end(stop, d)
            if not (_never_negative(start) and _fits(start, stop) and _fits(stop, d)):
                raise ShapeError(f"{where}: slice {_entry_text(it)} is out of range for axis {ax} "
                                 f"of size {show(d)}")
            if (start, stop, step) != (0, d, 1):
                spec.append((ax, start, stop, step))
        elif isinstance(it, (int, Sym)) and not isinstance(it, bool):   # an index
            i = _from_end(it, d)
            if not (_never_negative(i) and _never_negative(D.sub(D.sub(d, i), 1))):
                raise ShapeError(f"{where}: index {show(it)} is out of range for axis {ax} of size {show(d)}")
            spec.append((ax, i, D.add(i, 1), 1))
            drop.append(ax)
        else:
            raise ShapeError(f"{where}: cannot index with {it!r}")
    y = P("slice", x, spec=tuple(spec)) if spec else x
    return P("squeeze", y, axes=tuple(drop)) if drop else y

