"""The lecture notes' models, trained: `python bench/zoo.py [NAME ...]`.

Runs every entry (or those named), prints a table of figure vs reference and
whether each claim holds, and exits non-zero if any does not.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.zoo import Entry, Result, timed  # noqa: E402


def entries() -> list[Entry]:
    import bench.zoo as pkg
    out: list[Entry] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"bench.zoo.{info.name}")
        out += getattr(mod, "ENTRIES", [])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("names", nargs="*", help="entries to run (default: all)")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args(argv)
    es = entries()
    if a.list:
        for e in es:
            print(f"{e.name:<24} {e.spec:<32} {e.claim}")
        return 0
    if a.names:
        known = {e.name for e in es}
        bad = [n for n in a.names if n not in known]
        if bad:
            print(f"unknown entries: {', '.join(bad)} (see --list)", file=sys.stderr)
            return 2
        es = [e for e in es if e.name in a.names]
    rows = []
    for e in es:
        print(f"== {e.name}: {e.claim}", flush=True)
        try:
            r = timed(e.run)
        except Exception as ex:  # noqa: BLE001 - report and go on
            traceback.print_exc()
            r = Result(f"failed: {type(ex).__name__}: {ex}", "-", False)
        print(f"   {r.figure}  vs  {r.reference}  -> {'holds' if r.ok else 'DOES NOT HOLD'}"
              f"  ({r.seconds:.1f} s){'  ' + r.note if r.note else ''}", flush=True)
        rows.append((e, r))
    print()
    print(f"| entry | spec | figure | reference | holds | time |")
    print(f"| --- | --- | --- | --- | --- | --- |")
    for e, r in rows:
        holds = "yes" if r.ok else ("NO" if e.required else "no (finding, not required)")
        print(f"| {e.name} | `{e.spec}` | {r.figure} | {r.reference} | {holds} | {r.seconds:.0f} s |")
    return 0 if all(r.ok for e, r in rows if e.required) else 1


if __name__ == "__main__":
    sys.exit(main())
