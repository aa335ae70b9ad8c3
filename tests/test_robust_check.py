"""Issue 12: `dslc check` rejects, with a location, everything compile would —
and huge or hostile input gets a located error in bounded time."""
from __future__ import annotations

import os
import time

import pytest

import dslc
from dslc.cli import main

HEAD = "model m {\n    input x: f32[B, 4]\n    input ids: i64[B]\n"
TRAIN = "}\ntrain m {\n    optimizer = sgd(lr = 0.1)\n%s}\n"


def spec(body: str, train: str = "") -> str:
    return HEAD + body + TRAIN % train


CASES = [
    ("uniform_one_bound", spec("    param W: [4, 2] ~ uniform(0.1)\n    loss = mean(x @ W)\n"), 4, 23,
     "uniform(a, b) needs both bounds, found one: write uniform(-0.1, 0.1) for U(-0.1, 0.1)"),
    ("uniform_reversed", spec("    param W: [4, 2] ~ uniform(1.0, 0.5)\n    loss = mean(x @ W)\n"), 4, 31,
     "uniform(a, b) needs a < b, found a = 1.0, b = 0.5"),
    ("glorot_zero_fan", spec("    param W: [0, 2] ~ glorot_uniform\n    loss = mean(x) + sum(W)\n"), 4, 15,
     "a dim must be at least 1, found 0 (a tensor with a zero-size dim has no elements)"),
    ("dense_zero", spec("    loss = mean(dense(x, 0))\n"), 4, 17, "a dim must be at least 1, found 0"),
    ("embedding_zero", spec("    loss = mean(embedding(ids, 0, 4))\n"), 4, 17, "a dim must be at least 1, found 0"),
    ("zeros_negative", spec("    loss = mean(dense(x, 1)) + sum(zeros([2, -3]))\n"), 4, 36,
     "fill would make a tensor of shape f32[2, -3] with a negative dim; every dim must be at least 1"),
    ("seed_huge_literal", spec("    loss = mean(dense(x, 1))\n", "    seed = 99999999999999999999\n"), 8, 12,
     "the integer 99999999999999999999 is too large: integers must fit in 64 bits"),
    ("seed_over_int32", spec("    loss = mean(dense(x, 1))\n", "    seed = 2147483648\n"), 8, 12,
     "the seed must be at most 2147483647 (2**31 - 1), found 2147483648"),
    ("index_huge_negative", spec("    loss = mean(dense(x[-18446744073709551616], 1))\n"), 4, 26,
     "the integer 18446744073709551616 is too large"),
    ("index_huge_symbolic_axis", spec("    loss = mean(dense(x, 1)[9223372036854775807])\n"), 4, 17,
     "index [9223372036854775807] of f32[B, 1]: index 9223372036854775807 is out of range for axis 0 of size B"),
    ("loss_updates_no_params", spec("    param W: [4, 2] ~ zeros\n    loss = mean(x)\n"), 5, 5,
     "loss `loss` updates no params: it depends on no param, so training it changes nothing"),
    ("param_symbolic_shape", spec("    param W: [B, 2] ~ zeros\n    loss = mean(W)\n"), 4, 5,
     "param `W` has the symbolic shape [B, 2]: a param's sizes must be known when compiling"),
    ("dense_symbolic_width", spec("    loss = mean(dense(x, B))\n"), 4, 17,
     "param `dense_0.W` has the symbolic shape [4, B]"),
    ("int_5000_digits", spec("    loss = mean(dense(x, 1)) * " + "9" * 5000 + "\n"), 4, 32,
     "the integer 99999999…(5000 digits) is too large"),
    ("float_1e400", spec("    loss = mean(dense(x, 1)) * 1e400\n"), 4, 32,
     "the number 1e400 is too large for a float (the largest is about 1.8e308)"),
    ("dim_minus_float", spec("    loss = mean(dense(x, 1)) * (B - 0.5)\n"), 4, 35,
     "cannot compute B - 0.5: the dim B is an integer known only at run time and combines only with "
     "integers, found the number 0.5"),
    ("f32_overflow", spec("    loss = mean(dense(x, 1)) * 1e300\n"), 4, 30,
     "the number 1e+300 does not fit f32 (its largest value is about 3.4e+38); use f64 tensors for it"),
    ("metric_named_like_input", spec("    loss = mean(dense(x, 1))\n    metric x = mean(x)\n"), 5, 16,
     "metric `x` has the name of the input `x`; give it another name"),
    ("params_too_large", spec("    param W: [100000, 100000, 10] ~ zeros\n    loss = mean(x) * sum(W)\n"), 4, 5,
     "model `m` has 372.5 GiB of params and state, more than the 64 GiB dslc can draw"),
]


