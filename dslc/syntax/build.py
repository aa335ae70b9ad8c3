"""Parse tree (Lark) -> AST (dslc.syntax.ast). One method per grammar alias."""
from __future__ import annotations

import dataclasses

from lark import Token, Transformer

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


class ToAst(Transformer):
    """Builds AST nodes while the LALR parser reduces (it is Lark's `transformer=`).

    A node's place is its first token's: keywords and opening brackets that
    start a node are named terminals in the grammar so that they stay in
    `ch`. `source` is set for each parse (the parser is built once)."""

    source: Source = Source("<text>", "")

    def at(self, x) -> Loc:
        """Loc of a token or of an AST node."""
        if isinstance(x, Token):
            return Loc(self.source.filename, x.line, x.column, self.source)
        return x.loc

    # -- items
    def start(self, ch):
        return [c for c in ch if c is not None]

    def const(self, ch):
        kw, name, expr = ch
        return A.Const(str(name), expr, loc=self.at(kw), end_line=kw.line)

    def import_item(self, ch):
        kw, path, name = ch
        return A.Import(unescape(str(path)[1:-1]), str(name), loc=self.at(kw), end_line=kw.line)

    def layer(self, ch):
        kw, name, *rest = ch
        params = rest[0] if len(rest) == 2 else []
        body, end = rest[-1]
        return A.Layer(str(name), params, body, loc=self.at(kw), end_line=end.line)

    def model(self, ch):
        kw, name, (body, end) = ch
        return A.Model(str(name), body, loc=self.at(kw), end_line=end.line)

    def train(self, ch):
        kw, name, *settings, end = ch
        return A.Train(str(name), settings, loc=self.at(kw), end_line=end.line)

    def setting(self, ch):
        name, expr = ch
        return A.Setting(str(name), expr, loc=self.at(name))

    def params(self, ch):
        return list(ch)

    def arg(self, ch):
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

    def block(self, ch):
        *stmts, end = ch
        return stmts, end

    # -- statements
    def input(self, ch):
        kw, name, typ = ch
        return A.Input(str(name), typ, loc=self.at(kw))

    def param(self, ch):
        kw, name, typ, init = ch
        return A.ParamDecl(str(name), typ, init, loc=self.at(kw))

    def state(self, ch):
        kw, name, typ, init = ch
        return A.StateDecl(str(name), typ, init, loc=self.at(kw))

    def assign(self, ch):
        *names, expr = ch
        return A.Assign([str(n) for n in names], expr, loc=self.at(names[0]),
                        target_locs=[self.at(n) for n in names])

    def output(self, ch):
        kw, name, expr = ch
        return A.Output(str(name), expr, loc=self.at(kw))

    def loss(self, ch):
        kw, name, expr, wrt = ch
        paths = wrt or []
        return A.Loss(str(name) if name is not None else None, expr, [p for p, _ in paths],
                      loc=self.at(kw), wrt_locs=[l for _, l in paths])

    def wrt_list(self, ch):
        return list(ch)

    def dotted(self, ch):
        return ".".join(str(t) for t in ch), self.at(ch[0])

    def metric(self, ch):
        kw, name, expr = ch
        return A.Metric(str(name), expr, loc=self.at(kw))

    def ret(self, ch):
        kw, *exprs = ch
        return A.Return(exprs, loc=self.at(kw))

    def update(self, ch):
        kw, name, expr = ch
        return A.Update(str(name), expr, loc=self.at(kw))

    # -- types
    def tensor_type(self, ch):
        dtype, bracket, *rest = ch
        dims = rest[0] if rest else []
        if dtype is None:
            return A.TensorType("f32", dims, loc=self.at(bracket), explicit_dtype=False)
        return A.TensorType(str(dtype), dims, loc=self.at(dtype), dtype_loc=self.at(dtype))

    def dims(self, ch):
        return list(ch)

    def star(self, ch):
        return A.Star(loc=self.at(ch[0]))

    # -- expressions
    def pipe(self, ch):
        lhs, op, rhs = ch
        return A.Pipe(lhs, rhs, loc=lhs.loc, op_loc=self.at(op))

    def compare(self, ch):
        lhs, op, rhs = ch
        return A.Compare(str(op), lhs, rhs, loc=lhs.loc, op_loc=self.at(op))

    def binop(self, ch):
        lhs, op, rhs = ch
        return A.BinOp(str(op), lhs, rhs, loc=lhs.loc, op_loc=self.at(op))

    def neg(self, ch):
        op, operand = ch
        return A.UnaryOp("-", operand, loc=self.at(op))

    def as_name(self, ch):
        call, name = ch
        if not isinstance(call, A.Call) or call.as_name is not None:
            raise SpecError(f"`as {name}` names a layer call's instance, so it must follow a call "
                            f"like `f(x) as {name}`", self.at(name))
        return A.Call(call.func, call.args, call.kwargs, str(name), loc=call.loc, as_loc=self.at(name))

    def call(self, ch):
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
        return A.Call(func, args, kwargs, loc=func.loc)

    def call_args(self, ch):
        return list(ch)

    def kwarg(self, ch):
        name, value = ch
        return A.Keyword(str(name), value, loc=self.at(name))

    def index(self, ch):
        value, items = ch
        return A.Index(value, items, loc=value.loc)

    def subscripts(self, ch):
        return list(ch)

    def slice(self, ch):
        lo, colon, hi, *step = ch            # step: [] or [COLON, step]
        first = lo if lo is not None else colon
        return A.Slice(lo, hi, step[1] if step else None, loc=self.at(first))

    def attr(self, ch):
        value, name = ch
        return A.Attr(value, str(name), loc=value.loc)

    def name(self, ch):
        return A.Name(str(ch[0]), loc=self.at(ch[0]))

    def number(self, ch):
        text = str(ch[0])
        is_int = text.isdigit()
        if is_int and (len(text.lstrip("0")) > 19 or int(text.lstrip("0") or "0") > 2 ** 63 - 1):
            shown = text if len(text) <= 24 else f"{text[:8]}…({len(text)} digits)"
            raise SpecError(f"the integer {shown} is too large: integers must fit in 64 bits "
                            f"(at most {2 ** 63 - 1}); write a float such as 1e20 for a big number",
                            self.at(ch[0]))
        value = int(text.lstrip("0") or "0") if is_int else float(text)
        if not is_int and value == float("inf"):
            shown = text if len(text) <= 24 else f"{text[:8]}…"
            raise SpecError(f"the number {shown} is too large for a float (the largest is about 1.8e308)",
                            self.at(ch[0]))
        return A.Num(value, is_int, text=text, loc=self.at(ch[0]))

    def string(self, ch):
        return A.Str(unescape(str(ch[0])[1:-1]), loc=self.at(ch[0]))

    def paren(self, ch):                     # `(e)` is e, placed at its `(`
        return dataclasses.replace(ch[1], loc=self.at(ch[0]))

    def true(self, ch):
        return A.Bool(True, loc=self.at(ch[0]))

    def false(self, ch):
        return A.Bool(False, loc=self.at(ch[0]))

    def list(self, ch):
        return A.ListLit(ch[1] if len(ch) > 1 else [], loc=self.at(ch[0]))

    def dict(self, ch):
        return A.DictLit(ch[1] if len(ch) > 1 else [], loc=self.at(ch[0]))

    def items(self, ch):
        return list(ch)

    def pairs(self, ch):
        return list(ch)

    def pair(self, ch):
        return (ch[0], ch[1])
