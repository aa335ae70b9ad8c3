"""Collecting a spec's errors, so one run reports them all."""
from __future__ import annotations

from ..errors import SpecError
from .values import Skip


class Errors:
    """Collects SpecErrors (once each)."""

    def __init__(self):
        self.list: list[SpecError] = []
        self.seen: set = set()

    def add(self, e: SpecError) -> None:
        for one in getattr(e, "errors", [e]):
            key = (one.line, one.column, one.message)
            if key not in self.seen:
                self.seen.add(key)
                self.list.append(one)

    def guard(self, fn, *args):
        """Run fn; a SpecError is recorded (and None returned)."""
        try:
            return fn(*args)
        except Skip:
            return None
        except SpecError as e:
            self.add(e)
            return None
