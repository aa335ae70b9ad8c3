"""Which specs of specs/ train in the browser: export each (spec, model) with a
train block for a few epochs, train it in headless Chromium (onnxruntime-web,
WebAssembly) and with `node train.mjs` (onnxruntime-node), and compare each
step's loss with the Python runtime's. Prints the markdown table of docs/web.md.

    python web/specs_table.py [--epochs 2] [--only digits,cnn] [--out runs/web-specs]

Needs what `make -C web e2e` installs (node, web/node_modules, chromium)."""
from __future__ import annotations

import argparse
import functools
import glob
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def python_losses(c, spec, epochs):
    from dslc_runtime import Trainer
    t = Trainer(c, spec_path=spec, log=lambda *a: None)
    train, _ = t._train_valid(None, None)
    out = []
    for e in range(epochs):
        for part in train.batches(t.settings["batch"], t.settings["seed"], e):
            out.append(t.train_step(part)[t.settings["steps"][(len(out)) % len(t.settings["steps"])]])
    return np.array(out), t


def compare(js_steps, py, names):
    """Max relative difference over the steps (each step's own loss in turn)."""
    if len(js_steps) != len(py):
        return f"{len(js_steps)} steps, Python {len(py)}"
    js = np.array([s[names[i % len(names)]] for i, s in enumerate(js_steps)])
    return float(np.max(np.abs(js - py) / np.maximum(np.abs(py), 1e-3)))


def main():
    import dslc
    from dslc.web import export_web
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--only", help="comma-separated model names")
    ap.add_argument("--out", default=str(ROOT / "runs" / "web-specs"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, NODE_PATH=str(ROOT / "web" / "node_modules"))
    rows = []
    for spec in sorted(glob.glob(str(ROOT / "specs" / "*.dl"))):
        prog = dslc.load(spec)
        for name in prog.trains:
            if a.only and name not in a.only.split(","):
                continue
            c = dslc.compile(prog, name)
            epochs = min(a.epochs, c.manifest["train"]["epochs"])
            site = out / name
            row = {"spec": Path(spec).name, "model": name, "epochs": epochs}
            try:
                export_web(c, site, epochs=epochs, spec_path=spec)
                py, _ = python_losses(c, spec, epochs)
                row["steps"] = len(py)
            except Exception as e:  # noqa: BLE001 - a row of the table
                row["error"] = f"export: {e}"
                rows.append(row)
                print(row, flush=True)
                continue
            names = c.manifest["steps"]
            t0 = time.time()
            r = subprocess.run(["node", str(ROOT / "web" / "e2e.mjs"),
                                f"http://127.0.0.1:{server.server_address[1]}/{name}/index.html",
                                "--json", str(site / "page.json"), "--screenshot", str(site / "page.png"),
                                "--timeout", "500"], capture_output=True, text=True, cwd=str(ROOT / "web"))
            page = json.loads((site / "page.json").read_text()) if (site / "page.json").exists() else {}
            row["browser_s"] = round(time.time() - t0, 1)
            if page.get("state") == "done":
                row["browser"] = compare(page["steps"], py, names)
            else:
                row["browser_error"] = page.get("error") or (r.stderr.strip().splitlines() or ["?"])[-1]
            r = subprocess.run(["node", str(site / "train.mjs"), "--json", str(site / "node.json"),
                                "--out", str(site / "node-run")], capture_output=True, text=True, env=env)
            if r.returncode == 0:
                row["node"] = compare(json.loads((site / "node.json").read_text())["steps"], py, names)
            else:
                row["node_error"] = r.stderr.strip()[-300:]
            rows.append(row)
            print(row, flush=True)
    server.shutdown()
    (out / "table.json").write_text(json.dumps(rows, indent=1))
    print("\n| spec | model | steps | browser (WASM): max rel. diff of the loss vs Python | node: same |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        b = f"{r['browser']:.1e}" if "browser" in r else f"fails: {r.get('browser_error', r.get('error'))}"
        n = f"{r['node']:.1e}" if "node" in r else f"fails: {r.get('node_error', r.get('error'))}"
        print(f"| {r['spec']} | {r['model']} | {r.get('steps', '')} | {b} | {n} |")


if __name__ == "__main__":
    main()
