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
from pathlib import Path

import numpy as np

from .errors import CheckpointError
from .files import atomic_write, ensure_folder   # temp + rename, normal permissions, OutputError

META = "checkpoint.json"


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}))


def save_checkpoint(folder, carried: dict[str, np.ndarray], meta: dict,
                    best: tuple[int, dict[str, np.ndarray]] | None = None) -> Path:
    """Write a checkpoint into `folder` (created if needed). `meta` must be JSON-able
    and hold `step` (the number of runs so far). `best`, when given, is
    (step it was reached at, carried values): the best epoch so far, kept for
    early stopping; it is written only when it changed."""
    folder = ensure_folder(folder)
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
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:       # ValueError: bad JSON or bad UTF-8
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable: {e}") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:
        raise CheckpointError(f"checkpoint file {str(path)!r} is unreadable: {e}") from None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate_meta(meta, folder: Path) -> dict:
    """Check every field of checkpoint.json (types, ranges, agreement between
    epoch, step and history; array files inside the folder); CheckpointError otherwise."""
    where = f"checkpoint {str(Path(folder) / META)!r}"

    def bad(msg):
        raise CheckpointError(f"{where}: {msg}")

    if not isinstance(meta, dict):
        bad(f"expected a JSON object, found {type(meta).__name__}")
    if meta.get("format") != 1:
        bad(f"format {meta.get('format')!r} is not supported (expected 1)")
    for key in ("carried", "best"):
        name = meta.get(key)
        if name is None and key == "best":
            continue
        if not isinstance(name, str) or not name.endswith(".npz") or Path(name).name != name \
                or name.startswith("."):
            bad(f"`{key}` should name an .npz file inside the checkpoint folder, found {name!r}")
        if not (Path(folder) / name).is_file():
            bad(f"`{key}` names {name!r}, which is not in the checkpoint folder")
    for key in ("epoch", "step"):
        if not _is_int(meta.get(key)) or meta[key] < 0:
            bad(f"`{key}` should be a non-negative integer, found {meta.get(key)!r}")
    epoch, step = meta["epoch"], meta["step"]
    if "round_pos" in meta and (not _is_int(meta["round_pos"]) or meta["round_pos"] < 0):
        bad(f"`round_pos` should be a non-negative integer, found {meta['round_pos']!r}")
    if step < epoch:       # (steps without a finished epoch are fine: train_step then save)
        bad(f"epoch {epoch} and step {step} disagree (every epoch runs at least one step)")
    bpe = meta.get("batches_per_epoch")
    if bpe is not None:
        if not _is_int(bpe) or bpe < 1:
            bad(f"`batches_per_epoch` should be a positive integer, found {bpe!r}")
        if step != epoch * bpe:
            bad(f"step {step} does not match epoch {epoch} at {bpe} steps per epoch "
                f"(expected step {epoch * bpe})")
    hist = meta.get("history", [])
    if not isinstance(hist, list) or not all(isinstance(r, dict) for r in hist):
        bad("`history` should be a list of per-epoch objects")
    if len(hist) != epoch:
        bad(f"`history` has {len(hist)} rows for {epoch} epochs")
    for i, row in enumerate(hist):
        if row.get("epoch", i + 1) != i + 1 or not all(_is_num(v) or v is None for v in row.values()):
            bad(f"`history` row {i + 1} is malformed: {row!r}"[:300])
    if not isinstance(meta.get("stopped_early", False), bool):
        bad(f"`stopped_early` should be true or false, found {meta.get('stopped_early')!r}")
    if not isinstance(meta.get("settings", {}), dict):
        bad("`settings` should be an object")
    if not isinstance(meta.get("model", ""), str):
        bad(f"`model` should be a string, found {meta.get('model')!r}")
    bm = meta.get("best_metric")
    if bm is not None:
        ok = (isinstance(bm, dict) and isinstance(bm.get("metric"), str) and _is_num(bm.get("value"))
              and _is_int(bm.get("epoch")) and 1 <= bm["epoch"] <= epoch
              and _is_int(bm.get("step")) and 0 < bm["step"] <= step)
        if not ok:
            bad(f"`best_metric` is malformed: {bm!r}"[:300])
        if not meta.get("best"):
            bad("`best_metric` is given but no `best` file")
    return meta


def load_checkpoint(folder) -> tuple[dict[str, np.ndarray], dict, dict[str, np.ndarray] | None]:
    """(carried values, meta, best values or None) of the checkpoint in `folder`,
    every field of checkpoint.json validated first."""
    folder = Path(folder)
    meta = validate_meta(_read_meta(folder), folder)
    carried = _read_npz(folder / meta["carried"])
    best = _read_npz(folder / meta["best"]) if meta.get("best") else None
    return carried, meta, best


def has_checkpoint(folder) -> bool:
    return (Path(folder) / META).is_file()
