"""`dslc export-web` (issue 15): the static folder, the Node.js loop on
onnxruntime-node, and the page in headless Chromium on onnxruntime-web.

The folder tests need nothing but Python. The Node and browser tests skip,
saying why, where node, web/node_modules (`npm ci` in web/) or chromium are
missing; `make -C web e2e` installs them and runs this file."""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import dslc
from dslc.web.export import ORT_FILES, WebExportError, export_web
from dslc_runtime import Trainer

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "specs" / "digits.dl"
NODE_MODULES = ROOT / "web" / "node_modules"
ARTIFACTS = Path(os.environ.get("DSLC_ARTIFACTS", ROOT / "runs" / "e2e"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

REQUIRE = bool(os.environ.get("DSLC_REQUIRE_WEB"))     # `make -C web e2e`: a missing tool fails, not skips
HAVE_NODE = shutil.which("node") is not None and (NODE_MODULES / "onnxruntime-node").is_dir()
HAVE_BROWSER = (shutil.which("node") is not None and (NODE_MODULES / "playwright-core").is_dir()
                and (NODE_MODULES / "onnxruntime-web").is_dir() and os.path.exists(CHROMIUM))
need_node = pytest.mark.skipif(
    not (REQUIRE or HAVE_NODE),
    reason="needs node and web/node_modules/onnxruntime-node (run `npm ci` in web/, or `make -C web e2e`)")
need_browser = pytest.mark.skipif(
    not (REQUIRE or HAVE_BROWSER),
    reason="needs node, web/node_modules (npm ci in web/) and Debian's chromium (apt-get install chromium)")


HAVE_ORT_WEB = shutil.which("node") is not None and (NODE_MODULES / "onnxruntime-web").is_dir()
need_ort_web = pytest.mark.skipif(
    not (REQUIRE or HAVE_ORT_WEB),
    reason="needs node and web/node_modules/onnxruntime-web (run `npm ci` in web/)")


@pytest.fixture(scope="module")
def compiled():
    return dslc.compile(dslc.load(str(DIGITS)))


@pytest.fixture
def fake_ort(tmp_path):
    """Stand-ins for onnxruntime-web's files, so the folder tests run without npm."""
    d = tmp_path / "ortdist"
    d.mkdir()
    for f in ORT_FILES:
        (d / f).write_text("// stand-in\n")
    return d


def python_steps(compiled, epochs, data=None, key="loss", spec=None):
    """Per-step values of `key` (a loss) from the Python runtime on the train
    block's data (or `data`) and order."""
    t = Trainer(compiled, log=lambda *a: None, spec_path=spec)
    train, _ = t._train_valid(data, None)
    losses = []
    for e in range(epochs):
        for part in train.batches(t.settings["batch"], t.settings["seed"], e):
            losses.append(t.train_step(part)[key])
    return t, np.array(losses)


# ----- the folder ----------------------------------------------------------------------------
def test_folder_holds_graphs_data_and_runtime_order(compiled, fake_ort, tmp_path):
    out = export_web(compiled, tmp_path / "site", ort_dir=fake_ort, spec_path=str(DIGITS))
    for f in ("index.html", "page.js", "loop.js", "npz.js", "proto.js", "train.mjs", "train.onnx",
              "evaluation.onnx", "inference.onnx", "manifest.json", "web.json", "data.bin"):
        assert (out / f).is_file(), f
    assert all((out / "ort" / f).is_file() for f in ORT_FILES)
    assert json.loads((out / "manifest.json").read_text()) == compiled.manifest
    web = json.loads((out / "web.json").read_text())
    blob = (out / "data.bin").read_bytes()

    def arr(e):
        return np.frombuffer(blob, dtype=e["dtype"], count=int(np.prod(e["shape"])),
                             offset=e["offset"]).reshape(e["shape"])
    t = Trainer(compiled, log=lambda *a: None)
    train, valid = t._train_valid(None, None)
    for name, ds in (("train", train), ("valid", valid)):
        assert web["data"]["sets"][name]["n"] == len(ds)
        for k, v in ds.arrays.items():
            np.testing.assert_array_equal(arr(web["data"]["sets"][name]["arrays"][k]), v)
    inf = onnx.load(str(out / "inference.onnx"))
    assert all(i.HasField("raw_data") for i in inf.graph.initializer)   # the JS rewrites these bytes


def test_export_options_and_errors(compiled, fake_ort, tmp_path):
    out = export_web(compiled, tmp_path / "s", ort_dir=fake_ort, epochs=3)
    web = json.loads((out / "web.json").read_text())
    assert web["settings"]["epochs"] == 3
    with pytest.raises(WebExportError, match="onnxruntime-web's files"):
        export_web(compiled, tmp_path / "t", ort_dir=tmp_path / "nowhere")
    nodata = dslc.compile(dslc.parse("model m { input x: f32[B, 2]\n output y = x }"))
    with pytest.raises(WebExportError, match="no `train` block"):
        export_web(nodata, tmp_path / "u", ort_dir=fake_ort)


def test_cli_export_web_errors_are_one_line(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "dslc", "export-web", *a],  # noqa: E731
                                    capture_output=True, text=True)
    r = run(str(DIGITS), "-o", str(tmp_path / "x"), "--ort-dir", str(tmp_path / "nowhere"))
    assert r.returncode == 1 and "error: onnxruntime-web's files" in r.stderr and "Traceback" not in r.stderr
    r = run(str(DIGITS), "-o", str(tmp_path / "x"), "--data", str(tmp_path / "none.npz"))
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr


# ----- Node.js -------------------------------------------------------------------------------
def node(*args, env_extra=None):
    env = dict(os.environ, NODE_PATH=str(NODE_MODULES), **(env_extra or {}))
    return subprocess.run(["node", *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


@need_node
def test_js_permutation_is_numpys(tmp_path):
    cases = [(0, 0, 10), (0, 29, 1437), (7, 3, 1), (2**40 + 5, 11, 2), (12345, 0, 100_000)]
    script = (f"import {{ permutation }} from {json.dumps((ROOT / 'dslc/web/static/rng.js').as_uri())};\n"
              f"console.log(JSON.stringify({json.dumps(cases)}.map(([s, e, n]) => Array.from(permutation(s, e, n)))));")
    (tmp_path / "p.mjs").write_text(script)
    r = node(tmp_path / "p.mjs")
    assert r.returncode == 0, r.stderr
    for (seed, epoch, n), got in zip(cases, json.loads(r.stdout)):
        np.testing.assert_array_equal(got, np.random.default_rng([seed, epoch]).permutation(n))


@need_node
def test_js_protobuf_moves_and_rewrites_initializers(tmp_path):
    """proto.js: initial values out of a model (raw and typed fields), and
    trained values written into one, checked by onnx on the Python side."""
    from onnx import TensorProto, helper
    vals = {"f": np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5, "d": np.array([1.5, -2.25]),
            "i": np.array([-3, 2**40], dtype=np.int64), "j": np.array([[-7, 9]], dtype=np.int32),
            "r": np.linspace(-1, 1, 4, dtype=np.float32), "s": np.array(5, dtype=np.int64)}
    types = {"f": TensorProto.FLOAT, "d": TensorProto.DOUBLE, "i": TensorProto.INT64, "j": TensorProto.INT32}
    inits = [helper.make_tensor(k, types[k], v.shape, v.ravel().tolist()) for k, v in vals.items() if k in types]
    inits += [numpy_helper.from_array(vals["r"], "r"), numpy_helper.from_array(vals["s"], "s")]
    g = helper.make_graph([helper.make_node("Identity", ["r"], ["out"])], "g",
                          [helper.make_tensor_value_info(k, TensorProto.FLOAT, None) for k in ("r",)],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4])], inits)
    model = helper.make_model(g)
    onnx.save(model, str(tmp_path / "m.onnx"))
    static = (ROOT / "dslc/web/static/proto.js").as_uri()
    (tmp_path / "p.mjs").write_text(f"""
import {{ readFileSync, writeFileSync }} from 'node:fs';
import {{ takeInitializers, withWeights }} from {json.dumps(static)};
const bytes = new Uint8Array(readFileSync({json.dumps(str(tmp_path / "m.onnx"))}));
const t = takeInitializers(bytes, ['f', 'd', 'i', 'j', 's']);
writeFileSync({json.dumps(str(tmp_path / "stripped.onnx"))}, t.model);
writeFileSync({json.dumps(str(tmp_path / "new.onnx"))}, withWeights(bytes, {{ r: Float32Array.of(9, 8, 7, 6), zz: Float32Array.of(1) }}));
console.log(JSON.stringify(Object.fromEntries(Object.entries(t.values).map(([k, v]) =>
  [k, {{ dtype: v.dtype, shape: v.shape, data: Array.from(v.data, String) }}]))));
""")
    r = node(tmp_path / "p.mjs")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    for k in ("f", "d", "i", "j", "s"):
        assert got[k]["dtype"] == str(vals[k].dtype) and got[k]["shape"] == list(vals[k].shape), (k, got[k])
        np.testing.assert_array_equal(np.array(got[k]["data"], dtype=vals[k].dtype).reshape(vals[k].shape), vals[k])
    stripped = onnx.load(str(tmp_path / "stripped.onnx"))
    assert [i.name for i in stripped.graph.initializer] == ["r"]
    assert stripped.graph.node == model.graph.node and stripped.graph.output == model.graph.output
    new = onnx.load(str(tmp_path / "new.onnx"))
    np.testing.assert_array_equal(numpy_helper.to_array(new.graph.initializer[4]), [9, 8, 7, 6])
    assert len(new.SerializeToString()) == len(model.SerializeToString())


