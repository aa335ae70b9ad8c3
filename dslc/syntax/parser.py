"""`.dl` text -> AST, with syntax errors in words at file:line:col.

parse() first reads the whole text. If that fails, it reads the text again item
by item (items start at lines beginning with `const|layer|model|train NAME`),
and inside an item skips each line that holds an error and retries, so that
independent errors are all reported (as SpecErrors)."""
from __future__ import annotations

import dataclasses
import re
from functools import lru_cache
from importlib import resources

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput
from lark.lexer import PatternStr

from ..errors import Loc, Source, SpecError, SpecErrors
from . import ast as A
from .build import ToAst
from .layout import Layout, doc_comments, doc_text, scan_comments

_ITEM_START = re.compile(r"((const|layer|model|train)[ \t]+[A-Za-z_]|import[ \t]+\")")
_MAX_ERRORS = 20

# terminal name -> how an error message says it
_WORDS = {"NAME": "a name", "NUMBER": "a number", "STRING": "a string", "CMP": "a comparison",
          "_NL": "end of line", "$END": "end of file"}
_EXPR_START = {"NAME", "NUMBER", "STRING", "LPAR", "LSQB", "LBRACE", "MINUS", "TRUE", "FALSE"}
_OPERATORS = {"PIPE", "CMP", "PLUS", "MINUS", "STAR", "SLASH", "AT", "POW", "AS", "LPAR", "LSQB", "DOT"}
_STMT_START = {"INPUT", "PARAM", "STATE", "OUTPUT", "LOSS", "METRIC", "RETURN", "UPDATE"}
_ITEM_START_TERMS = {"CONST", "LAYER", "MODEL", "TRAIN", "IMPORT"}


@lru_cache(maxsize=1)
def _lark() -> Lark:
    text = (resources.files("dslc.grammar") / "dl.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", lexer="contextual", maybe_placeholders=True,
                postlex=Layout(), transformer=ToAst())


def parse(text: str, filename: str = "<text>") -> A.Program:
    """Parse `.dl` text. Raises SpecError (or SpecErrors) for any bad input, nothing else."""
    try:
        return _parse(text, filename)
    except SpecError:
        raise
    except RecursionError:
        raise SpecError("the spec is nested too deeply to read", Loc(filename, 1, 1)) from None
    except Exception as e:  # an internal failure must still not escape as a traceback
        raise SpecError(f"internal error in the parser: {type(e).__name__}: {e}",
                        Loc(filename, 1, 1)) from None


def _parse(text: str, filename: str) -> A.Program:
    if not isinstance(text, str):
        raise SpecError("a spec must be text", Loc(filename, 1, 1))
    source = Source(filename, text)
    try:
        items = _parse_once(text, source)
    except SpecError as first:
        errors = [SpecError(e.message, e.loc, e.notes)
                  for e in (_collect_errors(text, source, first) or [first])]
        raise errors[0] if len(errors) == 1 else SpecErrors(errors)
    comments, blanks = scan_comments(text)
    items = [dataclasses.replace(it, doc=doc_text(doc_comments(comments, it.loc.line)))
             for it in items]
    return A.Program(items, comments=comments, blank_lines=blanks, source=source)


class _Fatal(SpecError):
    """An error after which the rest of the item cannot be read (unclosed block, end of file)."""


def _parse_once(text: str, source: Source) -> list:
    lark = _lark()
    ToAst.source = source      # where the nodes built during this parse point
    try:
        return lark.parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, lark, source) from None


