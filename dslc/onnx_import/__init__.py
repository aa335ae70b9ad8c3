"""ONNX import: an existing ONNX model as IR (DESIGN.md: ONNX import -> IR).

    model = dslc.import_onnx("model.onnx")          # an ir.model.Model named "net"
    dslc.compile(model).inference                     # the same function, re-exported

In a spec, `import "model.onnx" as net` and `logits = net(x)` use it as a layer
(dslc/elaborate/imports.py). One converter per ONNX op, in a table:
  ops_math.py   elementwise, MatMul/Gemm, reductions, Softmax, LayerNormalization, Erf
  ops_shape.py      Shape/Constant chains (folded), Reshape, Transpose, Slice, Gather, Concat, ...
  ops_index.py      GatherElements, ScatterElements
  ops_construct.py  Range (symbolic limits too), Trilu
  ops_nn.py         Conv, pooling, BatchNormalization, Dropout
  ops_random.py     RandomNormal(Like), RandomUniform(Like), seeds kept
  ops_rnn.py        LSTM, GRU, RNN as scan cells
  ops_control.py    Scan (bodies may read the outer scope)
"""
from __future__ import annotations

from ..errors import Loc, SpecError
from ..init import stored
from ..ir import dims as D
from ..ir.model import Model
from ..ir.types import TensorType
from ..ops.leaves import input_, param, state
from .importer import OPSETS, OnnxModel, Port, sanitize, symbol
from .table import CONVERTERS, supported


def leaf_maker(prefix: str, params: dict, states: dict, source: str):
    """The `leaf` callback of OnnxModel.build: params / states at `prefix.<sanitized name>`,
    starting from the stored initializer (`init = ("onnx", <stored value>)`)."""

    def leaf(kind, name, array):
        path = f"{prefix}.{sanitize(name)}" if prefix else sanitize(name)
        table, make = (params, param) if kind == "param" else (states, state)
        if path not in table:
            dt = {"float32": "f32", "float64": "f64"}.get(str(array.dtype), "f32")
            table[path] = make(path, TensorType(dt, tuple(array.shape)), ("onnx", stored(array, f"{source}:{name}")))
        return table[path]
    return leaf


def input_types(m: OnnxModel) -> dict:
    """Each graph input's IR type (unknown dims become fresh symbols)."""
    out = {}
    for k, p in enumerate(m.inputs):
        if p.dtype is None:
            raise SpecError(f"{m.path}: input `{p.name}` is {p.onnx_type}, which dslc cannot feed")
        shape = tuple(d if d is not None else D.Sym.var(f"{symbol(p.name)}_{i}")
                      for i, d in enumerate(p.shape or ()))
        out[p.name] = TensorType(p.dtype, shape)
    return out


def import_onnx(path, name: str = "net", loc: Loc | None = None, types: dict | None = None) -> Model:
    """An ONNX model as a dslc Model: inputs named as in the ONNX graph (sanitized),
    params and states at `name.<initializer>`, the graph's outputs as outputs.
    `types` may fix inputs' types (onnx input name -> TensorType), e.g. a known batch."""
    m = OnnxModel.load(path, loc)
    inputs = {p: input_(sanitize(p).replace(".", "_"), (types or {}).get(p, t))
              for p, t in input_types(m).items()}
    params, states = {}, {}
    outs, updates = m.build(inputs, leaf_maker(name, params, states, str(path)), loc)
    model = Model(name, inputs={n.attrs["name"]: n for n in inputs.values()}, params=params, states=states,
                  state_updates=updates, outputs={sanitize(k).replace(".", "_"): v for k, v in outs.items()},
                  loc=loc, doc=f"imported from {path}")
    bad = [k for k, v in model.outputs.items() if not hasattr(v, "op")]
    if bad:
        raise SpecError(f"{path}: outputs {', '.join(bad)} are constants, not computed from the inputs", loc)
    return model


__all__ = ["import_onnx", "OnnxModel", "Port", "sanitize", "supported", "CONVERTERS", "OPSETS"]
