"""Symbolic dimensions.

A dim is an `int` or a `Sym`: a polynomial with integer coefficients over
atoms, where an atom is a symbol name (`B`, `T`) or an irreducible floor
division `(expr) / k`. Polynomials are kept in a canonical form, so two dims
are equal exactly when their canonical forms are: `2*B - B == B`,
`(B + 2*p - k) / s + 1` folds completely when B, p, k, s are known.
"""
from __future__ import annotations

from typing import Union

Dim = Union[int, "Sym"]


class Sym:
    """A canonical polynomial: frozenset of (monomial, coeff); a monomial is a
    sorted tuple of atoms (str or FloorDiv). Never constant (that is an int)."""

    __slots__ = ("terms", "_hash")

    def __init__(self, terms: dict):
        self.terms = frozenset((m, c) for m, c in terms.items() if c != 0)
        self._hash = hash(self.terms)

    # -- construction -----------------------------------------------------
    @staticmethod
    def var(name: str) -> "Sym":
        return Sym({(name,): 1})

    @staticmethod
    def _poly(d: Dim) -> dict:
        if isinstance(d, int):
            return {(): d} if d else {}
        return dict(d.terms)

    @staticmethod
    def _make(terms: dict) -> Dim:
        terms = {m: c for m, c in terms.items() if c != 0}
        if not terms:
            return 0
        if set(terms) == {()}:
            return terms[()]
        return Sym(terms)

    # -- arithmetic --------------------------------------------------------
    def __add__(self, o):
        return add(self, o)

    __radd__ = __add__

    def __sub__(self, o):
        return add(self, mul(-1, o))

    def __rsub__(self, o):
        return add(o, mul(-1, self))

    def __mul__(self, o):
        return mul(self, o)

    __rmul__ = __mul__

    def __floordiv__(self, o):
        return floordiv(self, o)

    def __rfloordiv__(self, o):
        return floordiv(o, self)

    def __neg__(self):
        return mul(-1, self)

    def __eq__(self, o):
        return isinstance(o, Sym) and self.terms == o.terms

    def __hash__(self):
        return self._hash

    def atoms(self) -> set:
        """The symbol names this dim depends on (through floor divisions too)."""
        out = set()
        for m, _ in self.terms:
            for a in m:
                out |= {a} if isinstance(a, str) else a.num_atoms()
        return out

    def __repr__(self):
        return show(self)


class FloorDiv:
    """An irreducible `num / den` (floor division of a polynomial by an int)."""

    __slots__ = ("num", "den")

    def __init__(self, num: Sym, den: int):
        self.num, self.den = num, den

    def __eq__(self, o):
        return isinstance(o, FloorDiv) and (self.num, self.den) == (o.num, o.den)

    def __hash__(self):
        return hash((self.num, self.den))

    def __lt__(self, o):  # for sorting monomials
        return _key(self) < _key(o)

    def num_atoms(self):
        return self.num.atoms() if isinstance(self.num, Sym) else set()

    def __repr__(self):
        return f"({show(self.num)})/{self.den}"


def _key(a) -> str:
    return a if isinstance(a, str) else "~" + repr(a)


def _mono(*atoms) -> tuple:
    return tuple(sorted(atoms, key=_key))


def add(a: Dim, b: Dim) -> Dim:
    t = Sym._poly(a)
    for m, c in Sym._poly(b).items():
        t[m] = t.get(m, 0) + c
    return Sym._make(t)


def mul(a: Dim, b: Dim) -> Dim:
    out: dict = {}
    for m1, c1 in Sym._poly(a).items():
        for m2, c2 in Sym._poly(b).items():
            m = _mono(*m1, *m2)
            out[m] = out.get(m, 0) + c1 * c2
    return Sym._make(out)


def prod(shape) -> Dim:
    """The product of a shape's dims (1 for a scalar)."""
    out = 1
    for d in shape:
        out = mul(out, d)
    return out


def plain_name(d) -> str | None:
    """The symbol's name when `d` is a plain symbol (`B`, not `B + 1` or `2*B`), else None."""
    if isinstance(d, Sym) and len(d.terms) == 1:
        (mono, c), = d.terms
        if c == 1 and len(mono) == 1 and isinstance(mono[0], str):
            return mono[0]
    return None


def floordiv(a: Dim, b: Dim) -> Dim:
    """a / b with floor semantics, for a divisor that is a known positive int."""
    if not isinstance(b, int):
        raise ValueError(f"cannot divide a dim by a symbolic dim {show(b)}")
    if b <= 0:
        raise ValueError(f"cannot divide a dim by {b}")
    if isinstance(a, int):
        return a // b
    # every coefficient divisible: divide term-wise (exact)
    if all(c % b == 0 for _, c in a.terms):
        return Sym._make({m: c // b for m, c in a.terms})
    return Sym({(FloorDiv(a, b),): 1})


def substitute(d: Dim, env: dict) -> Dim:
    """Replace symbols by dims (ints or Syms) from env; unknown ones stay."""
    if isinstance(d, int):
        return d
    out: Dim = 0
    for m, c in d.terms:
        term: Dim = c
        for a in m:
            if isinstance(a, str):
                v = env.get(a, Sym.var(a))
            else:
                v = floordiv(substitute(a.num, env), a.den)
            term = mul(term, v)
        out = add(out, term)
    return out


def evaluate(d: Dim, env: dict) -> int:
    """The int value of a dim under env (every symbol bound to an int)."""
    v = substitute(d, env)
    if not isinstance(v, int):
        raise KeyError(f"unbound dim {show(v)}")
    return v


def show(d: Dim) -> str:
    """Readable text: `B`, `2*B + 1`, `(n + 4)/2`."""
    if isinstance(d, int):
        return str(d)
    parts = []
    for m, c in sorted(d.terms, key=lambda mc: (len(mc[0]) == 0, [_key(a) for a in mc[0]])):
        body = "*".join(a if isinstance(a, str) else repr(a) for a in m)
        if not body:
            parts.append((c < 0, str(abs(c))))
        else:
            parts.append((c < 0, body if abs(c) == 1 else f"{abs(c)}*{body}"))
    s = ("-" if parts[0][0] else "") + parts[0][1]
    for neg, p in parts[1:]:
        s += (" - " if neg else " + ") + p
    return s


def show_shape(shape) -> str:
    return "[" + ", ".join(show(d) for d in shape) + "]"


def sub(a: Dim, b: Dim) -> Dim:
    return add(a, mul(-1, b))
