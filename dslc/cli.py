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

from .errors import SpecError
from .lower.lora import merge_adapters
from .onnx_import.inspect import describe as describe_onnx


class UsageError(Exception):
    """A bad command-line option."""


def _load(spec: str):
    from .api import load
    return load(spec)


def _model_name(prog, name):
    return prog.model(name).name


# -- check ---------------------------------------------------------------------------
def cmd_check(a) -> int:
    from .report import describe_program
    prog = _load(a.spec)
    print(describe_program(prog))
    return 0


# -- compile -------------------------------------------------------------------------
def cmd_compile(a) -> int:
    import onnx

    from .compile import compile
    prog = _load(a.spec)
    c = compile(prog, a.model)
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
    onnx.checker.check_model(proto, full_check=True)
    out = Path(a.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out))
    kind = "training" if a.training else "inference"
    print(f"wrote {kind} graph of `{c.name}` to {out} ({len(proto.graph.node)} nodes, opset {proto.opset_import[0].version})")
    return 0


# -- train ---------------------------------------------------------------------------
def cmd_train(a) -> int:
    from dslc_runtime import Trainer

    from .compile import compile
    prog = _load(a.spec)
    c = compile(prog, a.model)
    if c.training is None:
        raise UsageError(f"model `{c.name}` has no `train` block with a loss; add `train {c.name} {{ ... }}`")
    out = Path(a.out or os.path.join("runs", c.name))
    overrides = {}
    if a.batch:
        overrides["batch"] = a.batch
    if a.data:
        overrides["data"] = a.data
    trainer = Trainer(c, device=a.device, spec_path=a.spec, progress=None if not a.no_progress else False,
                      **overrides)
    trainer.fit(epochs=a.epochs, out_dir=str(out), resume=a.resume)
    if c.setup is not None and c.setup.lora and c.setup.lora_merge and (out / "model.onnx").exists():
        import onnx                                       # fold LoRA adapters into their weights
        onnx.save(merge_adapters(onnx.load(out / "model.onnx")), out / "model.onnx")
    print(f"wrote {out}/model.onnx, {out}/checkpoint/, {out}/history.csv, {out}/curves.png")
    return 0


# -- inspect -------------------------------------------------------------------------
def cmd_inspect(a) -> int:
    if not Path(a.model_file).exists():
        raise UsageError(f"no such file: {a.model_file}")
    text, _ok = describe_onnx(a.model_file)
    print(text)
    return 0


# -- fmt -----------------------------------------------------------------------------
def cmd_fmt(a) -> int:
    from .syntax.fmt import format_source
    text = _read(a.spec)
    out = format_source(text, a.spec)
    if a.check:
        if out != text:
            print(f"{a.spec}: not in canonical layout (run `dslc fmt {a.spec}`)", file=sys.stderr)
            return 1
        return 0
    if a.write:
        Path(a.spec).write_text(out)
    else:
        sys.stdout.write(out)
    return 0


# -- graph ---------------------------------------------------------------------------
def cmd_graph(a) -> int:
    from .compile import compile
    from .report import to_dot
    prog = _load(a.spec)
    c = compile(prog, a.model)
    key = "training" if a.training else "inference"
    roots = c.graphs.get(key)
    if roots is None:
        raise UsageError(f"model `{c.name}` has no {key} graph")
    dot = to_dot(roots, f"{c.name}_{key}")
    out = Path(a.output)
    if out.suffix == ".dot":
        out.write_text(dot)
    elif out.suffix in (".svg", ".png"):
        import shutil
        import subprocess
        if not shutil.which("dot"):
            raise UsageError(f"drawing {out.suffix} needs Graphviz's `dot` program (apt-get install graphviz); "
                             f"or write .dot with -o {out.with_suffix('.dot')}")
        subprocess.run(["dot", f"-T{out.suffix[1:]}", "-o", str(out)], input=dot.encode(), check=True)
    else:
        raise UsageError(f"-o must end in .dot, .svg or .png, found {out.name}")
    print(f"wrote {out}")
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dslc", description="A declarative deep-learning compiler: .dl -> ONNX.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("check", help="parse and check a spec; print each model's inputs, outputs and params")
    s.add_argument("spec")
    s.set_defaults(fn=cmd_check)

    s = sub.add_parser("compile", help="write the inference (or --training) ONNX graph")
    s.add_argument("spec")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("-m", "--model")
    s.add_argument("--training", action="store_true", help="the training-step graph of the train block")
    s.add_argument("--weights", help="a checkpoint folder whose params fill the inference graph")
    s.add_argument("--opset", type=int, default=18)
    s.set_defaults(fn=cmd_compile)

    s = sub.add_parser("train", help="train as the spec's train block says")
    s.add_argument("spec")
    s.add_argument("-m", "--model")
    s.add_argument("--epochs", type=int)
    s.add_argument("--batch", type=int)
    s.add_argument("--data", help="override the train block's data")
    s.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    s.add_argument("--out", help="output folder (default runs/MODEL)")
    s.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    s.add_argument("--no-progress", action="store_true")
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
    return p


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
