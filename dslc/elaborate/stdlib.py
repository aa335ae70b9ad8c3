"""The standard layers (LANGUAGE.md §7), written in `.dl` in dslc/stdlib/ and
loaded once. Inside them, built-in functions come before layers of the same
name (the standard `embedding` layer calls the built-in `embedding`)."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from ..syntax import ast as A
from ..syntax.parser import parse
from .calls import CALLS
from .scope import Globals
from .values import LayerFn


@lru_cache(maxsize=1)
def stdlib_layers() -> dict:
    glob = Globals(CALLS, builtins_first=True)
    files = sorted(p for p in resources.files("dslc.stdlib").iterdir() if p.name.endswith(".dl"))
    for p in files:
        prog = parse(p.read_text(encoding="utf-8"), f"<stdlib:{p.name}>")
        for item in prog.items:
            assert isinstance(item, A.Layer), f"{p.name}: only layers belong in the standard library"
            assert item.name not in glob.layers, f"standard layer {item.name} defined twice"
            glob.layers[item.name] = LayerFn(item, glob, stdlib=True)
    return dict(glob.layers)
