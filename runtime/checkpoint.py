"""Checkpoints: a folder holding

    carried-<tag>.npz   every carried value, keyed by its graph input name (no pickle)
    checkpoint.json     {"format": 1, "carried": "carried-<tag>.npz", "best": ... , ...meta}

checkpoint.json is the commit record: it is replaced (atomically) only after
the .npz it names is fully on disk, so a crash at any moment leaves the
previous checkpoint loadable. Files no longer named by the JSON are removed
afterwards.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import CheckpointError

META = "checkpoint.json"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows: directories cannot be opened; os.replace is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temp file in path's folder, fsync it, then
    os.replace it onto `path`. On any error the temp file is removed and `path` is untouched."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}))


def save_checkpoint(folder, carried: dict[str, np.ndarray], meta: dict,
                    best: tuple[int, dict[str, np.ndarray]] | None = None) -> Path:
    """Write a checkpoint into `folder` (created if needed). `meta` must be JSON-able
    and hold `step` (the number of runs so far). `best`, when given, is
    (step it was reached at, carried values): the best epoch so far, kept for
    early stopping; it is written only when it changed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = {"carried": f"carried-s{int(meta['step']):09d}.npz"}
    _write_npz(folder / names["carried"], carried)
    if best is not None:
        names["best"] = f"best-s{int(best[0]):09d}.npz"
        old = _read_meta(folder, missing_ok=True) or {}
        if old.get("best") != names["best"] or not (folder / names["best"]).is_file():
            _write_npz(folder / names["best"], best[1])
    record = {k: v for k, v in meta.items() if k not in ("carried", "best")}
    record.update(format=1, **names)
    atomic_write(folder / META, lambda f: f.write(json.dumps(record, indent=1, default=_json_default).encode()))
    keep = {META} | set(names.values())
    for p in folder.iterdir():   # older npz files, and temp files left by a crash
        if p.name not in keep and p.suffix in (".npz", ".tmp"):
            try:
                p.unlink()
            except OSError:
                pass
    return folder


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON-able: {type(x).__name__}")


def _read_meta(folder: Path, missing_ok: bool = False) -> dict | None:
    path = Path(folder) / META
    if not path.is_file():
        if missing_ok:
            return None
        raise CheckpointError(f"no checkpoint in {str(folder)!r} (missing {META})")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable: {e}") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:
        raise CheckpointError(f"checkpoint file {str(path)!r} is unreadable: {e}") from None


def load_checkpoint(folder) -> tuple[dict[str, np.ndarray], dict, dict[str, np.ndarray] | None]:
    """(carried values, meta, best values or None) of the checkpoint in `folder`."""
    folder = Path(folder)
    meta = _read_meta(folder)
    carried = _read_npz(folder / meta["carried"])
    best = _read_npz(folder / meta["best"]) if meta.get("best") else None
    return carried, meta, best


def has_checkpoint(folder) -> bool:
    return (Path(folder) / META).is_file()
