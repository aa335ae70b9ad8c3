"""OnnxBuilder: the small API that primitives' `onnx` rules lower through.

`b.Relu(x)` appends an ONNX node and returns its output name; keyword
arguments become attributes. Helpers make constants (`scalar`, `ints`,
`tensor`), shape tensors for symbolic dims (`dims`), and per-node seeds.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir import dims as D
from ..ir.types import NUMPY, TensorType

ONNX_DTYPE = {"f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE,
              "i64": TensorProto.INT64, "bool": TensorProto.BOOL}


class Value(str):
    """What an `onnx` rule receives for each input: the ONNX name (a str, so
    rules pass it straight to ops) with the input's IR `type`."""
    type: TensorType

    def __new__(cls, name: str, type: TensorType):
        v = super().__new__(cls, name)
        v.type = type
        return v

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def rank(self) -> int:
        return len(self.type.shape)


class OnnxBuilder:
    """Collects ONNX nodes for one graph. `node` is the IR node being lowered
    (its type and location), `dim_sources` maps a symbol to (tensor, axis)."""

    def __init__(self, dim_sources: dict[str, tuple[str, int]] | None = None, base_seed: int = 0,
                 rng_counter: str | None = None):
        self.nodes: list[onnx.NodeProto] = []
        self.rng_counter = rng_counter      # int64 scalar keying counter-based random draws
        self.rng_seed = None                # int64 scalar input holding the run's seed (or base_seed)
        self.rng_row_offset = None          # int64 scalar input: the first row's index in the global batch
        self.rng_batch = None               # the batch dim: draws whose leading axis it is get the offset
        self.draws: dict[int, int] = {}     # random draw uid -> its number (see `draw`)
        self.dim_sources = dict(dim_sources or {})
        self.base_seed = base_seed
        self.node = None
        self._n = [0]                   # shared with child builders: names stay unique model-wide
        self._cache: dict = {}
        self.split_of: dict = {}        # slice node id -> (axis, sizes, part): lower/driver.py split_groups

    def fresh(self, stem: str = "t") -> str:
        self._n[0] += 1
        return f"_{stem}_{self._n[0]}"

    def child(self) -> "OnnxBuilder":
        """A builder for a nested graph (a Scan/Loop body). It may read the outer
        graph's names made so far (constants, dims), but what it makes stays inside."""
        c = OnnxBuilder(self.dim_sources, self.base_seed, self.rng_counter)
        c.rng_seed, c.rng_row_offset, c.rng_batch = self.rng_seed, self.rng_row_offset, self.rng_batch
        c._n = self._n
        c._cache = dict(self._cache)
        c.split_of = dict(self.split_of)
        return c

    # -- nodes -------------------------------------------------------------
    def op(self, op_type: str, *inputs: str, _outputs: int = 1, **attrs):
        outs = [self.fresh(op_type.lower()) for _ in range(_outputs)]
        doc = ""
        if self.node is not None and self.node.loc is not None:
            doc = f"{self.node.loc.filename}:{self.node.loc.line}"
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, doc_string=doc or None,
                                           **{k: v for k, v in attrs.items() if v is not None}))
        return outs[0] if _outputs == 1 else outs

    def __getattr__(self, op_type: str):
        if not op_type[:1].isupper():
            raise AttributeError(op_type)
        return lambda *inputs, **attrs: self.op(op_type, *inputs, **attrs)

    # -- constants ---------------------------------------------------------
    def tensor(self, values, dtype: str) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(values, dtype=NUMPY[dtype]))

    def tensor_const(self, value: np.ndarray) -> str:
        key = ("c", value.dtype.str, value.shape, value.tobytes())
        if key not in self._cache:
            self._cache[key] = self.op("Constant", value=numpy_helper.from_array(np.asarray(value)))
        return self._cache[key]

    def scalar(self, v, dtype: str = "f32") -> str:
        return self.tensor_const(np.asarray(v, dtype=NUMPY[dtype]))

    def array(self, values, dtype: str) -> str:
        return self.tensor_const(np.asarray(values, dtype=NUMPY[dtype]))

    def ints(self, values) -> str:
        return self.tensor_const(np.asarray(list(values), dtype=np.int64))

    def onnx_dtype(self, dtype: str) -> int:
        return ONNX_DTYPE[dtype]

    def draw(self, uid: int) -> int:
        """The canonical number of a random draw: its order of lowering, so the
        streams depend on the spec and the seed, not on what the process made before."""
        return self.draws.setdefault(uid, len(self.draws))

    def seed(self, uid: int) -> float:
        return float((self.base_seed * 1000003 + self.draw(uid) * 7919 + 17) % 2147483647)

    # -- shapes ------------------------------------------------------------
    def dims(self, shape) -> str:
        """A 1-D int64 tensor holding `shape`; symbolic dims read at run time."""
        if all(isinstance(d, int) for d in shape):
            return self.ints(shape)
        key = ("dims", tuple(shape))
        if key not in self._cache:
            parts = [self.ints([d]) if isinstance(d, int) else self.dim(d) for d in shape]
            self._cache[key] = self.Concat(*parts, axis=0) if len(parts) > 1 else parts[0]
        return self._cache[key]

    def dim(self, d) -> str:
        """A [1] int64 tensor holding the value of dim `d` (an int or Sym)."""
        if isinstance(d, int):
            return self.ints([d])
        key = ("dim", d)
        if key in self._cache:
            return self._cache[key]
        total = None
        for mono, c in sorted(d.terms, key=lambda mc: repr(mc)):
            term = self.ints([c]) if c != 1 or not mono else None
            for atom in mono:
                v = self._atom(atom)
                term = v if term is None else self.Mul(term, v)
            total = term if total is None else self.Add(total, term)
        self._cache[key] = total
        return total

    def _atom(self, atom) -> str:
        if isinstance(atom, D.FloorDiv):
            return self.Div(self.dim(atom.num), self.ints([atom.den]))
        key = ("sym", atom)
        if key not in self._cache:
            if atom not in self.dim_sources:
                raise AssertionError(f"no graph input determines the dim `{atom}`")
            tensor, axis = self.dim_sources[atom]
            self._cache[key] = self.Shape(tensor, start=axis, end=axis + 1)
        return self._cache[key]
