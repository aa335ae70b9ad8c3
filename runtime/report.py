"""What a training run leaves behind besides the model: the metric history as
CSV and JSON lines, and a PNG of the curves (train vs validation per epoch)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .files import atomic_write, ensure_folder


def history_columns(history: list[dict]) -> list[str]:
    cols: list[str] = []
    for row in history:
        for k in row:
            if k not in cols:
                cols.append(k)
    return cols


def write_history(folder, history: list[dict]) -> list[Path]:
    """history.csv and history.jsonl in `folder`; returns their paths."""
    folder = ensure_folder(folder)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=history_columns(history), lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    lines = "".join(json.dumps(row) + "\n" for row in history)
    paths = [folder / "history.csv", folder / "history.jsonl"]
    atomic_write(paths[0], lambda f: f.write(buf.getvalue().encode()))
    atomic_write(paths[1], lambda f: f.write(lines.encode()))
    return paths


def plot_curves(history: list[dict], path) -> Path | None:
    """One panel per quantity (each loss and metric), train and val_ curves
    against the epoch. Returns the path, or None when there is nothing to plot."""
    names = [k for k in history_columns(history)
             if k not in ("epoch", "time", "steps") and not k.startswith("val_")]
    names += [k[4:] for k in history_columns(history) if k.startswith("val_") and k[4:] not in names]
    if not history or not names:
        return None
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        for key, label in ((name, "train"), ("val_" + name, "val")):
            pts = [(e, row[key]) for e, row in zip(epochs, history) if row.get(key) is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path
