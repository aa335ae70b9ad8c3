"""dslc.builder — write specs in Python, with the language's full power.

The builder records the very syntax tree that the `.dl` parser would produce
(each node stamped with the Python file and line that made it) and checks it
with the same elaborator, so a built program has the same IR, the same param
paths and the same errors as the text — pointing at your Python line — and
`to_dl()` prints it as a spec.

    from dslc import builder as dl

    prog = dl.Program()
    H = prog.const("H", 128)

    with prog.model("digits") as m:
        m.x = dl.input("f32[B, 64]")
        m.y = dl.input("i64[B]")
        m.h1 = dl.dense(m.x, H, act=dl.relu)            # params h1.W, h1.b
        m.h2 = dl.dense(m.h1, H, act=dl.relu)
        m.logits = dl.dense(m.h2, 10)
        m.output("probs", dl.softmax(m.logits))
        m.loss(dl.cross_entropy(m.logits, m.y))
        m.metric("acc", dl.accuracy(m.logits, m.y))

    prog.train("digits", data="digits", split=0.8, optimizer=dl.adam(lr=1e-3), batch=64, epochs=30)
    compiled = dslc.compile(prog.build())

Names: `m.h1 = e` binds h1 (and names the layer instance of e, as `h1 = e`
does); `m["mu", "logvar"] = e` unpacks; `m.h1` reads a binding; `m.enc.W`
reads an instance's param. Any other `dl.NAME` is the built-in, standard
layer or setting function NAME (`dl.relu`, `dl.dense`, `dl.scan`, `dl.adam`,
`dl.glorot_uniform`). `x | f(a)` is the pipeline `x |> f(a)`; `call.named("D")`
is `call as D`; `dl.t` is the step counter in lr expressions.

Layers are Python functions whose first argument is the layer's own scope:

    @prog.layer
    def mlp2(L, x: "[B, n]", h: int, out: int):
        L.hid = dl.dense(x, h, act=dl.relu)
        return dl.dense(L.hid, out)
"""
from __future__ import annotations

import dataclasses
import inspect
import linecache
import os

from .elaborate import elaborate
from .errors import Loc, Source, SpecError
from .syntax import ast as A
from .syntax.fmt import expr, format_program
from .syntax.parser import parse

_HERE = os.path.abspath(__file__)
_SOURCES: dict[str, Source] = {}


def _where() -> Loc:
    """The location of the user's builder call: the first frame outside this file."""
    f = inspect.currentframe()
    while f is not None and os.path.abspath(f.f_code.co_filename) == _HERE:
        f = f.f_back
    if f is None:
        return Loc("<builder>", 1, 1)
    fn = f.f_code.co_filename
    if fn not in _SOURCES:
        _SOURCES[fn] = Source(fn, "".join(linecache.getlines(fn)))
    pos = inspect.getframeinfo(f, context=0).positions
    col = (pos.col_offset + 1) if pos is not None and pos.col_offset is not None else 1
    return Loc(fn, f.f_lineno, col, source=_SOURCES[fn])


# -- expressions -----------------------------------------------------------------------
def node(v, loc: Loc | None = None):
    """A Python value as an AST expression."""
    loc = loc or _where()
    if isinstance(v, Expr):
        return v._node
    if isinstance(v, bool):
        return A.Bool(v, loc=loc)
    if isinstance(v, (int, float)):
        num = A.Num(abs(v), isinstance(v, int), text=None, loc=loc)
        return A.UnaryOp("-", num, loc=loc) if v < 0 else num
    if isinstance(v, str):
        return A.Str(v, loc=loc)
    if isinstance(v, (list, tuple)):
        return A.ListLit([node(x, loc) for x in v], loc=loc)
    if isinstance(v, dict):
        return A.DictLit([(A.Name(k, loc=loc) if isinstance(k, str) else node(k, loc), node(x, loc))
                          for k, x in v.items()], loc=loc)
    if isinstance(v, slice):
        raise SpecError("a slice is only allowed inside [ ]", loc)
    raise SpecError(f"cannot use the Python value {v!r} in a spec", loc)


