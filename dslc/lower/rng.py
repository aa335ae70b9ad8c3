"""Counter-based random numbers inside the training graph.

ONNX's random ops take a fixed seed attribute, so their streams restart with
every new session and a resumed run would draw different noise. In the
training graph every draw is instead a pure function of (seed, draw id, step
counter, element index), hashed with the SplitMix64 finaliser:

    k = (base + i) * 0x9E3779B97F4A7C15            (mod 2^64)
    k ^= k >> 30;  k *= 0xBF58476D1CE4E5B9
    k ^= k >> 27;  k *= 0x94D049BB133111EB
    k ^= k >> 31
    u = (k >> 40) * 2^-24                          uniform on [0, 1) in float32

with base = step * 2^32 + seed * 1000003 + (draw number, stream) salt, the
seed being the graph's int64 input `seed` (a hyper-parameter: the runtime
feeds the run's seed). In a gradient graph (data-parallel training) the int64
input `row_offset` shifts the element index of draws whose leading axis is the
batch by row_offset * (elements per row), so a worker computing rows
[o, o + b) of a global batch draws what one process draws for those rows. Normals come from Box-Muller on two such streams. The
step counter is carried and checkpointed, so a resumed run draws exactly the
same noise.
"""
from __future__ import annotations

import numpy as np

GAMMA = 0x9E3779B97F4A7C15
K1, K2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _u64(b, v: int) -> str:
    return b.tensor_const(np.asarray(v, dtype=np.uint64))


def _mix(b, k: str) -> str:
    for shift, mult in ((30, K1), (27, K2)):
        k = b.Mul(b.BitwiseXor(k, b.BitShift(k, _u64(b, shift), direction="RIGHT")), _u64(b, mult))
    return b.BitwiseXor(k, b.BitShift(k, _u64(b, 31), direction="RIGHT"))


def uniform_bits(b, shape, uid: int, stream: int = 0) -> str:
    """float32 uniforms on [0, 1) of the given (maybe symbolic) shape."""
    dims = b.dims(shape)
    n = b.ReduceProd(dims, keepdims=0) if len(shape) else b.ints([1])
    idx = b.Range(b.tensor_const(np.asarray(0, np.int64)),
                  n if len(shape) else b.tensor_const(np.asarray(1, np.int64)),
                  b.tensor_const(np.asarray(1, np.int64)))
    salt = (b.draw(uid) * 7_919 + stream * 104_729) % (2 ** 31)
    # base = step * 2^32 + seed * 1000003 + salt: a new block of keys at every step and seed
    base = b.Add(b.Mul(b.rng_counter, b.tensor_const(np.asarray(2 ** 32, np.int64))),
                 b.tensor_const(np.asarray(salt, np.int64)))
    seed = b.rng_seed if b.rng_seed is not None else b.tensor_const(np.asarray(b.base_seed, np.int64))
    base = b.Add(base, b.Mul(seed, b.tensor_const(np.asarray(1_000_003, np.int64))))
    if b.rng_row_offset is not None and len(shape) and shape[0] == b.rng_batch:
        # a worker holding rows [o, o + b) of the global batch hashes the global
        # element index: i + o * (elements per row)
        row = b.ReduceProd(b.dims(shape[1:]), keepdims=0) if len(shape) > 1 else b.tensor_const(np.asarray(1, np.int64))
        base = b.Add(base, b.Mul(b.rng_row_offset, row))
    k = b.Cast(b.Add(idx, base), to=13)                  # 13 = UINT64
    k = _mix(b, b.Mul(k, _u64(b, GAMMA)))
    top = b.Cast(b.BitShift(k, _u64(b, 40), direction="RIGHT"), to=1)   # 1 = FLOAT
    u = b.Mul(top, b.tensor_const(np.asarray(2.0 ** -24, np.float32)))
    return b.Reshape(u, dims)


def uniform(b, shape, dtype, uid):
    u = uniform_bits(b, shape, uid)
    return u if dtype == "f32" else b.Cast(u, to=b.onnx_dtype(dtype))


def normal(b, shape, dtype, uid):
    # Box-Muller: sqrt(-2 log(1 - u1)) cos(2 pi u2), 1 - u1 in (0, 1]
    one = b.tensor_const(np.asarray(1.0, np.float32))
    u1 = b.Sub(one, uniform_bits(b, shape, uid, 0))
    u2 = uniform_bits(b, shape, uid, 1)
    r = b.Sqrt(b.Mul(b.tensor_const(np.asarray(-2.0, np.float32)), b.Log(u1)))
    z = b.Mul(r, b.Cos(b.Mul(u2, b.tensor_const(np.asarray(2 * np.pi, np.float32)))))
    return z if dtype == "f32" else b.Cast(z, to=b.onnx_dtype(dtype))
