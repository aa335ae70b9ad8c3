"""AST -> canonical `.dl` text.

Canonical layout: 4-space indent, one statement per line, spaces around binary
operators and `=`, minimal parentheses, one blank line between items and at
most one where the source had blank lines inside a block. Comments are kept:
an item's doc string above it, a comment written after code at the end of that
statement's line, whole-line comments on their own lines where they were.
Numbers keep their spelling. parse(fmt(x)) == parse(x), and fmt is idempotent."""
from __future__ import annotations

from ..errors import Loc, SpecError
from . import ast as A
from .layout import doc_comments
from .parser import parse

INDENT = "    "

# binding strength, loosest first; an operand printed where a stronger one is
# needed gets parentheses
PIPE, COMPARE, ADD, MUL, NEG, POW, AS, POSTFIX, ATOM = range(1, 10)
_BINOP_PREC = {"+": ADD, "-": ADD, "*": MUL, "/": MUL, "@": MUL, "**": POW}


def format_program(program: A.Program) -> str:
    """The program as canonical `.dl` text (ends with a newline)."""
    return _Printer(program).program()


def to_dl(program: A.Program) -> str:
    """Same as format_program (exposed as `prog.to_dl()`)."""
    return format_program(program)


def format_source(text: str, filename: str = "<text>") -> str:
    """Parse and print back canonically; raises SpecError for a bad spec."""
    program = parse(text, filename)
    try:
        return format_program(program)
    except RecursionError:
        raise SpecError("the spec is nested too deeply to print", Loc(filename, 1, 1)) from None


# ------------------------------------------------------------------ expressions

def prec(e) -> int:
    if isinstance(e, A.Pipe):
        return PIPE
    if isinstance(e, A.Compare):
        return COMPARE
    if isinstance(e, A.BinOp):
        return _BINOP_PREC[e.op]
    if isinstance(e, A.UnaryOp):
        return NEG
    if isinstance(e, A.Num) and e.value < 0:
        return NEG
    if isinstance(e, A.Call):
        return AS if e.as_name else POSTFIX
    if isinstance(e, (A.Index, A.Attr)):
        return POSTFIX
    return ATOM


def expr(e, need: int = 0) -> str:
    """`e` as text, parenthesised if it binds looser than `need`."""
    s = _expr(e)
    return f"({s})" if prec(e) < need else s


def _expr(e) -> str:
    if isinstance(e, A.Num):
        return e.text if e.text else repr(e.value)
    if isinstance(e, A.Str):
        body = e.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{body}"'
    if isinstance(e, A.Bool):
        return "true" if e.value else "false"
    if isinstance(e, A.Name):
        return e.id
    if isinstance(e, A.Attr):
        base = expr(e.value, POSTFIX)
        if isinstance(e.value, A.Num):          # `1.x` would read as the number `1.`
            base = f"({base})"
        return f"{base}.{e.attr}"
    if isinstance(e, A.BinOp):
        p = _BINOP_PREC[e.op]
        if e.op == "**":                        # right-assoc; its lhs is a postfix/`as`
            return f"{expr(e.lhs, AS)} ** {expr(e.rhs, NEG)}"
        return f"{expr(e.lhs, p)} {e.op} {expr(e.rhs, p + 1)}"
    if isinstance(e, A.UnaryOp):
        return f"{e.op}{expr(e.operand, NEG)}"
    if isinstance(e, A.Compare):               # not associative
        return f"{expr(e.lhs, ADD)} {e.op} {expr(e.rhs, ADD)}"
    if isinstance(e, A.Pipe):
        return f"{expr(e.lhs, PIPE)} |> {expr(e.rhs, COMPARE)}"
    if isinstance(e, A.Call):
        args = [expr(a) for a in e.args] + [f"{k.name} = {expr(k.value)}" for k in e.kwargs]
        s = f"{expr(e.func, POSTFIX)}({', '.join(args)})"
        return f"{s} as {e.as_name}" if e.as_name else s
    if isinstance(e, A.Index):
        return f"{expr(e.value, POSTFIX)}[{', '.join(_subscript(i) for i in e.items)}]"
    if isinstance(e, A.ListLit):
        return f"[{', '.join(expr(i) for i in e.items)}]"
    if isinstance(e, A.DictLit):
        return "{" + ", ".join(f"{expr(k)}: {expr(v)}" for k, v in e.items) + "}"
    raise TypeError(f"not an expression: {e!r}")


def _subscript(i) -> str:
    if not isinstance(i, A.Slice):
        return expr(i)
    s = ("" if i.lo is None else expr(i.lo)) + ":" + ("" if i.hi is None else expr(i.hi))
    return s if i.step is None else s + ":" + expr(i.step)


def type_text(t: A.TensorType) -> str:
    dims = ", ".join("*" if isinstance(d, A.Star) else expr(d, ADD) for d in t.dims)
    dtype = t.dtype if (t.explicit_dtype or t.dtype != "f32") else ""
    return f"{dtype}[{dims}]"


