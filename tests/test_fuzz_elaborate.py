"""Mutation fuzz of the language examples: token-level mutations (numbers
swapped, identifiers renamed, arguments dropped, dims changed, tokens deleted
or duplicated). Every mutant either elaborates or raises SpecError; nothing
else escapes, and no error is an internal one."""
from __future__ import annotations

import random
import re
import time
from pathlib import Path

from dslc import api
from dslc.errors import SpecError

LANG = Path(__file__).parent / "lang"
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+\.?\d*(?:[eE][+-]?\d+)?|\|>|\*\*|[^\sA-Za-z0-9_]")
NUMBERS = ["0", "1", "2", "3", "-1", "64", "0.5", "1e-3", "128", "7"]
DIMS = ["B", "T", "n", "m", "H", "4", "2*m", "n + 1"]


def _names(toks):
    return sorted({t for t in toks if t[0].isalpha() or t[0] == "_"})


def mutate(text: str, rng: random.Random) -> str:
    toks = [m for m in TOKEN.finditer(text)]
    if not toks:
        return text
    i = rng.randrange(len(toks))
    t = toks[i]
    kind = rng.randrange(7)
    tok = t.group()
    if kind == 0 and tok[0].isdigit():                      # swap a number
        new = rng.choice(NUMBERS)
    elif kind == 1 and (tok[0].isalpha() or tok[0] == "_"):  # rename an identifier
        new = rng.choice(_names(m.group() for m in toks) + [tok + "x", tok[:-1] or "q"])
    elif kind == 2:                                          # drop an argument
        j = text.find(",", t.start())
        if j < 0:
            return text
        k = min([x for x in (text.find(",", j + 1), text.find(")", j + 1)) if x > 0] or [j + 1])
        return text[:j] + text[k:]
    elif kind == 3 and text[t.start() - 1:t.start()] in "[, ":    # change a dim
        new = rng.choice(DIMS)
    elif kind == 4:                                          # delete a token
        new = ""
    elif kind == 5:                                          # duplicate a token
        new = tok + " " + tok
    else:                                                    # swap with another token
        new = rng.choice(toks).group()
    return text[:t.start()] + new + text[t.end():]


def test_mutants_elaborate_or_raise_spec_errors():
    rng = random.Random(1234)
    bases = [p.read_text() for p in sorted(LANG.glob("*.dl")) if p.stem != "section8"]
    n, ok, internal = 0, 0, []
    start = time.time()
    while n < 2000 and time.time() - start < 25:
        text = rng.choice(bases)
        for _ in range(rng.randint(1, 3)):
            text = mutate(text, rng)
        n += 1
        try:
            api.parse(text, filename="fuzz.dl")
            ok += 1
        except SpecError as e:
            if "internal error" in e.format():
                internal.append((text, e.format()))
    assert n >= 500, n
    assert not internal, f"{len(internal)} internal errors, first:\n{internal[0][1]}\n---\n{internal[0][0]}"
