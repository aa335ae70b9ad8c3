"""Export: the inference graph with its param/state initializers replaced by
trained values."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import RuntimeFailure


def with_weights(inference: onnx.ModelProto, values: dict[str, np.ndarray], check: bool = True) -> onnx.ModelProto:
    """A copy of `inference` whose initializers named in `values` hold those
    values (dtype and shape must match the initializer they replace).
    Names in `values` the inference graph does not use are skipped (e.g. params
    only the training graph needs)."""
    out = onnx.ModelProto()
    out.CopyFrom(inference)
    for init in out.graph.initializer:
        if init.name not in values:
            continue
        old = numpy_helper.to_array(init)
        new = np.asarray(values[init.name])
        if new.shape != old.shape or new.dtype != old.dtype:
            raise RuntimeFailure(f"export: `{init.name}` is {old.dtype}{list(old.shape)} in the inference "
                                 f"graph but the trained value is {new.dtype}{list(new.shape)}")
        init.CopyFrom(numpy_helper.from_array(new, init.name))
    from .files import needs_external_data
    if check and not needs_external_data(out):   # over 2 GB the checker needs the saved file
        onnx.checker.check_model(out, full_check=True)
    return out
