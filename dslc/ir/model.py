"""What the front end (and the Python builder) hand to the back end: checked
models and training setups, with every tensor an IR node."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

from ..errors import Loc, SpecError, suggest
from .graph import Graph, substitute
from .node import Node


@dataclass(frozen=True)
class HyperExpr:
    """A setting written as an expression of the step counter t (1 at the first
    step): IR `node` over the f32 scalar leaf `t`, elaborated once by the front
    end. `expr(t_node)` is the same IR over the graph's own t."""
    node: Node
    t: Node

    def __call__(self, t: Node) -> Node:
        return substitute(self.node, {self.t.id: t})


# A hyper-parameter is a number, or (for the learning rate and the schedule) an
# expression of t: a HyperExpr, or (Python builder) a function of the node t
# building IR, e.g. `lambda t: 0.01 * (1 + 1e-4 * t) ** -0.75`.
Hyper = Union[float, HyperExpr, Callable[[Node], Node]]


@dataclass
class Loss:
    name: str
    node: Node
    wrt: list[str] | None = None      # binding paths whose params it updates (None: all)
    loc: Loc | None = None


@dataclass
class Model:
    """A checked model: data inputs, params and state (by path), the state's
    new values in training mode, and named outputs, losses and metrics."""
    name: str
    inputs: dict[str, Node] = field(default_factory=dict)
    params: dict[str, Node] = field(default_factory=dict)
    states: dict[str, Node] = field(default_factory=dict)
    state_updates: dict[str, Node] = field(default_factory=dict)
    outputs: dict[str, Node] = field(default_factory=dict)
    losses: dict[str, Loss] = field(default_factory=dict)
    metrics: dict[str, Node] = field(default_factory=dict)
    loc: Loc | None = None
    doc: str = ""

    def graph(self) -> Graph:
        roots = {f"output:{k}": v for k, v in self.outputs.items()}
        roots.update({f"loss:{k}": v.node for k, v in self.losses.items()})
        roots.update({f"metric:{k}": v for k, v in self.metrics.items()})
        roots.update({f"state:{k}": v for k, v in self.state_updates.items()})
        return Graph(roots)

    def params_of(self, loss: Loss) -> list[str]:
        """The param paths a loss updates: those under its `wrt` groups, or all."""
        if loss.wrt is None:
            return list(self.params)
        return [p for p in self.params if any(p == g or p.startswith(g + ".") for g in loss.wrt)]


@dataclass
class Optimizer:
    kind: str                                  # sgd | adagrad | rmsprop | adam
    args: dict[str, Hyper] = field(default_factory=dict)
    loc: Loc | None = None


@dataclass
class TrainSetup:
    """A validated `train` block (LANGUAGE.md §9)."""
    model: str
    optimizer: Optimizer
    data: str | None = None
    split: float | None = None
    valid: str | None = None
    schedule: tuple | HyperExpr | Callable | None = None   # ('cosine', total) ... or an expression of t
    weight_decay: float = 0.0
    l1: float = 0.0
    clip: float | None = None                  # global gradient-norm bound
    average: float | None = None               # Polyak alpha
    early_stopping: tuple | None = None        # (patience, metric[, mode of a metric])
    batch: int = 32
    epochs: int = 10
    seed: int = 0
    steps: list[str] | None = None
    lr_scale: dict[str, float] = field(default_factory=dict)
    freeze: list[str] = field(default_factory=list)       # binding paths whose params do not train
    lora: dict[str, int] = field(default_factory=dict)     # binding path -> adapter rank
    lora_merge: bool = True                                # export W + D U as W
    loc: Loc | None = None


@dataclass
class Program:
    """A whole spec: its models and training setups (and the text it came from)."""
    models: dict[str, Model] = field(default_factory=dict)
    trains: dict[str, TrainSetup] = field(default_factory=dict)
    ast: object = None
    filename: str = "<text>"
    printer: Callable[[object], str] | None = None     # the front end's AST -> `.dl` text

    def model(self, name: str | None = None) -> Model:
        if name is None:
            if len(self.models) != 1:
                raise SpecError(f"{self.filename} has {len(self.models)} models "
                                f"({', '.join(self.models) or 'none'}); choose one with -m")
            return next(iter(self.models.values()))
        if name not in self.models:
            raise SpecError(f"no model named `{name}` in {self.filename}" + suggest(name, self.models))
        return self.models[name]

    def to_dl(self) -> str:
        """The spec as canonical `.dl` text (parses back to the same graph)."""
        return self.printer(self.ast)
