"""Checks that keep wrong things from passing silently, shared by `dslc check`
and compile: what the runtime must verify in the data (class-label ranges),
and what would make a valid-looking spec fail later (params that cannot be
stored or initialised)."""
from __future__ import annotations

from .ir.graph import Graph
from .ir.node import Node
from .errors import SpecError
from .ir.types import NUMPY
from .passes import specialize
import numpy as np


def label_classes(roots: dict[str, Node]) -> dict[str, int]:
    """Data inputs used directly as class indices (one_hot / cross_entropy
    labels): input name -> number of classes K, so the runtime can refuse a
    label outside [0, K) instead of training on an all-zero target."""
    out: dict[str, int] = {}
    for n in Graph(roots).order():
        if n.op == "one_hot" and n.inputs[0].op == "input":
            name = n.inputs[0].attrs["name"]
            out[name] = min(out.get(name, n.attrs["depth"]), n.attrs["depth"])
    return out


MAX_PARAM_BYTES = 2 ** 36   # 64 GiB of initial values: more cannot be drawn on any machine we target


def check_program(prog) -> list:
    """SpecErrors (located) for what compile would refuse in a program that
    elaborated: a loss in a train block that updates no params, params too
    large to draw. `dslc check` reports them, so check rejects what compile would."""
    errors = []
    for name, m in prog.models.items():
        total, biggest = 0, None
        for path, p in list(m.params.items()) + list(m.states.items()):
            if not all(isinstance(d, int) for d in p.shape):
                continue                       # reported where it was declared
            size = int(np.prod(p.shape, dtype=object)) * np.dtype(NUMPY[p.dtype]).itemsize
            total += size
            if biggest is None or size > biggest[0]:
                biggest = (size, path, p)
        if total > MAX_PARAM_BYTES:
            size, path, p = biggest
            errors.append(SpecError(f"model `{name}` has {total / 2 ** 30:.1f} GiB of params and state, more "
                                    f"than the {MAX_PARAM_BYTES // 2 ** 30} GiB dslc can draw; the largest is "
                                    f"`{path}` {p.type} ({size / 2 ** 30:.1f} GiB)", p.loc or m.loc))
        for kind, table in (("loss", {k: v.node for k, v in m.losses.items()}), ("metric", m.metrics)):
            for k, node in table.items():
                if k in m.inputs:      # graph outputs and inputs share one name space in ONNX
                    loc = m.losses[k].loc if kind == "loss" else node.loc
                    errors.append(SpecError(f"{kind} `{k}` has the name of the input `{k}`; "
                                            f"give it another name", loc or m.loc))
        setup = prog.trains.get(name)
        if setup is None or not m.losses:
            continue
        fwd = {f"loss:{k}": v.node for k, v in m.losses.items()}
        fwd.update({f"metric:{k}": v for k, v in m.metrics.items()})
        fwd.update({f"state:{k}": v for k, v in m.state_updates.items()})
        fwd, _ = specialize(fwd, "train")
        used = {n.attrs["name"] for n in Graph(fwd).order() if n.op == "param"}
        for lname in dict.fromkeys(setup.steps or list(m.losses)):
            loss = m.losses.get(lname)
            if loss is not None and not any(p in used for p in m.params_of(loss)):
                why = (f"no param under {', '.join(f'`{g}`' for g in loss.wrt)} is used by the model"
                       if loss.wrt else "it depends on no param")
                errors.append(SpecError(f"loss `{lname}` updates no params: {why}, so training it "
                                        f"changes nothing (check its `wrt`)", loss.loc))
    return errors
