"""Elaboration: a parsed spec (dslc.syntax.ast) -> checked models and training
setups over IR nodes (dslc.ir.model.Program).

  scope.py    names, globals, per-model context        values.py  function values
  dims.py     dims, declared types, shape patterns     exprs.py   expressions
  calls.py    calls, instance naming, repeat/scan      layers.py  layer instances
  stmts.py    statement handlers                       program.py items
  train.py    train-block settings                     stdlib.py  the standard layers
"""
from __future__ import annotations

from ..errors import Loc, SpecError
from ..ir.model import Program
from ..ir.node import current_loc
from ..syntax import ast as A
from .program import elaborate_program


def elaborate(tree: A.Program, filename: str | None = None) -> Program:
    """Check a parsed spec and build its IR. Raises SpecError/SpecErrors, nothing else."""
    name = filename or (tree.source.filename if getattr(tree, "source", None) else "<text>")
    try:
        return elaborate_program(tree, name)
    except SpecError:
        raise
    except RecursionError:
        raise SpecError("the spec is nested too deeply to check", Loc(name, 1, 1)) from None
    except Exception as e:   # last resort: never a traceback for a spec
        raise SpecError(f"internal error: {type(e).__name__}: {e}", current_loc() or Loc(name, 1, 1)) from None


__all__ = ["elaborate"]
