"""Expressions -> values (IR nodes, numbers, dims, functions).

`ev(e, scope, name)` evaluates `e`; `name` is the instance name the outermost
layer call of a bound expression takes (`h1 = dense(...)` -> instance `h1`).
Every node is made inside `with at(loc)`, loc being the operator or call that
made it, so shape errors point there.
"""
from __future__ import annotations

from ..errors import SpecError, suggest
from ..ir import dims as D
from ..ir.dims import Sym, show
from ..ir.node import Node, at, const
from .builtins import BUILTINS, call_builtin
from ..syntax import ast as A
from .values import FUNCTIONS, BuiltinFn, LayerFn, Partial, RepeatFn, describe

_BINOPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow", "@": "matmul"}
_CMPS = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}
_PY_CMP = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
           ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def ev(e, scope, name: str | None = None):
    """The value of expression `e` in `scope`."""
    return _EVAL[type(e)](e, scope, name)


def _num(e, scope, name):
    return e.value


def _literal(e, scope, name):
    return e.value


def _name(e, scope, name):
    return scope.lookup(e.id, e.loc)


def _list(e, scope, name):
    return [ev(x, scope) for x in e.items]


def _dict(e, scope, name):
    raise SpecError("a dict is only allowed as a train setting (`lr_scale = {D: 2.0}`)", e.loc)


def _attr(e, scope, name):
    """`h1.W`, `enc.h1.W`: a param or state of a bound instance, by path."""
    if not isinstance(e.value, (A.Name, A.Attr)):       # `net(x).logits`: an output by name
        v = ev(e.value, scope)
        if hasattr(v, "names") and hasattr(v, "get"):
            return v.get(e.attr, e.loc)
    parts, base = [], e
    while isinstance(base, A.Attr):
        parts.append(base.attr)
        base = base.value
    if not isinstance(base, A.Name):
        raise SpecError("only a param path like `h1.W` can follow a `.`", e.loc)
    if scope.path(base.id) not in scope.ctx.instances:  # a bound name, or an `as` instance
        scope.lookup(base.id, base.loc)
    path = scope.path(".".join([base.id, *reversed(parts)]))
    leaves = {**scope.ctx.params, **scope.ctx.states}
    if path in leaves:
        return leaves[path]
    head = scope.path(base.id) + "."
    near = [p[len(scope.prefix):] for p in leaves if p.startswith(head)]
    rel = path[len(scope.prefix):]
    if not near:
        raise SpecError(f"`{base.id}` has no params: `{rel}` names nothing", e.loc)
    raise SpecError(f"no param `{rel}`" + suggest(rel, near) + f"; `{base.id}` has {', '.join(near)}", e.loc)


def as_tensor(v, loc):
    """A value used where a tensor is needed: nodes and numbers; a dim only if known."""
    if isinstance(v, Node) or (isinstance(v, (int, float, bool))):
        return v
    if isinstance(v, Sym):
        raise SpecError(f"the dim {show(v)} is not known when compiling, so it cannot be used "
                        f"as a number here", loc)
    raise SpecError(f"expected a tensor or a number, found {describe(v)}", loc)


def _binop(e, scope, name):
    a, b = ev(e.lhs, scope), ev(e.rhs, scope)
    loc = e.op_loc or e.loc
    if _static(a) and _static(b) and e.op != "@":
        return _static_arith(e.op, a, b, loc)
    with scope.at(loc):
        return call_builtin(_BINOPS[e.op], [as_tensor(a, e.lhs.loc), as_tensor(b, e.rhs.loc)], {})


def _static(v) -> bool:
    return isinstance(v, (int, float, Sym)) and not isinstance(v, bool)


