"""Writing files safely: every file dslc writes goes through here.

atomic_write: a temp file in the target's folder, fsync, rename — a crash or a
full disk leaves the old file (or none), never half a file; the temp file is
removed on failure; the result gets normal permissions (0666 less the umask).
A failure is an OutputError naming the path.

save_model / session_source: models whose initializers exceed ONNX's 2 GB
protobuf limit are stored as ONNX external data beside the model (one
`<name>.<tag>.data` file, committed by the model file's rename)."""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import onnx

from .errors import RuntimeFailure

# initializer bytes above which a model is stored with external data (2 GiB less room for the graph)
EXTERNAL_DATA_BYTES = 2 ** 31 - 2 ** 27


class OutputError(RuntimeFailure):
    """A file dslc was asked to write could not be written (disk full, read-only, not a folder)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def ensure_folder(folder) -> Path:
    """mkdir -p, as an OutputError naming the folder when it cannot be made."""
    folder = Path(folder)
    for up in [folder, *folder.parents]:          # a file in the way: name it
        if up.exists():
            if not up.is_dir():
                raise OutputError(f"cannot write into {up}: it is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write into {folder}: it is a file, not a folder") from None
    except OSError as e:
        raise OutputError(f"cannot create the folder {folder}: {_why(e)}") from None
    if not folder.is_dir():
        raise OutputError(f"cannot write into {folder}: it is a file, not a folder")
    return folder


def atomic_write(path, write) -> Path:
    """Call write(binary file) on a temp file beside `path`, then rename it onto `path`."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_why(e)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {path}: {_why(e)}") from None
        raise
    _fsync_dir(path.parent)
    return path


def write_bytes(path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def initializer_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def needs_external_data(model: onnx.ModelProto) -> bool:
    return initializer_bytes(model) > EXTERNAL_DATA_BYTES


def save_model(model: onnx.ModelProto, path) -> list[Path]:
    """Write `model` to `path` atomically; with its initializers as external data
    beside it when they exceed EXTERNAL_DATA_BYTES. Returns the files written."""
    path = Path(path)
    if not needs_external_data(model):
        return [write_bytes(path, model.SerializeToString())]
    from onnx.external_data_helper import convert_model_to_external_data, write_external_data_tensors
    m = onnx.ModelProto()
    m.CopyFrom(model)
    data_name = f"{path.name}.{secrets.token_hex(4)}.data"
    convert_model_to_external_data(m, all_tensors_to_one_file=True, location=data_name,
                                   size_threshold=min(1024, EXTERNAL_DATA_BYTES))   # small ones stay inline
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)) \
        if path.parent.is_dir() else None
    if tmp is None:
        raise OutputError(f"cannot write {path}: its folder {path.parent} does not exist")
    try:
        write_external_data_tensors(m, str(tmp))          # the data, under tmp/
        if (tmp / data_name).exists():
            os.chmod(tmp / data_name, 0o666 & ~_umask())
            os.replace(tmp / data_name, path.parent / data_name)
        write_bytes(path, m.SerializeToString())          # the commit: the model names the new data
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_why(e)}") from None
    finally:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    for old in path.parent.glob(f"{path.name}.*.data"):   # data of earlier saves
        if old.name != data_name:
            try:
                old.unlink()
            except OSError:
                pass
    return [path, path.parent / data_name]


class session_source:
    """`with session_source(model) as src:` bytes or a file path that
    onnxruntime loads `model` from; large models go through a temp folder holding
    the model with external data (removed on exit)."""

    def __init__(self, model: onnx.ModelProto):
        self.model, self.tmp = model, None

    def __enter__(self):
        if not needs_external_data(self.model):
            return self.model.SerializeToString()
        self.tmp = tempfile.TemporaryDirectory(prefix="dslc-model-")
        path = Path(self.tmp.name) / "model.onnx"
        save_model(self.model, path)
        return str(path)

    def __exit__(self, *exc):
        if self.tmp is not None:
            self.tmp.cleanup()
        return False
