"""Mutation fuzzing: any text either parses or raises SpecError at a place inside the text."""
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dslc.errors import SpecError, SpecErrors
from dslc.syntax import format_source, parse

LANG = {p.name: p.read_text() for p in sorted((Path(__file__).parent / "lang").glob("*.dl"))}
TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|[A-Za-z_]\w*|\d+\.?\d*(?:[eE][+-]?\d+)?|\|>|\*\*|[<>=!]=|.')
ALPHABET = list("()[]{},:;=+-*/@<>|.~#\"$?\\!'` \t\n") + ["|>", "**", "as", "wrt", "model", "layer", "1e-", "x"]


def check(text: str):
    """Parse; a failure must be a SpecError inside the text (and render); else fmt round-trips."""
    try:
        prog = parse(text, "fuzz.dl")
    except SpecError as e:
        errors = e.errors if isinstance(e, SpecErrors) else [e]
        n_lines = text.count("\n") + 1
        for err in errors:
            assert err.filename == "fuzz.dl"
            assert 1 <= err.line <= n_lines, (err.format(), text)
            line = text.split("\n")[err.line - 1]
            assert 1 <= err.column <= len(line) + 1, (err.format(), text)
        e.format()
        return
    out = format_source(text, "fuzz.dl")
    assert parse(out) == prog, text


def mutate(rng: random.Random, text: str) -> str:
    toks = TOKEN.findall(text)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        kind = rng.randrange(7)
        i = rng.randrange(len(toks)) if toks else 0
        if kind == 0 and toks:                    # delete a token
            del toks[i]
        elif kind == 1 and toks:                  # duplicate a token
            toks.insert(i, toks[i])
        elif kind == 2 and len(toks) > 1:         # swap two tokens
            j = rng.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
        elif kind == 3:                           # insert a random character / token
            toks.insert(i, rng.choice(ALPHABET))
        elif kind == 4 and toks:                  # truncate
            toks = toks[:i]
        elif kind == 5:                           # delete a random character
            s = "".join(toks)
            if s:
                k = rng.randrange(len(s))
                toks = TOKEN.findall(s[:k] + s[k + 1:])
        elif kind == 6 and toks:                  # replace a token by another from the text
            toks[i] = rng.choice(toks)
    return "".join(toks)


@pytest.mark.parametrize("name", sorted(LANG))
def test_mutations(name):
    rng = random.Random(f"dslc-{name}")
    base = LANG[name]
    for _ in range(350):
        check(mutate(rng, base))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ALPHABET + list("abcmn0129")), max_size=60).map("".join))
def test_random_text(text):
    check(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(LANG)), st.integers(0, 10_000), st.text(max_size=3))
def test_insert_any_unicode(name, at, junk):
    base = LANG[name]
    at %= len(base) + 1
    check(base[:at] + junk + base[at:])
