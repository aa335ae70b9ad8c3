"""Data feeding: load and check arrays against a manifest's data inputs, split
into train/validation, and cut shuffled batches.

Dtype policy (checked per array):
  - float inputs accept any floating array (float64/float16 are cast to the input's dtype);
  - integer inputs (e.g. int64 labels) accept integer arrays only, cast when every
    value fits; a float array for an integer input is an error;
  - bool inputs accept bool arrays only.
Shapes: the rank must match; fixed dims must be equal; a symbolic dim (a string)
must have the same size in every array that names it, the batch dim included.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DataError
from .manifest import DataInput

BUILTIN_DIR = Path(__file__).resolve().parent / "datasets"


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.npz"))


def resolve_data_path(value: str, spec: str | None = None, log=print) -> Path:
    """Find a data file named in a train block.

    Tried in order: relative to the spec file's folder, then to the cwd (or the
    path itself when absolute); else, when the file's stem (or the bare value)
    names a built-in data set, that one — and `log` says which file is used."""
    p = Path(value)
    tried = []
    if p.is_absolute():
        tried.append(p)
    else:
        if spec:
            tried.append(Path(spec).resolve().parent / p)
        tried.append(Path.cwd() / p)
    for cand in tried:
        if cand.is_file():
            return cand
    stem = p.stem if p.suffix == ".npz" else p.name
    builtin = BUILTIN_DIR / f"{stem}.npz"
    if builtin.is_file():
        if p.suffix or len(p.parts) > 1:  # the user named a file; say what replaced it
            log(f"data: {value} not found; using the built-in data set `{stem}` ({builtin})")
        return builtin
    looked = ", ".join(str(c) for c in tried)
    raise DataError(f"data file {value!r} not found (looked at {looked}); "
                    f"built-in data sets: {', '.join(builtin_names()) or 'none'}")


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an .npz file (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(f"data file {str(path)!r} not found") from None
    except ValueError as e:  # object arrays need pickle: refused
        raise DataError(f"data file {str(path)!r}: {e}") from None
    except Exception as e:
        raise DataError(f"data file {str(path)!r} is not a readable .npz: {e}") from None


def _fmt_shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _cast(name: str, arr: np.ndarray, spec: DataInput) -> np.ndarray:
    want = spec.np_dtype
    have = arr.dtype
    found = f"expected {spec.dtype}{_fmt_shape(spec.shape)}, found {have}{_fmt_shape(arr.shape)}"
    if have == want:
        return arr
    if np.issubdtype(want, np.floating):
        if np.issubdtype(have, np.floating):
            return arr.astype(want)
        raise DataError(f"data array `{name}`: {found} (a {spec.dtype} input needs a floating array)")
    if np.issubdtype(want, np.integer):
        if not np.issubdtype(have, np.integer) or have == np.bool_:
            raise DataError(f"data array `{name}`: {found} (a {spec.dtype} input needs integers)")
        info = np.iinfo(want)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise DataError(f"data array `{name}`: {found} (values do not fit {spec.dtype})")
        return arr.astype(want)
    raise DataError(f"data array `{name}`: {found}")


def check_arrays(arrays: dict, specs: list[DataInput], source: str = "data") -> dict[str, np.ndarray]:
    """Arrays for every data input, cast per the dtype policy; raise DataError
    (one line, naming the array, expected vs found) on the first problem.
    Extra arrays in `arrays` are ignored."""
    out: dict[str, np.ndarray] = {}
    dims: dict[str, tuple[int, str]] = {}   # symbolic dim -> (size, array that fixed it)
    for spec in specs:
        if spec.name not in arrays:
            have = ", ".join(sorted(arrays)) or "none"
            raise DataError(f"{source}: no array `{spec.name}` (expected {spec.dtype}{_fmt_shape(spec.shape)}; "
                            f"arrays found: {have})")
        arr = np.asarray(arrays[spec.name])
        if arr.ndim != len(spec.shape):
            raise DataError(f"data array `{spec.name}`: expected rank {len(spec.shape)} "
                            f"{_fmt_shape(spec.shape)}, found rank {arr.ndim} {_fmt_shape(arr.shape)}")
        for axis, (want, got) in enumerate(zip(spec.shape, arr.shape)):
            if isinstance(want, int):
                if want != got:
                    raise DataError(f"data array `{spec.name}`: expected {_fmt_shape(spec.shape)}, found "
                                    f"{_fmt_shape(arr.shape)} (axis {axis} should be {want})")
            elif want in dims and dims[want][0] != got:
                size, other = dims[want]
                what = "batch lengths differ" if axis == spec.batch_axis else f"dim {want} differs"
                raise DataError(f"data array `{spec.name}`: {what}: {want} = {got} here but {size} in `{other}` "
                                f"(expected {_fmt_shape(spec.shape)}, found {_fmt_shape(arr.shape)})")
            else:
                dims.setdefault(want, (got, spec.name))
        out[spec.name] = _cast(spec.name, arr, spec)
    return out


class Dataset:
    """Checked arrays plus how to cut them into examples along each batch axis."""

    def __init__(self, arrays: dict[str, np.ndarray], specs: list[DataInput]):
        self.specs = {s.name: s for s in specs}
        self.arrays = arrays
        lengths = {arrays[s.name].shape[s.batch_axis] for s in specs if s.batch_axis is not None}
        assert len(lengths) <= 1, lengths  # check_arrays made them agree
        self.n = lengths.pop() if lengths else 1

    @classmethod
    def from_arrays(cls, arrays: dict, specs: list[DataInput], source: str = "data") -> "Dataset":
        return cls(check_arrays(arrays, specs, source), specs)

    def __len__(self) -> int:
        return self.n

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """The examples at `index` (a batch); unbatched arrays come whole."""
        out = {}
        for name, arr in self.arrays.items():
            axis = self.specs[name].batch_axis
            out[name] = arr if axis is None else np.take(arr, index, axis=axis)
        return out

    def split(self, fraction: float) -> tuple["Dataset", "Dataset"]:
        """First `fraction` of the examples (rounded down, at least 1) trains; the rest validates."""
        if not 0 < fraction < 1:
            raise DataError(f"split should be a fraction between 0 and 1, found {fraction}")
        k = max(1, min(self.n - 1, int(self.n * fraction)))
        idx = np.arange(self.n)
        return Dataset(self.take(idx[:k]), list(self.specs.values())), \
            Dataset(self.take(idx[k:]), list(self.specs.values()))

    def order(self, seed: int | None, epoch: int) -> np.ndarray:
        """The epoch's example order: a fresh permutation from default_rng([seed, epoch])
        (no shuffle when seed is None)."""
        return np.arange(self.n) if seed is None else np.random.default_rng([seed, epoch]).permutation(self.n)

    def batches(self, batch: int, seed: int | None, epoch: int):
        """Yield batches in `order(seed, epoch)`; the last batch may be partial."""
        order = self.order(seed, epoch)
        for start in range(0, self.n, batch):
            yield self.take(order[start:start + batch])

    def num_batches(self, batch: int) -> int:
        return -(-self.n // batch)


def load_dataset(source, specs: list[DataInput], spec_path: str | None = None, log=print) -> Dataset:
    """A Dataset from a dict of arrays, a Dataset, an .npz path, or a built-in name."""
    if isinstance(source, Dataset):
        return source
    if isinstance(source, dict):
        return Dataset.from_arrays(source, specs)
    path = resolve_data_path(str(source), spec_path, log=log)
    return Dataset.from_arrays(load_npz(path), specs, source=str(path))