def stmt_text(s) -> str:
    if isinstance(s, A.Input):
        return f"input {s.name}: {type_text(s.type)}"
    if isinstance(s, A.ParamDecl):
        return f"param {s.name}: {type_text(s.type)} ~ {expr(s.init)}"
    if isinstance(s, A.StateDecl):
        return f"state {s.name}: {type_text(s.type)} ~ {expr(s.init)}"
    if isinstance(s, A.Assign):
        return f"{', '.join(s.targets)} = {expr(s.expr)}"
    if isinstance(s, A.Output):
        return f"output {s.name}" + ("" if s.expr is None else f" = {expr(s.expr)}")
    if isinstance(s, A.Loss):
        head = "loss" if s.name is None else f"loss {s.name}"
        wrt = f" wrt {', '.join(s.wrt)}" if s.wrt else ""
        return f"{head} = {expr(s.expr)}{wrt}"
    if isinstance(s, A.Metric):
        return f"metric {s.name} = {expr(s.expr)}"
    if isinstance(s, A.Return):
        return "return " + ", ".join(expr(e) for e in s.exprs)
    if isinstance(s, A.Update):
        return f"update {s.name} = {expr(s.expr)}"
    if isinstance(s, A.Setting):
        return f"{s.name} = {expr(s.expr)}"
    raise TypeError(f"not a statement: {s!r}")


def arg_text(a: A.Arg) -> str:
    s = a.name
    if a.type is not None:
        s += f": {type_text(a.type)}"
    elif a.kind in ("int", "float"):
        s += f": {a.kind}"
    return s if a.default is None else f"{s} = {expr(a.default)}"


# ----------------------------------------------------------------------- layout

def _line(node) -> int:
    return node.loc.line if getattr(node, "loc", None) is not None else 0


class _Printer:
    """Prints items with the program's comments put back by line number."""

    def __init__(self, program: A.Program):
        self.p = program
        self.comments = sorted(program.comments or [], key=lambda c: c.line)
        self.blanks = program.blank_lines or frozenset()
        self.used: set[int] = set()          # lines of comments already printed
        for it in program.items:
            if _line(it):
                self.used |= {c.line for c in doc_comments(self.comments, _line(it))}

    def take(self, lo: int, hi: int, inline: bool | None = None) -> list[A.Comment]:
        """Unprinted comments on lines lo..hi (inclusive), marking them printed."""
        out = [c for c in self.comments if lo <= c.line <= hi and c.line not in self.used
               and (inline is None or c.inline == inline)]
        self.used |= {c.line for c in out}
        return out

    def blank_between(self, a: int, b: int) -> bool:
        return a > 0 and any(n in self.blanks for n in range(a + 1, b))

    def program(self) -> str:
        out: list[str] = []
        prev_kind, prev_line = None, 0
        items = self.p.items
        for k, it in enumerate(items):
            start, end = _line(it), max(getattr(it, "end_line", 0), _line(it))
            if isinstance(it, A.Const) and start:      # its code may go on up to the next item
                nxt = _line(items[k + 1]) - 1 if k + 1 < len(items) else 10**12
                self.const_end = max(start, nxt)
            if start:
                for c in self.take(0, start - 1):       # whole-line comments before it
                    if prev_kind == "item" or (prev_kind == "comment" and self.blank_between(prev_line, c.line)):
                        out.append("")
                    out.append(c.text)
                    prev_kind, prev_line = "comment", c.line
            if prev_kind is not None:
                out.append("")
            if it.doc is not None:
                out += ["# " + l if l else "#" for l in it.doc.split("\n")]
            out += self.item(it, start, end)
            prev_kind, prev_line = "item", end
        for c in self.take(0, 10**12):                   # comments after the last item
            if prev_kind == "item" or (prev_kind == "comment" and self.blank_between(prev_line, c.line)):
                out.append("")
            out.append(c.text)
            prev_kind, prev_line = "comment", c.line
        return "\n".join(out) + "\n" if out else ""

    def trail(self, text: str, comments: list[A.Comment]) -> str:
        return text + "".join("  " + c.text for c in comments)

    def item(self, it, start: int, end: int) -> list[str]:
        if isinstance(it, A.Const):
            comments = self.take(start, self.const_end, inline=True) if start else []
            return [self.trail(f"const {it.name} = {expr(it.expr)}", comments)]
        if isinstance(it, A.Import):
            return [self.trail(f"import {expr(A.Str(it.path))} as {it.name}", self.take(start, end, inline=True) if start else [])]
        if isinstance(it, A.Layer):
            head, body = f"layer {it.name}({', '.join(arg_text(a) for a in it.args)}) {{", it.body
        elif isinstance(it, A.Model):
            head, body = f"model {it.name} {{", it.body
        elif isinstance(it, A.Train):
            head, body = f"train {it.name} {{", it.settings
        else:
            raise TypeError(f"not an item: {it!r}")
        if not start:
            return [head] + [INDENT + stmt_text(s) for s in body] + ["}"]
        first = _line(body[0]) if body else end
        lines = [self.trail(head, self.take(start, max(start, first - 1), inline=True))]
        prev = 0
        for i, s in enumerate(body):
            line = _line(s)
            for c in self.take(0, line - 1, inline=False):     # whole-line comments before it
                if prev and self.blank_between(prev, c.line):
                    lines.append("")
                lines.append(INDENT + c.text)
                prev = c.line
            if prev and self.blank_between(prev, line):
                lines.append("")
            nxt = _line(body[i + 1]) - 1 if i + 1 < len(body) else end - 1
            lines.append(self.trail(INDENT + stmt_text(s), self.take(line, max(line, nxt), inline=True)))
            prev = line
        for c in self.take(0, end - 1, inline=False):
            if prev and self.blank_between(prev, c.line):
                lines.append("")
            lines.append(INDENT + c.text)
            prev = c.line
        return lines + [self.trail("}", self.take(end, end))]
