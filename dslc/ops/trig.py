"""Trigonometric primitives (elementwise family): schedules (cosine) and user specs."""
from __future__ import annotations

import numpy as np

from ..ir.node import apply as P
from .elementwise import float_same
from ..ir.registry import primitive

primitive("sin", "elementwise", float_same,
          vjp=lambda g, out, x: (g * P("cos", x),),                     # d sin x = cos x dx
          onnx=lambda b, x: b.Sin(x), np=np.sin)
primitive("cos", "elementwise", float_same,
          vjp=lambda g, out, x: (-(g * P("sin", x)),),                  # d cos x = -sin x dx
          onnx=lambda b, x: b.Cos(x), np=np.cos)
