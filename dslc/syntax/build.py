"""Parse tree (Lark) -> AST (dslc.syntax.ast). One method per grammar alias."""
from __future__ import annotations

from lark import Token, Transformer, v_args

from ..errors import Loc, SpecError, Source, suggest
from . import ast as A

_SCALAR_KINDS = ("int", "float")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def unescape(body: str) -> str:
    """The value of a string literal's body (between the quotes)."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], "\\" + body[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


@v_args(meta=True)
class ToAst(Transformer):
    """Turns the Lark tree into AST nodes with locations into `source`."""

    def __init__(self, source: Source):
        super().__init__(visit_tokens=False)
        self.source = source

    # -- locations
    def at(self, x) -> Loc:
        """Loc of a token, a Lark meta, or an AST node."""
        if isinstance(x, Token):
            return Loc(self.source.filename, x.line, x.column, self.source)
        if hasattr(x, "loc"):
            return x.loc
        return Loc(self.source.filename, x.line, x.column, self.source)

    # -- items
    def start(self, meta, ch):
        return [c for c in ch if c is not None]

    def const(self, meta, ch):
        name, expr = ch
        return A.Const(str(name), expr, loc=self.at(meta), end_line=meta.end_line)

    def layer(self, meta, ch):
        name, *rest = ch
        params = rest[0] if len(rest) == 2 else []
        body = rest[-1]
        return A.Layer(str(name), params, body, loc=self.at(meta), end_line=meta.end_line)

    def model(self, meta, ch):
        name, body = ch
        return A.Model(str(name), body, loc=self.at(meta), end_line=meta.end_line)

    def train(self, meta, ch):
        name, *settings = ch
        return A.Train(str(name), settings, loc=self.at(meta), end_line=meta.end_line)

    def setting(self, meta, ch):
        name, expr = ch
        return A.Setting(str(name), expr, loc=self.at(name))

    def params(self, meta, ch):
        return list(ch)

    def arg(self, meta, ch):
        name, typ, default = ch
        if isinstance(typ, A.TensorType):
            kind = "tensor"
        elif isinstance(typ, Token):
            if str(typ) not in _SCALAR_KINDS:
                raise SpecError(
                    f"unknown argument type `{typ}`: expected `int`, `float` or a tensor type "
                    f"like `[*, n]`" + suggest(str(typ), _SCALAR_KINDS), self.at(typ))
            kind, typ = str(typ), None
        elif isinstance(default, (A.Name, A.Call, A.Attr)):
            kind = "fn"
        else:
            kind = "any"
        return A.Arg(str(name), typ, kind, default, loc=self.at(name))

    def block(self, meta, ch):
        return list(ch)

    # -- statements
    def input(self, meta, ch):
        name, typ = ch
        return A.Input(str(name), typ, loc=self.at(meta))

    def param(self, meta, ch):
        name, typ, init = ch
        return A.ParamDecl(str(name), typ, init, loc=self.at(meta))

    def state(self, meta, ch):
        name, typ, init = ch
        return A.StateDecl(str(name), typ, init, loc=self.at(meta))

    def assign(self, meta, ch):
        *names, expr = ch
        return A.Assign([str(n) for n in names], expr, loc=self.at(meta),
                        target_locs=[self.at(n) for n in names])

    def output(self, meta, ch):
        name, expr = ch
        return A.Output(str(name), expr, loc=self.at(meta))

    def loss(self, meta, ch):
        name, expr, wrt = ch
        paths = wrt or []
        return A.Loss(str(name) if name is not None else None, expr, [p for p, _ in paths],
                      loc=self.at(meta), wrt_locs=[l for _, l in paths])

    def wrt_list(self, meta, ch):
        return list(ch)

    def dotted(self, meta, ch):
        return ".".join(str(t) for t in ch), self.at(ch[0])

    def metric(self, meta, ch):
        name, expr = ch
        return A.Metric(str(name), expr, loc=self.at(meta))

    def __default__(self, data, children, meta):   # `return` is a Python keyword
        if data == "return":
            return A.Return(list(children), loc=self.at(meta))
        raise AssertionError(f"no AST rule for {data}")

    # -- types
    def tensor_type(self, meta, ch):
        dtype, *rest = ch
        dims = rest[0] if rest else []
        if dtype is None:
            return A.TensorType("f32", dims, loc=self.at(meta), explicit_dtype=False)
        return A.TensorType(str(dtype), dims, loc=self.at(meta), dtype_loc=self.at(dtype))

    def dims(self, meta, ch):
        return list(ch)

    def star(self, meta, ch):
        return A.Star(loc=self.at(ch[0]))

    # -- expressions
    def pipe(self, meta, ch):
        lhs, op, rhs = ch
        return A.Pipe(lhs, rhs, loc=self.at(meta), op_loc=self.at(op))

    def compare(self, meta, ch):
        lhs, op, rhs = ch
        return A.Compare(str(op), lhs, rhs, loc=self.at(meta), op_loc=self.at(op))

    def binop(self, meta, ch):
        lhs, op, rhs = ch
        return A.BinOp(str(op), lhs, rhs, loc=self.at(meta), op_loc=self.at(op))

    def neg(self, meta, ch):
        _, operand = ch
        return A.UnaryOp("-", operand, loc=self.at(meta))

    def as_name(self, meta, ch):
        call, name = ch
        if not isinstance(call, A.Call) or call.as_name is not None:
            raise SpecError(f"`as {name}` names a layer call's instance, so it must follow a call "
                            f"like `f(x) as {name}`", self.at(name))
        return A.Call(call.func, call.args, call.kwargs, str(name), loc=call.loc, as_loc=self.at(name))

    def call(self, meta, ch):
        func, *rest = ch
        args, kwargs = [], []
        for a in (rest[0] if rest else []):
            if isinstance(a, A.Keyword):
                if any(k.name == a.name for k in kwargs):
                    raise SpecError(f"keyword argument `{a.name}` is given twice", a.loc)
                kwargs.append(a)
            elif kwargs:
                raise SpecError("a positional argument cannot follow keyword arguments", a.loc)
            else:
                args.append(a)
        return A.Call(func, args, kwargs, loc=self.at(meta))

    def call_args(self, meta, ch):
        return list(ch)

    def kwarg(self, meta, ch):
        name, value = ch
        return A.Keyword(str(name), value, loc=self.at(name))

    def index(self, meta, ch):
        value, items = ch
        return A.Index(value, items, loc=self.at(meta))

    def subscripts(self, meta, ch):
        return list(ch)

    def slice(self, meta, ch):
        parts = list(ch) + [None] * (3 - len(ch))
        return A.Slice(*parts, loc=self.at(meta))

    def attr(self, meta, ch):
        value, name = ch
        return A.Attr(value, str(name), loc=self.at(meta))

    def name(self, meta, ch):
        return A.Name(str(ch[0]), loc=self.at(ch[0]))

    def number(self, meta, ch):
        text = str(ch[0])
        is_int = text.isdigit()
        value = int(text) if is_int else float(text)
        return A.Num(value, is_int, text=text, loc=self.at(ch[0]))

    def string(self, meta, ch):
        return A.Str(unescape(str(ch[0])[1:-1]), loc=self.at(ch[0]))

    def true(self, meta, ch):
        return A.Bool(True, loc=self.at(meta))

    def false(self, meta, ch):
        return A.Bool(False, loc=self.at(meta))

    def list(self, meta, ch):
        return A.ListLit(ch[0] if ch else [], loc=self.at(meta))

    def dict(self, meta, ch):
        return A.DictLit(ch[0] if ch else [], loc=self.at(meta))

    def items(self, meta, ch):
        return list(ch)

    def pairs(self, meta, ch):
        return list(ch)

    def pair(self, meta, ch):
        return (ch[0], ch[1])
