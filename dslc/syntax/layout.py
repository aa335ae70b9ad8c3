"""Layout outside the grammar: newlines inside brackets, comments, doc strings, blank lines."""
from __future__ import annotations

from lark import Token

from . import ast as A

OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
CLOSERS = {"RPAR", "RSQB", "RBRACE"}
ITEM_KEYWORDS = {"LAYER": "layer", "MODEL": "model", "TRAIN": "train", "CONST": "const"}


class Opener:
    """An open bracket: `kind` is "(", "[", "dict" or "block"; blocks know their item."""

    def __init__(self, tok: Token, kind: str, item: str | None = None):
        self.tok, self.kind, self.item = tok, kind, item


class Layout:
    """Lark post-lexer. Newlines (and `;`) end statements, except inside ( ) [ ] and
    dict literals; repeated ones, leading ones and those right after a block's `{`
    are dropped, so the grammar sees at most one _NL between statements.

    A `{` opens a block when it follows a name or `)` outside brackets (item
    headers); anywhere else it opens a dict literal. `stack` is the open brackets
    and `last` the last token passed on, both read when reporting an error."""

    always_accept = ("_NL",)

    def __init__(self):
        self.stack: list[Opener] = []
        self.last: Token | None = None

    def process(self, stream):
        self.stack, self.last = [], None
        item = None            # "model `digits`": the item whose header is being read
        for tok in stream:
            t = tok.type
            if t == "_NL":
                if self.stack and self.stack[-1].kind != "block":
                    continue
                if self.last is None or self.last.type in ("_NL", "LBRACE"):
                    continue
            elif t in ITEM_KEYWORDS and not self.stack:
                item = ITEM_KEYWORDS[t]
            elif t == "NAME" and item and " " not in item and self.last is not None \
                    and self.last.type in ITEM_KEYWORDS:
                item = f"{item} `{tok}`"
            elif t == "LBRACE":
                in_code = not self.stack or self.stack[-1].kind == "block"
                if in_code and self.last is not None and self.last.type in ("NAME", "RPAR"):
                    self.stack.append(Opener(tok, "block", item))
                else:
                    self.stack.append(Opener(tok, "dict"))
            elif t in ("LPAR", "LSQB"):
                self.stack.append(Opener(tok, "(" if t == "LPAR" else "["))
            elif t in CLOSERS and self.stack and OPENERS[self.stack[-1].tok.type] == t:
                self.stack.pop()
            self.last = tok
            yield tok


def scan_comments(text: str) -> tuple[list[A.Comment], frozenset[int]]:
    """Every `#` comment outside strings, and the numbers of the blank lines."""
    comments, blanks = [], set()
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            blanks.add(n)
            continue
        in_str, i = False, 0
        while i < len(line):
            c = line[i]
            if in_str and c == "\\":
                i += 2
                continue
            if c == '"':
                in_str = not in_str
            elif c == "#" and not in_str:
                comments.append(A.Comment(n, i + 1, line[i:].rstrip(), bool(line[:i].strip())))
                break
            i += 1
    return comments, frozenset(blanks)


def doc_comments(comments: list[A.Comment], line: int) -> list[A.Comment]:
    """The run of whole-line comments that ends on the line just above `line`."""
    by_line = {c.line: c for c in comments if not c.inline}
    run = []
    n = line - 1
    while n in by_line:
        run.append(by_line[n])
        n -= 1
    return run[::-1]


def doc_text(run: list[A.Comment]) -> str | None:
    """The doc string of a comment run: each line without `#` and one space."""
    if not run:
        return None
    lines = []
    for c in run:
        body = c.text[1:]
        lines.append(body[1:] if body.startswith(" ") else body)
    return "\n".join(lines)