def _static_arith(op, a, b, loc):
    """Arithmetic on numbers and dims at compile time (dims stay dims)."""
    if isinstance(a, Sym) or isinstance(b, Sym):
        if isinstance(a, float) or isinstance(b, float):
            dim, num = (a, b) if isinstance(a, Sym) else (b, a)
            raise SpecError(f"cannot compute {_show_static(a)} {op} {_show_static(b)}: the dim {show(dim)} "
                            f"is an integer known only at run time and combines only with integers, "
                            f"found the number {num!r}", loc)
        try:
            if op == "/":
                return D.floordiv(a, b)
            if op == "**" and isinstance(b, int) and b >= 0:
                out = 1
                for _ in range(b):
                    out = D.mul(out, a)
                return out
            return {"+": D.add, "-": D.sub, "*": D.mul}[op](a, b)
        except (KeyError, ValueError) as err:
            raise SpecError(f"cannot compute {show(a)} {op} {show(b)} as a dim: {err}", loc) from None
    try:
        if op == "/":
            if isinstance(a, int) and isinstance(b, int) and b != 0 and a % b == 0:
                return a // b                      # exact: stays an int (a dim)
            return a / b
        if op == "**":
            if isinstance(a, int) and isinstance(b, int) and abs(b) > 64:
                a = float(a)                       # keep huge powers from taking forever
            out = a ** b
            return out if isinstance(out, (int, float)) and not isinstance(out, complex) else float("nan")
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b}[op]()
    except (ZeroDivisionError, OverflowError) as err:
        raise SpecError(f"cannot compute {a} {op} {b}: {err}", loc) from None


def _show_static(v) -> str:
    return show(v) if isinstance(v, Sym) else repr(v)


def _unary(e, scope, name):
    v = ev(e.operand, scope)
    if isinstance(v, bool):
        raise SpecError("cannot negate a boolean", e.loc)
    if isinstance(v, (int, float)):
        return -v
    if isinstance(v, Sym):
        return D.mul(-1, v)
    with scope.at(e.loc):
        return call_builtin("neg", [as_tensor(v, e.loc)], {})


def _compare(e, scope, name):
    a, b = ev(e.lhs, scope), ev(e.rhs, scope)
    loc = e.op_loc or e.loc
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return _PY_CMP[e.op](a, b)
    with scope.at(loc):
        return call_builtin(_CMPS[e.op], [as_tensor(a, e.lhs.loc), as_tensor(b, e.rhs.loc)], {})


def _index(e, scope, name):
    x = ev(e.value, scope)
    if not isinstance(x, Node):
        raise SpecError(f"only a tensor can be indexed, found {describe(x)}", e.loc)
    items = []
    for it in e.items:
        if isinstance(it, A.Slice):
            items.append(tuple(None if p is None else _index_dim(p, scope) for p in (it.lo, it.hi, it.step)))
        else:
            items.append(_index_dim(it, scope))
    with scope.at(e.loc):
        return call_builtin("index", [x, items], {})


def _index_dim(e, scope):
    v = ev(e, scope)
    if isinstance(v, Node):                      # an i64 index tensor: x[idx] gathers
        return v
    if isinstance(v, bool) or not (isinstance(v, int) or isinstance(v, Sym)):
        raise SpecError(f"an index must be an integer, a dim or an i64 tensor, found {describe(v)}", e.loc)
    return v


def _pipe(e, scope, name):
    """x |> f(a)  =  f(x, a)"""
    x = ev(e.lhs, scope)
    fn = ev_fn(e.rhs, scope)
    return scope.glob.calls.apply_fn(fn, [x], scope, name, e.rhs.loc)


def _call(e, scope, name):
    return scope.glob.calls.eval_call(e, scope, name)


def ev_fn(e, scope):
    """A function position: a function name, or a call with its leading tensors left open."""
    if isinstance(e, A.Call):
        return scope.glob.calls.partial(e, scope)
    v = ev(e, scope)
    if not isinstance(v, FUNCTIONS):
        raise SpecError(f"expected a function (a layer or a built-in function), found {describe(v)}", e.loc)
    return v


_EVAL = {
    A.Num: _num, A.Str: _literal, A.Bool: _literal, A.Name: _name, A.Attr: _attr,
    A.BinOp: _binop, A.UnaryOp: _unary, A.Compare: _compare, A.Pipe: _pipe, A.Call: _call,
    A.Index: _index, A.ListLit: _list, A.DictLit: _dict,
}