def _sub(v, loc):
    if isinstance(v, slice):
        return A.Slice(None if v.start is None else node(v.start, loc), None if v.stop is None else node(v.stop, loc),
                       None if v.step is None else node(v.step, loc), loc=loc)
    return node(v, loc)


class Expr:
    """A spec expression under construction; operators build syntax, not values."""

    __slots__ = ("_node",)

    def __init__(self, n):
        object.__setattr__(self, "_node", n)

    def _bin(self, op, other, swap=False):
        loc = _where()
        a, b = (node(other, loc), self._node) if swap else (self._node, node(other, loc))
        return Expr(A.BinOp(op, a, b, loc=a.loc or loc, op_loc=loc))

    def __add__(self, o): return self._bin("+", o)
    def __radd__(self, o): return self._bin("+", o, True)
    def __sub__(self, o): return self._bin("-", o)
    def __rsub__(self, o): return self._bin("-", o, True)
    def __mul__(self, o): return self._bin("*", o)
    def __rmul__(self, o): return self._bin("*", o, True)
    def __truediv__(self, o): return self._bin("/", o)
    def __rtruediv__(self, o): return self._bin("/", o, True)
    def __matmul__(self, o): return self._bin("@", o)
    def __rmatmul__(self, o): return self._bin("@", o, True)
    def __pow__(self, o): return self._bin("**", o)
    def __rpow__(self, o): return self._bin("**", o, True)

    def __neg__(self):
        return Expr(A.UnaryOp("-", self._node, loc=_where()))

    def _cmp(self, op, o):
        loc = _where()
        return Expr(A.Compare(op, self._node, node(o, loc), loc=self._node.loc or loc, op_loc=loc))

    def __lt__(self, o): return self._cmp("<", o)
    def __le__(self, o): return self._cmp("<=", o)
    def __gt__(self, o): return self._cmp(">", o)
    def __ge__(self, o): return self._cmp(">=", o)
    def __eq__(self, o): return self._cmp("==", o)      # noqa: E711 - builds a comparison
    def __ne__(self, o): return self._cmp("!=", o)
    __hash__ = object.__hash__

    def __getitem__(self, key):
        loc = _where()
        items = key if isinstance(key, tuple) else (key,)
        return Expr(A.Index(self._node, [_sub(k, loc) for k in items], loc=self._node.loc or loc))

    def __call__(self, *args, **kwargs):
        loc = _where()
        return Expr(A.Call(self._node, [node(a, loc) for a in args],
                           [A.Keyword(k, node(v, loc), loc=loc) for k, v in kwargs.items()], loc=loc))

    def __or__(self, fn):
        """`x | f(a)` is the pipeline `x |> f(a)`."""
        loc = _where()
        return Expr(A.Pipe(self._node, node(fn, loc), loc=self._node.loc or loc, op_loc=loc))

    pipe = __or__

    def named(self, name: str) -> "Expr":
        """`call.named("D")` is `call as D`: the instance name (equal names share params)."""
        if not isinstance(self._node, A.Call):
            raise SpecError("only a call can be named (`f(x).named(\"D\")`)", _where())
        return Expr(dataclasses.replace(self._node, as_name=name))

    def __getattr__(self, attr):
        if attr.startswith("_"):
            raise AttributeError(attr)
        return Expr(A.Attr(self._node, attr, loc=_where()))

    def __iter__(self):
        raise TypeError("unpack several results with m['a', 'b'] = f(...)")

    def __bool__(self):
        raise TypeError("a spec expression has no truth value while it is being built")

    def __repr__(self):
        return f"<dl {expr(self._node)}>"


def __getattr__(name: str) -> Expr:
    """`dl.relu`, `dl.dense`, `dl.adam`, ...: the function (or setting) of that name."""
    if name.startswith("__"):
        raise AttributeError(name)
    return Expr(A.Name(name, loc=_where()))


