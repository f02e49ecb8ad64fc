"""results.csv: one row per run, read from the run directories (the engine's files plus study-result.json).

Rows are rebuilt from disk every time, so a partial, resumed or re-run study always shows what its runs hold,
and the file is replaced atomically (a full disk never leaves half a CSV).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..weights.io import atomic_write
from .job import RESULT_FILE

RUNS_DIR = "runs"
RESULTS_FILE = "results.csv"


@dataclass
class RunEntry:
    """A run as study.json records it: id, label, varied settings, and facts of its resolved spec."""

    run_id: str
    label: str
    settings: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    """drop_rate, drop_path_rate, img_size, eval_img_size, epochs, model: shown beside the results."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.run_id, "label": self.label, "settings": self.settings, "facts": self.facts}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunEntry:
        return cls(data["id"], data["label"], dict(data["settings"]), dict(data.get("facts", {})))


def run_status(run_dir: Path) -> tuple[str, dict[str, Any] | None]:
    """finished (measured), trained (summary.json but not measured yet), interrupted (run.json), failed (the
    study recorded a failure; retried), or missing."""
    result = _read(run_dir / RESULT_FILE)
    if result is not None and result.get("status") == "finished" and (run_dir / "summary.json").is_file():
        return "finished", result
    if (run_dir / "summary.json").is_file():
        return "trained", result
    if result is not None and result.get("status") == "failed":
        return "failed", result
    if (run_dir / "run.json").is_file():
        return "interrupted", result
    return "missing", result


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def collect_rows(out: Path, entries: list[RunEntry], eval_names: list[str], *, bench: bool = False,
                 regularisation: bool = False) -> list[dict[str, Any]]:
    rows = []
    for entry in entries:
        status, result = run_status(out / RUNS_DIR / entry.run_id)
        row: dict[str, Any] = {"run_id": entry.run_id, **entry.settings, "status": status}
        if status == "failed" and result:
            row["error"] = result.get("error")
        if status == "finished" and result:
            val, cost = result["val"], result["cost"]
            row.update(val_top1=val["top1"], val_top5=val["top5"], final_top1=val["final_top1"])
            for name in eval_names:
                ev = result["evals"].get(name, {})
                row[f"{name}_top1"], row[f"{name}_top5"] = ev.get("top1"), ev.get("top5")
            row.update(params=cost["params"], macs=cost["macs"], train_wall_s=val["train_wall_s"],
                       img_per_s=val["img_per_s"])
            measured = result.get("bench") or {}
            if bench:
                row.update(latency_ms=measured.get("latency_ms"), throughput_img_s=measured.get("throughput_img_s"))
        if regularisation:
            row.update(drop_rate=entry.facts.get("drop_rate"), drop_path_rate=entry.facts.get("drop_path_rate"))
        rows.append(row)
    return rows


def columns(settings: list[str], eval_names: list[str], *, bench: bool, regularisation: bool) -> list[str]:
    cols = ["run_id", *settings, "status", "val_top1", "val_top5", "final_top1"]
    for name in eval_names:
        cols += [f"{name}_top1", f"{name}_top5"]
    cols += ["params", "macs", "train_wall_s", "img_per_s"]
    if bench:
        cols += ["latency_ms", "throughput_img_s"]
    if regularisation:
        cols += ["drop_rate", "drop_path_rate"]
    return [*cols, "error"]


def write_results(path: Path, rows: list[dict[str, Any]], cols: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in cols})
    atomic_write(path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))
