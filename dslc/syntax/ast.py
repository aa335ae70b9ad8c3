"""The syntax tree of a `.dl` spec, as written (before any checking).

Every node carries `loc` (the position of its first character). Locations,
the original spelling of numbers and other layout details are excluded from
`==`, so two trees compare equal when they say the same thing: this is how
`parse(fmt(x)) == parse(x)` is tested.

Expressions: Num Str Bool Name Attr BinOp UnaryOp Compare Pipe Call Keyword
Index Slice ListLit DictLit. Types: TensorType (dims are expressions or Star).
Statements: Input ParamDecl StateDecl Assign Output Loss Metric Return Update.
Items: Const Layer Model Train (with Setting). Root: Program (with Comment).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..errors import Loc, Source


def _loc():
    return field(default=None, compare=False, repr=False, kw_only=True)


def _meta(default=None):
    """A field that records layout, not meaning: left out of `==` and repr."""
    return field(default=default, compare=False, repr=False, kw_only=True)


# ---------------------------------------------------------------- expressions

@dataclass(frozen=True)
class Num:
    """A number literal. `text` is its spelling in the source (`1e-3`), kept for printing."""
    value: int | float
    is_int: bool
    text: str | None = _meta()
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Str:
    value: str
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Bool:
    value: bool
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Name:
    id: str
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Attr:
    """`value.attr`: a path into a bound instance (`h1.W`, `enc.h1.W`)."""
    value: "Expr"
    attr: str
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class BinOp:
    """`lhs op rhs` with op one of `+ - * / @ **`; `op_loc` is where the operator is."""
    op: str
    lhs: "Expr"
    rhs: "Expr"
    loc: Loc | None = _loc()
    op_loc: Loc | None = _meta()


@dataclass(frozen=True)
class UnaryOp:
    """`-operand` (op is "-")."""
    op: str
    operand: "Expr"
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Compare:
    """`lhs op rhs` with op one of `< <= > >= == !=` (not chained)."""
    op: str
    lhs: "Expr"
    rhs: "Expr"
    loc: Loc | None = _loc()
    op_loc: Loc | None = _meta()


@dataclass(frozen=True)
class Pipe:
    """`lhs |> rhs`: rhs is a function position (a call with leading tensor args left open)."""
    lhs: "Expr"
    rhs: "Expr"
    loc: Loc | None = _loc()
    op_loc: Loc | None = _meta()


@dataclass(frozen=True)
class Keyword:
    """A keyword argument `name = value` of a call."""
    name: str
    value: "Expr"
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Call:
    """`func(args..., kw = v...)`, optionally `as NAME` (the instance name: weight sharing)."""
    func: "Expr"
    args: list["Expr"]
    kwargs: list[Keyword] = field(default_factory=list)
    as_name: str | None = None
    loc: Loc | None = _loc()
    as_loc: Loc | None = _meta()


@dataclass(frozen=True)
class Slice:
    """`lo:hi:step` inside an index; absent parts are None."""
    lo: "Expr | None" = None
    hi: "Expr | None" = None
    step: "Expr | None" = None
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Index:
    """`value[item, ...]`, each item an expression or a Slice."""
    value: "Expr"
    items: list["Expr | Slice"]
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class ListLit:
    items: list["Expr"]
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class DictLit:
    """`{key: value, ...}`; keys are expressions (usually names: `{D: 2.0}`)."""
    items: list[tuple["Expr", "Expr"]]
    loc: Loc | None = _loc()


Expr = Union[Num, Str, Bool, Name, Attr, BinOp, UnaryOp, Compare, Pipe, Call, Index, ListLit, DictLit]


# ---------------------------------------------------------------------- types

@dataclass(frozen=True)
class Star:
    """`*` in a shape pattern: any number of leading dims."""
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class TensorType:
    """`dtype[dims]`. dtype is kept as written (validated later); "f32" when omitted
    (then `explicit_dtype` is False). Dims are Num, Name, arithmetic BinOp/UnaryOp, or Star."""
    dtype: str
    dims: list["Expr | Star"]
    loc: Loc | None = _loc()
    dtype_loc: Loc | None = _meta()
    explicit_dtype: bool = _meta(True)


# ----------------------------------------------------------------- statements

@dataclass(frozen=True)
class Input:
    name: str
    type: TensorType
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class ParamDecl:
    """`param name: type ~ init`."""
    name: str
    type: TensorType
    init: "Expr"
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class StateDecl:
    """`state name: type ~ init` (carried across steps, not trained)."""
    name: str
    type: TensorType
    init: "Expr"
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Assign:
    """`a = expr` or `a, b = expr`; `target_locs[i]` is where targets[i] is written."""
    targets: list[str]
    expr: "Expr"
    loc: Loc | None = _loc()
    target_locs: list[Loc] | None = _meta()


@dataclass(frozen=True)
class Output:
    """`output name = expr` or `output name` (expr None: export an existing binding)."""
    name: str
    expr: "Expr | None" = None
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Loss:
    """`loss = expr` (name None) or `loss name = expr wrt G, D.h1` (wrt: dotted paths)."""
    name: str | None
    expr: "Expr"
    wrt: list[str] = field(default_factory=list)
    loc: Loc | None = _loc()
    wrt_locs: list[Loc] | None = _meta()


@dataclass(frozen=True)
class Metric:
    name: str
    expr: "Expr"
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Return:
    exprs: list["Expr"]
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Update:
    """`update name = expr`: the new value of state `name` after a training step."""
    name: str
    expr: "Expr"
    loc: Loc | None = _loc()


Stmt = Union[Input, ParamDecl, StateDecl, Assign, Output, Loss, Metric, Return, Update]


# ---------------------------------------------------------------------- items

@dataclass(frozen=True)
class Arg:
    """A layer argument. kind: "tensor" (type is a TensorType), "int", "float",
    "fn" (untyped with a name/call default: `act = identity`) or "any" (untyped)."""
    name: str
    type: TensorType | None = None
    kind: str = "any"
    default: "Expr | None" = None
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Setting:
    """`name = value` in a train block."""
    name: str
    expr: "Expr"
    loc: Loc | None = _loc()


@dataclass(frozen=True)
class Const:
    """`const NAME = expr`. `doc` is the comment block directly above (or None)."""
    name: str
    expr: "Expr"
    doc: str | None = None
    loc: Loc | None = _loc()
    end_line: int = _meta(0)


@dataclass(frozen=True)
class Layer:
    """`layer NAME(args) { body }`; the result is a Return statement in the body."""
    name: str
    args: list[Arg]
    body: list[Stmt]
    doc: str | None = None
    loc: Loc | None = _loc()
    end_line: int = _meta(0)   # line of the closing `}`


@dataclass(frozen=True)
class Model:
    """`model NAME { body }`: a trainable graph."""
    name: str
    body: list[Stmt]
    doc: str | None = None
    loc: Loc | None = _loc()
    end_line: int = _meta(0)


@dataclass(frozen=True)
class Train:
    """`train NAME { setting = value ... }`: how to train model NAME."""
    name: str
    settings: list[Setting]
    doc: str | None = None
    loc: Loc | None = _loc()
    end_line: int = _meta(0)


@dataclass(frozen=True)
class Import:
    """`import "file.onnx" as NAME`: an ONNX model used as a layer (path relative to the spec)."""
    path: str
    name: str
    doc: str | None = None
    loc: Loc | None = _loc()
    end_line: int = _meta(0)


Item = Union[Const, Layer, Model, Train, Import]


@dataclass(frozen=True)
class Comment:
    """A `# ...` comment: `text` includes the `#`; `inline` when code precedes it on its line."""
    line: int
    col: int
    text: str
    inline: bool


@dataclass(frozen=True)
class Program:
    """A parsed spec: its items in order. `comments` (every comment, for the
    formatter) and `blank_lines` (line numbers of empty lines) record layout only."""
    items: list[Item]
    comments: list[Comment] = _meta(None)
    blank_lines: frozenset[int] = _meta(frozenset())
    source: Source | None = _meta()
