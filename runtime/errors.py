"""Errors the runtime reports to users. Each message is one line that says
what was expected and what was found; the CLI prints it and exits non-zero."""
from __future__ import annotations


class RuntimeFailure(RuntimeError):
    """Base of every error the runtime raises on purpose."""


class ManifestError(RuntimeFailure):
    """The `dslc.manifest` of a model is missing, malformed or disagrees with the graph."""


class DataError(RuntimeFailure):
    """A data file or array does not fit the model's data inputs."""


class DeviceError(RuntimeFailure):
    """The requested device cannot be used (never silently replaced by the CPU)."""


class CheckpointError(RuntimeFailure):
    """A checkpoint is missing, unreadable or does not fit the model."""


class TrainingDiverged(RuntimeFailure):
    """A loss became NaN or Inf. Attributes: step, loss, value, node (name, op_type,
    doc_string of the first node whose output was non-finite, or None)."""

    def __init__(self, message: str, step: int, loss: str, value: float, node: dict | None):
        super().__init__(message)
        self.step, self.loss, self.value, self.node = step, loss, value, node
