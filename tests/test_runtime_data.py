"""Data loading and checking: every bad case is a one-line DataError naming the array."""
import numpy as np
import pytest

from dslc_runtime import DataError, Dataset, check_arrays, load_dataset, resolve_data_path, toy
from dslc_runtime.data import BUILTIN_DIR
from dslc_runtime.manifest import DataInput

SPECS = [DataInput("x", "float32", ("B", 4), 0), DataInput("y", "int64", ("B",), 0)]
SEQ = [DataInput("xs", "float32", ("T", "B", 2), 1), DataInput("y", "int64", ("B",), 0)]


def good(n=10):
    return {"x": np.zeros((n, 4), np.float32), "y": np.zeros(n, np.int64)}


def bad(**change):
    d = good()
    d.update(change)
    for k, v in list(d.items()):
        if v is None:
            del d[k]
    return d


@pytest.mark.parametrize("arrays, array, pieces", [
    (bad(y=None), "y", ["no array `y`", "expected int64[B]", "arrays found: x"]),
    (bad(y=np.zeros(10, np.float32)), "y", ["expected int64[B]", "found float32[10]", "needs integers"]),
    (bad(x=np.zeros((10, 4), np.int64)), "x", ["expected float32[B, 4]", "found int64[10, 4]"]),
    (bad(x=np.zeros((10, 4, 1), np.float32)), "x", ["expected rank 2", "found rank 3 [10, 4, 1]"]),
    (bad(x=np.zeros((10, 5), np.float32)), "x", ["expected [B, 4]", "found [10, 5]", "axis 1 should be 4"]),
    (bad(y=np.zeros(9, np.int64)), "y", ["batch lengths differ", "B = 9 here but 10 in `x`"]),
    (bad(y=np.full(10, 2 ** 40, np.int64)), None, None),   # fits int64: fine
])
def test_bad_data(arrays, array, pieces):
    if array is None:
        check_arrays(arrays, SPECS)
        return
    with pytest.raises(DataError) as e:
        check_arrays(arrays, SPECS)
    msg = str(e.value)
    assert "\n" not in msg and f"`{array}`" in msg
    for p in pieces:
        assert p in msg, (p, msg)


def test_int_overflow_and_casts():
    specs = [DataInput("y", "int32", ("B",), 0)]
    with pytest.raises(DataError, match="do not fit int32"):
        check_arrays({"y": np.array([2 ** 40])}, specs)
    out = check_arrays({"x": np.ones((3, 4)), "y": np.arange(3, dtype=np.int32)}, SPECS)
    assert out["x"].dtype == np.float32 and out["y"].dtype == np.int64   # float64 -> float32, int32 -> int64


def test_symbolic_dims_agree_on_other_axes():
    arrays = {"xs": np.zeros((5, 10, 2), np.float32), "y": np.zeros(10, np.int64)}
    ds = Dataset.from_arrays(arrays, SEQ)
    assert len(ds) == 10
    batch = next(ds.batches(4, seed=0, epoch=0))
    assert batch["xs"].shape == (5, 4, 2) and batch["y"].shape == (4,)
    with pytest.raises(DataError, match="batch lengths differ: B = 9"):
        check_arrays({"xs": arrays["xs"], "y": np.zeros(9, np.int64)}, SEQ)


def test_batches_shuffle_reproducibly_with_partial_last():
    ds = Dataset.from_arrays({"x": np.arange(40, dtype=np.float32).reshape(10, 4), "y": np.arange(10)}, SPECS)
    e0 = [b["y"] for b in ds.batches(4, seed=7, epoch=0)]
    assert [len(b) for b in e0] == [4, 4, 2]
    assert sorted(np.concatenate(e0)) == list(range(10))
    again = [b["y"] for b in ds.batches(4, seed=7, epoch=0)]
    assert all(np.array_equal(a, b) for a, b in zip(e0, again))
    e1 = np.concatenate([b["y"] for b in ds.batches(4, seed=7, epoch=1)])
    assert not np.array_equal(np.concatenate(e0), e1)
    expected = np.random.default_rng([7, 1]).permutation(10)
    np.testing.assert_array_equal(e1, expected)


def test_split_first_fraction_trains():
    ds = Dataset.from_arrays({"x": np.zeros((10, 4)), "y": np.arange(10)}, SPECS)
    tr, va = ds.split(0.8)
    assert list(tr.arrays["y"]) == list(range(8)) and list(va.arrays["y"]) == [8, 9]


def test_npz_and_path_resolution(tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "m.dl"
    spec.write_text("")
    np.savez(tmp_path / "specs" / "mine.npz", **good())
    assert resolve_data_path("mine.npz", str(spec)) == tmp_path / "specs" / "mine.npz"
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "cwd.npz", **good())
    assert resolve_data_path("cwd.npz", str(spec)) == tmp_path / "cwd.npz"
    with pytest.raises(DataError, match="not found .*write data = \"digits\""):   # no silent fallback
        resolve_data_path("data/digits.npz", str(spec))
    assert resolve_data_path("digits_images") == BUILTIN_DIR / "digits_images.npz"
    with pytest.raises(DataError, match="'nothere.npz' not found"):
        resolve_data_path("nothere.npz", str(spec))
    ds = load_dataset("mine.npz", SPECS, str(spec))
    assert len(ds) == 10
    np.savez(tmp_path / "obj.npz", x=np.array([{}], dtype=object))
    with pytest.raises(DataError, match="obj.npz"):
        load_dataset(str(tmp_path / "obj.npz"), SPECS)


def test_builtin_digits():
    ds = load_dataset("digits", [DataInput("x", "float32", ("B", 64), 0), DataInput("y", "int64", ("B",), 0)])
    assert len(ds) == 1797
    assert ds.arrays["x"].dtype == np.float32 and 0 <= ds.arrays["x"].min() and ds.arrays["x"].max() <= 1
    assert set(np.unique(ds.arrays["y"])) == set(range(10))
    img = load_dataset("digits_images", [DataInput("x", "float32", ("B", 1, 8, 8), 0),
                                         DataInput("y", "int64", ("B",), 0)])
    np.testing.assert_array_equal(img.arrays["x"].reshape(-1, 64), ds.arrays["x"])


def test_trainer_reports_bad_data():
    tr, _, _ = toy.softmax_regression()
    from dslc_runtime import Trainer
    t = Trainer(tr, progress=False, log=lambda *a: None)
    with pytest.raises(DataError, match="`y`"):
        t.fit({"x": np.zeros((8, 4), np.float32), "y": np.zeros(8, np.float32)})