def _collect_errors(text: str, source: Source, first: SpecError | None = None) -> list[SpecError]:
    """Errors of each item separately, skipping bad lines to find more.

    Items before the one holding the first error parsed (LALR reads left to
    right), so recovery starts there; each item is parsed on its own text and
    its errors moved to the item's lines, so the work stays linear in the file."""
    lines = text.split("\n")
    starts = [i for i, l in enumerate(lines) if _ITEM_START.match(l)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    errors: list[SpecError] = []
    first_line = first.line if first is not None else 1
    for a, b in zip(starts, starts[1:] + [len(lines)]):
        if b < first_line and b != len(lines):
            continue                       # this item parsed in the first reading
        chunk = lines[a:b]
        last = 0
        if first is not None and a < first_line <= b:   # its first error is known: skip its line
            errors.append(first)
            last = first_line - a
            if isinstance(first, _Fatal) or last == 1:
                continue
            chunk[last - 1] = _keep_closing_braces(chunk[last - 1])
        for _ in range(_MAX_ERRORS):
            try:
                _parse_once("\n".join(chunk), source)
                break
            except SpecError as e:
                if e.line <= last or not (0 < e.line <= b - a):
                    break
                errors.append(_moved(e, a, source))
                last = e.line
                if isinstance(e, _Fatal) or e.line == 1 or len(errors) >= _MAX_ERRORS:
                    break
                chunk[e.line - 1] = _keep_closing_braces(chunk[e.line - 1])
        if len(errors) >= _MAX_ERRORS:
            break
    return errors


def _moved(e: SpecError, lines: int, source: Source) -> SpecError:
    """e, read from an item's own text, at its place in the file (`lines` further down)."""
    loc = Loc(source.filename, e.line + lines, e.column, source)
    return type(e)(e.message, loc, e.notes) if type(e) in (SpecError, _Fatal) else SpecError(e.message, loc, e.notes)


def _keep_closing_braces(line: str) -> str:
    """What is left of a skipped line: the `}` it closes beyond those it opens."""
    depth, in_str = 0, False
    for c in line.split("#")[0]:
        if c == '"':
            in_str = not in_str
        elif not in_str:
            depth += (c == "{") - (c == "}")
    return "}" * max(0, -depth)


# ------------------------------------------------------------------ messages

def _syntax_error(e: UnexpectedInput, lark: Lark, source: Source) -> SpecError:
    def loc(line, col):
        return Loc(source.filename, line, col, source)

    if isinstance(e, UnexpectedCharacters):
        c = source.text[e.pos_in_stream] if e.pos_in_stream < len(source.text) else e.char
        if c == '"':
            return SpecError("unterminated string: a string must end with `\"` on the same line",
                             loc(e.line, e.column))
        shown = c if c.isprintable() else repr(c)[1:-1]
        return SpecError(f"unexpected character `{shown}`", loc(e.line, e.column))

    layout: Layout = lark.options.postlex
    tok: Token = getattr(e, "token", None) or Token("$END", "")
    expected = _describe_expected(_accepted(e), lark)
    at_end = tok.type == "$END"
    if at_end and layout.last is not None:
        where = loc(layout.last.end_line, layout.last.end_column)
    else:
        where = loc(tok.line or 1, tok.column or 1)
    found = _describe_token(tok)

    openers = [o for o in layout.stack if o.tok is not tok]
    if openers:
        o = openers[-1]
        o_loc = loc(o.tok.line, o.tok.column)
        if at_end and o.kind == "block":
            what = f"the block of {o.item}" if o.item else "this block"
            return _Fatal(f"expected `}}` to close {what} opened at line {o.tok.line}", o_loc)
        if o.kind != "block" and (at_end or o.tok.line < where.line):
            close = {"(": ")", "[": "]", "dict": "}"}[o.kind]
            opened = "{" if o.kind == "dict" else o.kind
            err = _Fatal if at_end else SpecError
            return err(f"`{opened}` is never closed: expected `{close}` to close it, found {found} "
                       f"at line {where.line}, column {where.col}", o_loc)
    err = _Fatal if at_end else SpecError
    return err(f"expected {expected}, found {found}", where)


def _accepted(e: UnexpectedInput) -> set[str]:
    """The terminals that could really come next (LALR's own set over-approximates)."""
    try:
        return set(e.interactive_parser.accepts())
    except Exception:
        return set(getattr(e, "expected", None) or ())


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "end of line" if tok.value != ";" else "`;`"
    return f"`{tok.value}`"


def _describe_expected(expected: set[str], lark: Lark) -> str:
    exp = set(expected)
    parts: list[str] = []
    if _ITEM_START_TERMS <= exp:
        parts.append("an item (`const`, `layer`, `model` or `train`)")
        exp -= _ITEM_START_TERMS
    if _STMT_START <= exp:
        parts.append("a statement")
        exp -= _STMT_START | {"NAME"}
    if {"NAME", "NUMBER", "LPAR", "MINUS"} <= exp:
        parts.append("an expression")
        exp -= _EXPR_START
    operators = "PIPE" in exp and bool({"PLUS", "STAR"} & exp)
    if operators:
        exp -= _OPERATORS
    order = sorted(exp, key=lambda t: (t in ("_NL", "$END"), t))
    parts += [_word(t, lark) for t in order]
    if operators:
        parts.append("an operator")
    if not parts:
        return "something else"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _word(term: str, lark: Lark) -> str:
    if term in _WORDS:
        return _WORDS[term]
    try:
        pattern = lark.get_terminal(term).pattern
    except (KeyError, AttributeError):
        return term.lower()
    return f"`{pattern.value}`" if isinstance(pattern, PatternStr) else term.lower()
