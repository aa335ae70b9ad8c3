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
    path itself when absolute). A bare name with no suffix or folder (`digits`)
    is a built-in data set when no such file exists. A file that is named but
    missing is an error — never silently replaced by a built-in set."""
    p = Path(value)
    tried = []
    if p.is_absolute():
        tried.append(p)
    else:
        if spec:
            tried.append(Path(spec).resolve().parent / p)
        tried.append(Path.cwd() / p)
    for cand in tried:
        if cand.exists():
            return cand
    named_file = bool(p.suffix) or len(p.parts) > 1
    builtin = BUILTIN_DIR / f"{p.name}.npz"
    if not named_file and builtin.is_file():
        return builtin
    looked = ", ".join(str(c) for c in tried)
    stem = p.stem if p.suffix == ".npz" else p.name
    hint = (f"; to use the built-in data set write data = \"{stem}\""
            if (BUILTIN_DIR / f"{stem}.npz").is_file() else
            f"; built-in data sets: {', '.join(builtin_names()) or 'none'}")
    raise DataError(f"data file {value!r} not found (looked at {looked}){hint}")


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an .npz file (no pickles); anything else is a DataError that
    says what was expected."""
    path = Path(path)
    what = f"data file {str(path)!r}"
    want = "expected an .npz archive of arrays named like the model's inputs (numpy.savez)"
    if path.is_dir():
        raise DataError(f"{what} is a folder; {want}")
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise DataError(f"{what} not found") from None
    except OSError as e:
        raise DataError(f"{what} cannot be read: {e.strerror}") from None
    if head.startswith(b"\x93NUMPY"):
        raise DataError(f"{what} is a single .npy array; {want}")
    if not head.startswith(b"PK"):
        raise DataError(f"{what} is not an .npz archive; {want}")
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {}
            for k in z.files:
                try:
                    out[k] = z[k]
                except ValueError:   # object arrays need pickle: refused
                    raise DataError(f"{what}: array `{k}` holds Python objects, which dslc does not load "
                                    f"(store numbers: int, float or bool arrays)") from None
            return out
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{what} is not a readable .npz archive ({type(e).__name__}: {e}); {want}") from None


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
        check_values(spec, out[spec.name], source)
    return out


def _where(arr: np.ndarray, bad: np.ndarray) -> str:
    idx = np.unravel_index(int(np.argmax(bad)), arr.shape)
    return f"{arr[idx]} at index [{', '.join(map(str, idx))}]"


def check_values(spec: DataInput, arr: np.ndarray, source: str = "data") -> None:
    """Refuse what would train silently wrong: an empty array, NaN/Inf, class
    labels outside [0, classes). One-line DataError naming the array."""
    if arr.size == 0:
        raise DataError(f"{source}: data array `{spec.name}` is empty (shape {_fmt_shape(arr.shape)}); "
                        f"expected {spec.dtype}{_fmt_shape(spec.shape)} with at least one example")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DataError(f"{source}: data array `{spec.name}` holds a non-finite value: "
                            f"{_where(arr, bad)} ({int(bad.sum())} in all)")
    if spec.classes is not None:
        bad = (arr < 0) | (arr >= spec.classes)
        if bad.any():
            raise DataError(f"{source}: data array `{spec.name}` holds the label {_where(arr, bad)}, "
                            f"outside the valid range [0, {spec.classes}) of its {spec.classes} classes "
                            f"({int(bad.sum())} such labels)")


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