t = Expr(A.Name("t"))      # the step counter in lr / schedule expressions


# -- declarations ------------------------------------------------------------------------
def _reloc(n, loc):
    """A copy of an AST subtree with every location set to loc."""
    if isinstance(n, list):
        return [_reloc(x, loc) for x in n]
    if isinstance(n, tuple):
        return tuple(_reloc(x, loc) for x in n)
    if not dataclasses.is_dataclass(n):
        return n
    changes = {f.name: _reloc(getattr(n, f.name), loc) for f in dataclasses.fields(n)
               if f.name not in ("loc", "text") and not f.name.endswith("_loc") and f.name != "target_locs"}
    for f in dataclasses.fields(n):
        if f.name == "loc" or (f.name.endswith("_loc") and getattr(n, f.name) is not None):
            changes[f.name] = loc
    return dataclasses.replace(n, **changes)


def tensor_type(text: str | A.TensorType, loc: Loc | None = None) -> A.TensorType:
    """A type written as in the language: "f32[B, 64]", "[*, n]", "i64[B]"."""
    loc = loc or _where()
    if isinstance(text, A.TensorType):
        return text
    try:
        tree = parse(f"model _t {{\n input _x: {text}\n}}", "<type>")
    except SpecError as e:
        raise SpecError(f"bad type {text!r}: {e.message}", loc) from None
    return _reloc(tree.items[0].body[0].type, loc)


@dataclasses.dataclass
class _Decl:
    kind: str                 # input | param | state
    type: A.TensorType
    init: object = None
    loc: Loc | None = None


def input(type: str) -> _Decl:  # noqa: A001 - mirrors the statement's name
    """`m.x = dl.input("f32[B, 64]")` is `input x: f32[B, 64]`."""
    loc = _where()
    return _Decl("input", tensor_type(type, loc), None, loc)


def _init(init, loc):
    return A.Name(init, loc=loc) if isinstance(init, str) else node(init, loc)


def param(type: str, init="zeros") -> _Decl:
    """`L.W = dl.param("[n, m]", dl.glorot_uniform)` is `param W: [n, m] ~ glorot_uniform`."""
    loc = _where()
    return _Decl("param", tensor_type(type, loc), _init(init, loc), loc)


def state(type: str, init="zeros") -> _Decl:
    """`L.s = dl.state("[n]", "zeros")` is `state s: [n] ~ zeros`."""
    loc = _where()
    return _Decl("state", tensor_type(type, loc), _init(init, loc), loc)


class Block:
    """The body of a model or layer being built: attribute assignment binds names."""

    def __init__(self, kind: str):
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_body", [])

    def _add(self, stmt):
        self._body.append(stmt)

    def __setattr__(self, name, value):
        loc = _where()
        if isinstance(value, _Decl):
            if value.kind == "input":
                self._add(A.Input(name, value.type, loc=loc))
            elif value.kind == "param":
                self._add(A.ParamDecl(name, value.type, value.init, loc=loc))
            else:
                self._add(A.StateDecl(name, value.type, value.init, loc=loc))
        else:
            self._add(A.Assign([name], node(value, loc), loc=loc, target_locs=[loc]))

    def __setitem__(self, names, value):
        loc = _where()
        names = list(names) if isinstance(names, tuple) else [names]
        self._add(A.Assign(names, node(value, loc), loc=loc, target_locs=[loc] * len(names)))

    def __getattr__(self, name) -> Expr:
        if name.startswith("_"):
            raise AttributeError(name)
        return Expr(A.Name(name, loc=_where()))

    def __getitem__(self, name) -> Expr:
        return Expr(A.Name(name, loc=_where()))

    def output(self, name: str, value=None) -> None:
        """`output name = value` (or `output name` for an existing binding)."""
        loc = _where()
        self._add(A.Output(name, None if value is None else node(value, loc), loc=loc))

    def loss(self, value, name: str | None = None, wrt=None) -> None:
        """`loss = value`, or `loss name = value wrt G, D.h1` with wrt a list of paths."""
        loc = _where()
        wrt = [wrt] if isinstance(wrt, str) else list(wrt or [])
        self._add(A.Loss(name, node(value, loc), wrt, loc=loc, wrt_locs=[loc] * len(wrt)))

    def metric(self, name: str, value) -> None:
        loc = _where()
        self._add(A.Metric(name, node(value, loc), loc=loc))

    def update(self, name: str, value) -> None:
        """`update name = value`: the state's new value in training."""
        loc = _where()
        self._add(A.Update(name, node(value, loc), loc=loc))