@pytest.mark.parametrize("name, text, line, col, message", CASES, ids=[c[0] for c in CASES])
def test_check_rejects_what_compile_would(name, text, line, col, message, tmp_path, capsys):
    with pytest.raises(dslc.SpecError) as e:
        dslc.parse(text, "s.dl")
    errs = getattr(e.value, "errors", [e.value])
    assert len(errs) == 1, [x.message for x in errs]       # one error, no follow-on noise
    err = errs[0]
    assert (err.line, err.column) == (line, col) and message in err.message, err.format()
    assert "internal error" not in err.message
    p = tmp_path / "s.dl"
    p.write_text(text)
    assert main(["check", str(p)]) == 1
    out = capsys.readouterr()
    assert f"{p}:{line}:{col}: error: " in out.err and "^" in out.err and "internal error" not in out.err


def test_valid_neighbours_still_check():
    dslc.compile(dslc.parse(spec("    param W: [4, 2] ~ uniform(-0.1, 0.1)\n    loss = mean(x @ W)\n",
                                 "    seed = 2147483647\n"), "s.dl"))
    dslc.parse(spec("    loss = mean(dense(x, 1)) * 9223372036854775807 * 1e30 * 000000000000000000000000007\n"))


def test_spec_reader_refuses_huge_files(capsys):
    t0 = time.perf_counter()
    assert main(["check", "/dev/zero"]) == 1
    assert "cannot read /dev/zero: larger than 16 MiB, which is no spec" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 5


def test_spec_reader_folder_and_binary(tmp_path, capsys):
    assert main(["check", str(tmp_path)]) == 1
    assert "it is a folder, expected a .dl file" in capsys.readouterr().err
    (tmp_path / "b.dl").write_bytes(b"model \xff\xfe")
    assert main(["check", str(tmp_path / "b.dl")]) == 1
    assert "not UTF-8 text (byte 6)" in capsys.readouterr().err


def _ten_thousand_lines(typo_at_end: bool) -> tuple[str, int]:
    lines = [f"const C{i} = {i}" for i in range(2000)]
    lines += ["model m {", "    input x: f32[B, 4]"]
    lines += [f"    h{i} = x * {i}" for i in range(7995)]
    typo = len(lines) + 1
    lines += ["    y = x +* 2" if typo_at_end else "    y = x + 2", "    loss = mean(h0)", "}"]
    if not typo_at_end:
        lines[10], typo = "const Z = 1 +* 2", 11
    return "\n".join(lines) + "\n", typo


@pytest.mark.parametrize("typo_at_end", [True, False])
def test_syntax_error_recovery_is_linear(typo_at_end):
    """A 10,000-line file with one typo: one error, found in about one parse (was ~90 s)."""
    text, line = _ten_thousand_lines(typo_at_end)
    assert text.count("\n") >= 10_000
    dslc.parse("const A = 1")
    t0 = time.perf_counter()
    with pytest.raises(dslc.SpecError) as e:
        dslc.parse(text, "big.dl")
    took = time.perf_counter() - t0
    assert e.value.line == line and "expected an expression, found `*`" in e.value.message
    assert not hasattr(e.value, "errors")
    assert took < float(os.environ.get("DSLC_SLOW_LIMIT", "6")), took   # ~0.8 s on an idle core


def test_recovery_still_finds_independent_errors():
    text = "const A = 1 +* 2\nconst B = 2\nmodel m {\n    input x: f32[B, 4]\n    y = x +* 1\n    z = (x\n" \
           "    loss = mean(y)\n}\nconst C = * 3\n"
    with pytest.raises(dslc.SpecError) as e:
        dslc.parse(text, "e.dl")
    assert [x.line for x in e.value.errors] == [1, 5, 6, 9]
