"""dslc_runtime: runs dslc's compiled ONNX graphs (training, evaluation,
inference) on ONNX Runtime, CPU or CUDA — with data feeding, checkpoints and
export. Needs only numpy, onnx, onnxruntime and tqdm (matplotlib for plots);
never the compiler.

    from dslc_runtime import Trainer
    t = Trainer(train_proto, evaluation=eval_proto, inference=infer_proto, device="cpu")
    history = t.fit("digits", epochs=5, out_dir="runs/digits")
    t.export("model.onnx")
"""
from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from .data import Dataset, builtin_names, check_arrays, load_dataset, load_npz, resolve_data_path
from .errors import (CheckpointError, DataError, DeviceError, ManifestError, RuntimeFailure,
                     TrainingDiverged)
from .export import with_weights
from .files import OutputError, atomic_write, save_model
from .manifest import Manifest, parse_manifest, read_manifest, write_manifest
from .session import BoundRunner, Device, make_session
from .trainer import Trainer

__all__ = [
    "Trainer", "make_session", "Device", "BoundRunner",
    "Manifest", "read_manifest", "parse_manifest", "write_manifest",
    "Dataset", "load_dataset", "load_npz", "check_arrays", "resolve_data_path", "builtin_names",
    "save_checkpoint", "load_checkpoint", "has_checkpoint", "with_weights", "save_model", "atomic_write",
    "OutputError",
    "RuntimeFailure", "ManifestError", "DataError", "DeviceError", "CheckpointError", "TrainingDiverged",
]
