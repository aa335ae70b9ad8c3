"""Zoo entries: each module in this folder defines ENTRIES, a list of Entry."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class Entry:
    """One claim of the lecture notes, reproduced by training a spec.

    run() trains and returns a Result; the figure is compared with a reference
    the project did not compute itself (scikit-learn, a closed form, the notes)."""
    name: str
    spec: str                      # specs/NAME.dl
    claim: str                     # what the notes say, in a line
    run: Callable[[], "Result"]
    required: bool = True          # False: a finding we report, not a claim the zoo must reproduce


@dataclass
class Result:
    figure: str                    # what we measured
    reference: str                 # what it is compared with
    ok: bool                       # does the claim hold at the figure named
    note: str = ""
    seconds: float = 0.0


def timed(fn: Callable[[], Result]) -> Result:
    t0 = time.perf_counter()
    r = fn()
    r.seconds = time.perf_counter() - t0
    return r
