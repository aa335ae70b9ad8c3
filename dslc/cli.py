"""The `dslc` command line (INTERFACE.md): check, compile, train, fmt, graph.

Every user error (bad spec, bad data, bad option, missing device) prints one
clear message and exits 1; no traceback reaches the user. An unexpected
exception says it is an internal error (set DSLC_DEBUG=1 for the traceback).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from .api import load
from .api import read_spec
from .compile import compile
from .errors import SpecError, suggest
from .layerdoc import layers_text, stdlib_docs
from .report import describe_program, to_dot
from .syntax.fmt import format_source
from .web.export import WebExportError, export_web_cli
from .lower.lora import merge_adapters
from .onnx_import.inspect import describe as describe_onnx
from dslc_runtime.manifest import read_manifest


class UsageError(Exception):
    """A bad command-line option."""


def _load(spec: str):
    return load(spec)


def _model_name(prog, name):
    return prog.model(name).name


# -- check ---------------------------------------------------------------------------
def cmd_check(a) -> int:
    if a.layers:
        names = [a.spec] if a.spec else None
        if names and names[0] not in {d.name for d in stdlib_docs()}:
            raise UsageError(f"no standard layer named `{a.spec}`" + suggest(a.spec, [d.name for d in stdlib_docs()]))
        print(layers_text(names), end="")
        return 0
    if not a.spec:
        raise UsageError("give a spec to check (or --layers for the standard layers)")
    prog = _load(a.spec)
    print(describe_program(prog))
    return 0


# -- compile -------------------------------------------------------------------------
def cmd_compile(a) -> int:
    import onnx

    prog = _load(a.spec)
    if a.split and not a.training:
        raise UsageError("--split needs --training (it splits the training step)")
    c = compile(prog, a.model, split=a.split)
    if a.split:
        return _write_split(c, Path(a.output))
    if a.training:
        if c.training is None:
            raise UsageError(f"model `{c.name}` has no `train` block (or no loss), so there is no training graph")
        proto = c.training
    else:
        if c.inference is None:
            raise UsageError(f"model `{c.name}` declares no `output`, so there is no inference graph")
        proto = c.inference
        if a.weights:
            from dslc_runtime import load_checkpoint, with_weights
            values, meta, _ = load_checkpoint(a.weights)
            proto = with_weights(proto, values)
    if a.opset != 18:
        if not 18 <= a.opset <= 21:
            raise UsageError(f"--opset {a.opset} is not supported (dslc emits opset 18; 18 to 21 are accepted)")
        proto.opset_import[0].version = a.opset
    from dslc_runtime.files import ensure_folder, needs_external_data, save_model
    large = needs_external_data(proto)
    if not large:
        onnx.checker.check_model(proto, full_check=True)
    out = Path(a.output)
    ensure_folder(out.parent)
    save_model(proto, out)          # atomic; params as external data beside it when over 2 GB
    if large:
        onnx.checker.check_model(str(out), full_check=True)
    kind = "training" if a.training else "inference"
    print(f"wrote {kind} graph of `{c.name}` to {out} ({len(proto.graph.node)} nodes, opset {proto.opset_import[0].version})")
    return 0


def _write_split(c, folder: Path) -> int:
    import onnx
    if c.gradient is None:
        raise UsageError(f"model `{c.name}` has no `train` block (or no loss), so there is no training step to split")
    folder.mkdir(parents=True, exist_ok=True)
    for role in ("gradient", "apply"):
        proto = getattr(c, role)
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(folder / f"{role}.onnx"))
    print(f"wrote the gradient and apply graphs of `{c.name}` to {folder}/gradient.onnx and {folder}/apply.onnx")
    if c.sync:          # rows interact (batch norm): the exact data-parallel step's graphs too
        names = ["sync_gradient"] + [f"{read_manifest(m).role}_{read_manifest(m).depth}" for m in c.sync[1:]]
        for name, proto in zip(names, c.sync):
            onnx.save(proto, str(folder / f"{name}.onnx"))
        print(f"wrote the {len(c.sync)} graphs of its exact data-parallel step (batch statistics agreed on "
              f"across workers: docs/parallel.md) to {folder}/sync_gradient.onnx and {folder}/*_stage_*.onnx")
    return 0


# -- train ---------------------------------------------------------------------------
def cmd_train(a) -> int:
    from dslc_runtime import Trainer

    prog = _load(a.spec)
    if a.workers is not None:
        if a.workers < 1:
            raise UsageError(f"--workers should be a positive integer, found {a.workers}")
        from dslc_runtime.parallel import import_ray
        import_ray()                           # says how to install Ray when it is missing
    elif a.address:
        raise UsageError("--address needs --workers N (the number of data-parallel workers)")
    c = compile(prog, a.model, split=a.workers is not None)
    if c.training is None:
        raise UsageError(f"model `{c.name}` has no `train` block with a loss; add `train {c.name} {{ ... }}`")
    out = Path(a.out or os.path.join("runs", c.name))
    overrides = {}
    if a.batch:
        overrides["batch"] = a.batch
    if a.data:
        overrides["data"] = a.data
    if a.threads is not None and a.threads < 1:
        raise UsageError(f"--threads must be a positive number of threads, found {a.threads}")
    threads = a.threads
    if a.workers is not None:
        overrides.update(workers=a.workers, address=a.address)
        threads = threads or 1                   # one ONNX Runtime thread per worker by default
    trainer = Trainer(c, device=a.device, threads=threads, spec_path=a.spec,
                      progress=None if not a.no_progress else False, **overrides)
    from dslc_runtime import has_checkpoint, load_checkpoint
    ck = out / "checkpoint"
    if a.resume and not has_checkpoint(ck):
        print(f"--resume: no checkpoint in {ck}; starting from the beginning", file=sys.stderr)
    elif a.resume:
        done = load_checkpoint(ck)[1]["epoch"]
        want = a.epochs if a.epochs is not None else trainer.settings["epochs"]
        if done >= want:
            print(f"--resume: the checkpoint in {ck} has already done {done} epoch{'s' * (done != 1)}, "
                  f"and {want} were asked for; nothing to train (raise --epochs to train more)")
            if not (out / "model.onnx").is_file():   # killed after the last checkpoint: finish its outputs
                trainer.load(ck)
                trainer.write_outputs(out)
            return 0
    # --epochs counts the whole run: a resumed run continues until that many are done
    _warn_past_schedule(c.setup, trainer, a.epochs)
    try:
        trainer.fit(epochs=a.epochs, out_dir=str(out), resume=a.resume)
    finally:
        if a.workers is not None:
            trainer.close()
    if c.setup is not None and c.setup.lora and c.setup.lora_merge and (out / "model.onnx").exists():
        import onnx                                       # fold LoRA adapters into their weights
        onnx.save(merge_adapters(onnx.load(out / "model.onnx")), out / "model.onnx")
    print(f"wrote {out}/model.onnx, {out}/checkpoint/, {out}/history.csv, {out}/curves.png")
    return 0


def _warn_past_schedule(setup, trainer, epochs) -> None:
    """cosine(total) holds the lr at 0 after `total` steps: say so when the run is longer."""
    sched = setup.schedule if setup is not None else None
    if not (isinstance(sched, tuple) and sched[0] == "cosine"):
        return
    train, _ = trainer._train_valid(None, None)
    steps = int(epochs or trainer.settings["epochs"]) * train.num_batches(trainer.settings["batch"])
    if steps > sched[1]:
        print(f"warning: schedule cosine({sched[1]}) ends at step {sched[1]} but this run takes {steps} "
              f"steps; the learning rate stays 0 after step {sched[1]}", file=sys.stderr)


# -- inspect -------------------------------------------------------------------------
def cmd_inspect(a) -> int:
    if not Path(a.model_file).exists():
        raise UsageError(f"no such file: {a.model_file}")
    text, _ok = describe_onnx(a.model_file)
    print(text)
    return 0


# -- fmt -----------------------------------------------------------------------------
def cmd_fmt(a) -> int:
    text = _read(a.spec)
    out = format_source(text, a.spec)
    if a.check:
        if out != text:
            print(f"{a.spec}: not in canonical layout (run `dslc fmt {a.spec}`)", file=sys.stderr)
            return 1
        return 0
    if a.write:
        from dslc_runtime.files import write_text
        if out != text:
            write_text(a.spec, out)      # temp + rename: a full disk leaves the spec as it was
    else:
        sys.stdout.write(out)
    return 0


# -- graph ---------------------------------------------------------------------------
def cmd_graph(a) -> int:
    prog = _load(a.spec)
    c = compile(prog, a.model)
    key = "training" if a.training else "inference"
    roots = c.graphs.get(key)
    if roots is None:
        raise UsageError(f"model `{c.name}` has no {key} graph")
    dot = to_dot(roots, f"{c.name}_{key}")
    out = Path(a.output)
    from dslc_runtime.files import write_bytes, write_text
    if out.suffix == ".dot":
        write_text(out, dot)
    elif out.suffix in (".svg", ".png"):
        import shutil
        import subprocess
        if not shutil.which("dot"):
            raise UsageError(f"drawing {out.suffix} needs Graphviz's `dot` program (apt-get install graphviz); "
                             f"or write .dot with -o {out.with_suffix('.dot')}")
        r = subprocess.run(["dot", f"-T{out.suffix[1:]}"], input=dot.encode(), capture_output=True)
        if r.returncode != 0:
            raise UsageError(f"Graphviz's dot failed: {r.stderr.decode(errors='replace').strip()}")
        write_bytes(out, r.stdout)
    else:
        raise UsageError(f"-o must end in .dot, .svg or .png, found {out.name}")
    print(f"wrote {out}")
    return 0


# -- export-web ----------------------------------------------------------------------
def cmd_export_web(a) -> int:
    try:
        print(export_web_cli(a.spec, a.output, model=a.model, data=a.data, epochs=a.epochs, ort_dir=a.ort_dir))
    except WebExportError as e:
        raise UsageError(str(e)) from None
    return 0


def _read(path: str) -> str:
    return read_spec(path)


def _positive(text: str) -> int:
    """argparse type: an integer >= 1 (epochs, batch)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {v}")
    return v


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("dslc")
    except Exception:   # not installed as a distribution (a bare checkout)
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option exits 1 like every other user error (2 means a bug in dslc)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dslc", description="A declarative deep-learning compiler: .dl -> ONNX.")
    p.add_argument("--version", action="version", version=f"dslc {_version()}",
                   help="print dslc's version and exit")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("check", help="parse and check a spec; print each model's inputs, outputs and params")
    s.add_argument("spec", nargs="?", help="the spec (with --layers: a standard layer's name)")
    s.add_argument("--layers", action="store_true",
                   help="print the standard layers' signatures, docs and params instead")
    s.set_defaults(fn=cmd_check)

    s = sub.add_parser("compile", help="write the inference (or --training) ONNX graph")
    s.add_argument("spec")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("-m", "--model")
    s.add_argument("--training", action="store_true", help="the training-step graph of the train block")
    s.add_argument("--split", action="store_true",
                   help="with --training: write the step split in two, DIR/gradient.onnx and DIR/apply.onnx "
                        "(-o names the folder), for data-parallel training; where the rows of a batch "
                        "interact (batch norm) also sync_gradient.onnx and the {forward,backward}_stage_<d>.onnx "
                        "graphs of the exact data-parallel step")
    s.add_argument("--weights", help="a checkpoint folder whose params fill the inference graph")
    s.add_argument("--opset", type=int, default=18)
    s.set_defaults(fn=cmd_compile)

    s = sub.add_parser("train", help="train as the spec's train block says")
    s.add_argument("spec")
    s.add_argument("-m", "--model")
    s.add_argument("--epochs", type=_positive)
    s.add_argument("--batch", type=_positive)
    s.add_argument("--data", help="override the train block's data")
    s.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    s.add_argument("--out", help="output folder (default runs/MODEL)")
    s.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--workers", type=int, metavar="N",
                   help="data-parallel training on N Ray workers (same numbers as one process, same global batch)")
    s.add_argument("--address", help="the Ray cluster to join (default: start a local one); needs --workers")
    s.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: its own choice)")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("inspect", help="an ONNX model's inputs, outputs, params and whether dslc can import every op")
    s.add_argument("model_file", metavar="MODEL.onnx", help="the ONNX model to describe")
    s.set_defaults(fn=cmd_inspect)

    s = sub.add_parser("fmt", help="print the spec in canonical layout")
    s.add_argument("spec")
    s.add_argument("--check", action="store_true", help="exit 1 if the file is not in canonical layout")
    s.add_argument("-w", "--write", action="store_true", help="rewrite the file in place")
    s.set_defaults(fn=cmd_fmt)

    s = sub.add_parser("graph", help="draw the IR (.dot, .svg, .png)")
    s.add_argument("spec")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("-m", "--model")
    s.add_argument("--training", action="store_true")
    s.set_defaults(fn=cmd_graph)

    s = sub.add_parser("export-web", help="a static folder that trains the model in a browser (and with node)")
    s.add_argument("spec", help="the .dl file")
    s.add_argument("-o", "--output", required=True, help="the folder to write")
    s.add_argument("-m", "--model", help="the model to export (optional when the file has one)")
    s.add_argument("--data", help="override the train block's data (exported into the folder)")
    s.add_argument("--epochs", type=int, help="override the train block's epoch count")
    s.add_argument("--ort-dir", help="onnxruntime-web's dist folder (default: web/node_modules after npm ci)")
    s.set_defaults(fn=cmd_export_web)
    _fill_help(p)
    return p