class _ModelCtx:
    def __init__(self, prog: "Program", name: str, doc: str | None, loc: Loc):
        self.prog, self.name, self.doc, self.loc = prog, name, doc, loc
        self.block = Block("model")

    def __enter__(self) -> Block:
        return self.block

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.prog._items.append(A.Model(self.name, self.block._body, self.doc, loc=self.loc))
            self.prog.check()
        return False


class Program:
    """A spec under construction: consts, layers, models and train blocks, in order."""

    def __init__(self, filename: str | None = None):
        self._items: list = []
        self.filename = filename or _where().filename

    def const(self, name: str, value) -> Expr:
        """`const NAME = value`; returns the name, for use in expressions."""
        loc = _where()
        self._items.append(A.Const(name, node(value, loc), None, loc=loc))
        return Expr(A.Name(name, loc=loc))

    def layer(self, fn=None, *, name: str | None = None, doc: str | None = None):
        """Decorator: a Python function (scope, args...) -> result(s) becomes a layer."""
        def make(f):
            loc = _where()
            sig = list(inspect.signature(f, eval_str=True).parameters.values())[1:]
            args = [_arg(p, loc) for p in sig]
            block = Block("layer")
            out = f(block, *[Expr(A.Name(p.name, loc=loc)) for p in sig])
            if out is None:
                raise SpecError(f"layer `{f.__name__}` returns nothing; return its result", loc)
            outs = list(out) if isinstance(out, tuple) else [out]
            block._add(A.Return([node(o, loc) for o in outs], loc=loc))
            lname = name or f.__name__
            self._items.append(A.Layer(lname, args, block._body, doc if doc is not None else inspect.getdoc(f),
                                       loc=loc))
            return Expr(A.Name(lname, loc=loc))
        return make(fn) if fn is not None else make

    def model(self, name: str, doc: str | None = None) -> _ModelCtx:
        """`with prog.model("digits") as m:` — the statements of model `digits`."""
        return _ModelCtx(self, name, doc, _where())

    def train(self, model: str, **settings) -> None:
        """`train model { setting = value ... }`, settings in the order given."""
        loc = _where()
        self._items.append(A.Train(model, [A.Setting(k, node(v, loc), loc=loc) for k, v in settings.items()],
                                   None, loc=loc))

    @property
    def ast(self) -> A.Program:
        return A.Program(list(self._items))

    def build(self):
        """The checked program (dslc.ir.model.Program); raises SpecError at your line."""
        prog = elaborate(self.ast, self.filename)
        prog.ast = self.ast
        return prog

    check = build

    def to_dl(self) -> str:
        """The program as `.dl` text."""
        return format_program(self.ast)


def _arg(p: inspect.Parameter, loc) -> A.Arg:
    ann, default = p.annotation, p.default
    d = None if default is inspect.Parameter.empty else node(default, loc)
    if ann is int:
        return A.Arg(p.name, None, "int", d, loc=loc)
    if ann is float:
        return A.Arg(p.name, None, "float", d, loc=loc)
    if isinstance(ann, (str, A.TensorType)):
        return A.Arg(p.name, tensor_type(ann, loc), "tensor", d, loc=loc)
    kind = "fn" if isinstance(d, (A.Name, A.Call, A.Attr)) else "any"
    return A.Arg(p.name, None, kind, d, loc=loc)
