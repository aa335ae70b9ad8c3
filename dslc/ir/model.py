"""What the front end (and the Python builder) hand to the back end: checked
models and training setups, with every tensor an IR node."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

from ..errors import Loc
from .graph import Graph
from .node import Node

# A hyper-parameter is a number, or (for the learning rate) a function of the
# step counter node t (1 at the first step) building IR: `0.01 * (1 + 1e-4 * t) ** -0.75`.
Hyper = Union[float, Callable[[Node], Node]]


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
    schedule: tuple | Callable | None = None   # ('cosine', total) ... or a function of t
    weight_decay: float = 0.0
    l1: float = 0.0
    clip: float | None = None                  # global gradient-norm bound
    average: float | None = None               # Polyak alpha
    early_stopping: tuple | None = None        # (patience, metric)
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

    def model(self, name: str | None = None) -> Model:
        from ..errors import SpecError, suggest
        if name is None:
            if len(self.models) != 1:
                raise SpecError(f"{self.filename} has {len(self.models)} models "
                                f"({', '.join(self.models) or 'none'}); choose one with -m")
            return next(iter(self.models.values()))
        if name not in self.models:
            raise SpecError(f"no model named `{name}` in {self.filename}" + suggest(name, self.models))
        return self.models[name]

    def to_dl(self) -> str:
        from ..syntax import to_dl
        return to_dl(self.ast)