# one-line help for options declared without one (every option has a description)
HELP = {
    "spec": "the .dl spec file",
    "model": "the model to use (may be left out when the file has one)",
    "output": "the file to write",
    "training": "the training-step graph of the train block (instead of the inference graph)",
    "opset": "ONNX opset version to stamp on the graph (18 to 21; dslc emits 18)",
    "epochs": "number of epochs for the whole run (default: the train block's); a resumed run stops there",
    "batch": "batch size (default: the train block's)",
    "no_progress": "plain per-epoch log lines instead of a progress bar",
}


def _fill_help(p: argparse.ArgumentParser) -> None:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _fill_help(sub)
        elif not action.help and action.dest in HELP:
            action.help = HELP[action.dest]


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    try:
        return a.fn(a)
    except SpecError as e:
        print(e.format(), file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"dslc {a.cmd}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:       # a file dslc had to read or write: disk full, read-only, not a folder
        where = f"{e.filename}: " if e.filename else ""
        print(f"dslc {a.cmd}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the last line of defence
        from dslc_runtime import RuntimeFailure
        if isinstance(e, RuntimeFailure):
            print(f"dslc {a.cmd}: error: {e}", file=sys.stderr)
            return 1
        if os.environ.get("DSLC_DEBUG"):
            traceback.print_exc()
        print(f"dslc {a.cmd}: internal error: {type(e).__name__}: {e} "
              "(this is a bug in dslc; rerun with DSLC_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
