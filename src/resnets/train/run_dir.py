"""The run directory's human-readable files: resolved run description, per-epoch metrics, summary."""

from __future__ import annotations

import csv
import io
import json
import platform
from pathlib import Path
from typing import Any

from ..weights.io import atomic_write

METRIC_FIELDS = ["epoch", "train_loss", "val_top1", "val_top5", "ema_top1", "ema_top5", "lr", "img_per_s",
                 "epoch_time_s", "skipped_images"]


def library_versions() -> dict[str, str]:
    import numpy
    import torch
    import torchvision

    from ..version import __version__

    return {"resnets": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl and metrics.csv from the full history (so a resumed run never duplicates rows)."""
    write_text(run_dir / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_FIELDS})
    write_text(run_dir / "metrics.csv", buffer.getvalue())