@need_node
def test_node_loop_reaches_the_python_loss(compiled, tmp_path):
    out = export_web(compiled, tmp_path / "site", epochs=2)
    r = node(out / "train.mjs", "--json", tmp_path / "node.json", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert "epoch 2/2" in r.stdout
    got = json.loads((tmp_path / "node.json").read_text())
    t, want = python_steps(compiled, 2)
    js = np.array([s["loss"] for s in got["steps"]])
    assert js.shape == want.shape == (46,)
    np.testing.assert_allclose(js, want, rtol=1e-5, atol=1e-6)
    # the downloadable model: the inference graph holding the trained weights
    model = onnx.load(str(tmp_path / "run" / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    for init in model.graph.initializer:
        np.testing.assert_allclose(numpy_helper.to_array(init), t.params()[init.name], rtol=1e-5, atol=1e-6)
    x = t._train_valid(None, None)[1].arrays["x"]
    probs = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(probs, ort.InferenceSession(t.inference_model().SerializeToString())
                               .run(None, {"x": x})[0], atol=1e-5)


@need_node
def test_node_trains_on_the_users_npz_and_refuses_bad_arrays(compiled, tmp_path):
    out = export_web(compiled, tmp_path / "site", epochs=6)
    z = np.load(ROOT / "runtime" / "datasets" / "digits.npz")
    np.savez_compressed(tmp_path / "mine.npz", x=z["x"].astype(np.float64)[:600], y=z["y"].astype(np.int32)[:600])
    r = node(out / "train.mjs", "--data", tmp_path / "mine.npz", "--json", tmp_path / "n.json", "--out", tmp_path / "r")
    assert r.returncode == 0, r.stderr
    got = json.loads((tmp_path / "n.json").read_text())
    assert len(got["steps"]) == 6 * -(-480 // 64)         # split 0.8 of 600 examples, batch 64
    assert got["history"][-1]["loss"] < 0.5 * got["history"][0]["loss"], got["history"]
    assert got["final"]["acc"] > 0.8, got["final"]        # on the 120 held-out examples of the file
    _, want = python_steps(compiled, 6, data={"x": z["x"].astype(np.float64)[:600], "y": z["y"].astype(np.int32)[:600]})
    np.testing.assert_allclose([s["loss"] for s in got["steps"]], want, rtol=1e-5, atol=1e-6)
    np.savez(tmp_path / "bad.npz", x=z["x"][:10, :32], y=z["y"][:10])
    r = node(out / "train.mjs", "--data", tmp_path / "bad.npz")
    assert r.returncode == 1
    assert "data array `x`: expected [B, 64], found [10, 32] (axis 1 should be 64)" in r.stderr
    assert "    at " not in r.stderr                            # no JavaScript stack trace


@need_node
@pytest.mark.parametrize("spec, model, epochs", [
    ("gan.dl", "gan", 2),                        # two losses taking turns through `select`
    ("polyak.dl", "polyak", 1),                  # model.onnx holds the Polyak averages
    ("mlp_regularized.dl", None, 2),             # dropout (the `seed` input), batch-norm state
])
def test_node_loop_follows_select_averages_and_state(spec, model, epochs, tmp_path):
    path = str(ROOT / "specs" / spec)
    c = dslc.compile(dslc.load(path), model)
    out = export_web(c, tmp_path / "site", epochs=epochs, spec_path=path)
    r = node(out / "train.mjs", "--json", tmp_path / "n.json", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    steps = json.loads((tmp_path / "n.json").read_text())["steps"]
    for key in c.manifest["losses"]:
        t, want = python_steps(c, epochs, key=key, spec=path)
        np.testing.assert_allclose([s[key] for s in steps], want, rtol=1e-5, atol=1e-6)
    trained = onnx.load(str(tmp_path / "run" / "model.onnx"))
    expect = {i.name: numpy_helper.to_array(i) for i in t.inference_model().graph.initializer}
    for init in trained.graph.initializer:
        np.testing.assert_allclose(numpy_helper.to_array(init), expect[init.name], rtol=1e-5, atol=1e-6)


# ----- the browser ---------------------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def run_page(site, tmp_path, *args):
    """Serve `site` on 127.0.0.1 and drive its page with web/e2e.mjs; the page's results."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        r = subprocess.run(["node", str(ROOT / "web" / "e2e.mjs"), url, "--json", str(tmp_path / "page.json"),
                            "--timeout", "400", "--chromium", CHROMIUM, *map(str, args)],
                           capture_output=True, text=True, timeout=600, cwd=str(ROOT / "web"))
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 0, r.stdout + r.stderr
    page = json.loads((tmp_path / "page.json").read_text())
    assert all(u.startswith(url.rsplit("/", 1)[0]) for u in page["requests"])   # nothing from the internet
    return page


@need_browser
def test_page_trains_digits_in_headless_chromium(compiled, tmp_path):
    site = export_web(compiled, tmp_path / "site", spec_path=str(DIGITS))
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3), np.float32), y=np.zeros(4, np.int64))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "digits_page.png"
    page = run_page(site, tmp_path, "--screenshot", shot, "--model", tmp_path / "model.onnx",
                    "--bad-file", tmp_path / "bad.npz")
    assert page["state"] == "done", (page.get("error"), page["console"][-5:])
    assert "data array `x`: expected [B, 64], found [4, 3] (axis 1 should be 64)" in page["badFileError"]
    assert len(page["history"]) == 30
    assert page["final"]["acc"] >= 0.97, page["final"]                       # like `dslc train`
    t, want = python_steps(compiled, 30)
    js = np.array([s["loss"] for s in page["steps"]])
    assert js.shape == want.shape
    np.testing.assert_allclose(js[:100], want[:100], rtol=1e-4, atol=1e-5)   # WebAssembly vs native kernels
    np.testing.assert_allclose(page["final"]["acc"], t.evaluate(t._train_valid(None, None)[1])["acc"], atol=0.01)
    assert page["downloadName"] == "model.onnx"
    onnx.checker.check_model(onnx.load(str(tmp_path / "model.onnx")), full_check=True)
    assert shot.stat().st_size > 10_000


@need_browser
def test_page_trains_on_a_file_from_the_picker(compiled, tmp_path):
    """A deflated .npz of float64/int32 arrays, read with the browser's
    DecompressionStream, split and shuffled as the Python runtime would."""
    site = export_web(compiled, tmp_path / "site", epochs=2)
    z = np.load(ROOT / "runtime" / "datasets" / "digits.npz")
    mine = {"x": z["x"].astype(np.float64)[200:700], "y": z["y"].astype(np.int32)[200:700]}
    np.savez_compressed(tmp_path / "mine.npz", **mine)
    page = run_page(site, tmp_path, "--data", tmp_path / "mine.npz")
    assert page["state"] == "done", (page.get("error"), page["console"][-5:])
    _, want = python_steps(compiled, 2, data=mine)
    np.testing.assert_allclose([s["loss"] for s in page["steps"]], want, rtol=1e-4, atol=1e-5)


# ----- every spec's graphs in onnxruntime-web -------------------------------------------------
@need_ort_web
def test_every_specs_graphs_open_in_onnxruntime_web(tmp_path):
    """The three graphs of every model with a train block open in onnxruntime-web's WASM
    backend. Its graph optimizer is not the native one's: a [1]-shaped 1 in Div(1, n) * c
    (a mean's backward) made its DivMulFusion fail on four specs while Node and Python ran
    them (docs/web.md's table). bench/specs' too: W2's training graph is the one that takes
    passes/convpool.py's rule."""
    files = []
    for spec in sorted((ROOT / "specs").glob("*.dl")) + sorted((ROOT / "bench" / "specs").glob("*.dl")):
        prog = dslc.load(str(spec))
        for name in prog.trains:
            c = dslc.compile(prog, name)
            for role, m in (("train", c.training), ("evaluation", c.evaluation), ("inference", c.inference)):
                if m is not None:
                    f = tmp_path / f"{spec.parent.name}.{spec.stem}.{name}.{role}.onnx"
                    f.write_bytes(m.SerializeToString())
                    files.append(str(f))
    r = subprocess.run(["node", str(ROOT / "web" / "wasm_load.mjs"), *files], capture_output=True, text=True,
                       cwd=str(ROOT / "web"), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    bad = {Path(f).name: e for f, e in got.items() if e != "ok"}
    assert len(got) == len(files) and not bad, bad
