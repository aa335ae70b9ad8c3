"""The `.dl` front end's first step: text -> AST (parse) and AST -> text (fmt)."""
from . import ast
from .fmt import format_program, format_source, to_dl
from .parser import parse

__all__ = ["ast", "parse", "format_program", "format_source", "to_dl"]
