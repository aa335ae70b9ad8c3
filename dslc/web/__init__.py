"""Train in the browser: `dslc export-web` writes a static folder whose
JavaScript loop runs the training graph on onnxruntime-web (and, from the same
folder, on onnxruntime-node: `node DIR/train.mjs`).

    export_web(spec_or_compiled, out_dir, model=None, ...) -> Path
"""
from .export import WebExportError, export_web, find_ort_web

__all__ = ["export_web", "find_ort_web", "WebExportError"]
