"""Where a run's numbers go: the console (a progress bar on a terminal, one line per log interval
otherwise), TensorBoard event files in the run directory, optionally MLflow, and the per-epoch metrics files.

Only rank 0 logs. Every sink gets the same scalars, named alike: `train/loss`, `train/lr`, `train/img_per_s`
at log points (x axis: optimiser steps) and `val/top1`, `val/top5`, `ema/top1`, `ema/top5`, `train/epoch_loss`
at epoch ends.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from ..errors import ResnetsError
from .run_dir import write_json, write_metrics

TENSORBOARD_DIR = "tensorboard"
MLFLOW_RECORD = "mlflow.json"


class Console:
    """Messages and progress for one process: silent on ranks other than 0."""

    def __init__(self, *, enabled: bool, progress: bool, to_stderr: bool):
        self.enabled = enabled
        self.progress = progress and enabled
        self.stream: TextIO = sys.stderr if to_stderr else sys.stdout
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: tqdm | None = None
        self._desc = ""

    def say(self, message: str) -> None:
        if self.enabled:
            if self._bar is not None:
                self._bar.clear()
            print(message, flush=True, file=self.stream)

    def start_epoch(self, desc: str, total: int, initial: int) -> None:
        self._desc = desc
        if self.progress and self.interactive:
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="batch", dynamic_ncols=True,
                             leave=False, file=self.stream)

    def advance(self, batches: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(batches)

    def interval(self, position: str, values: dict[str, str]) -> None:
        """A log point: the bar's postfix on a terminal, else one line (a log file gets no redraws)."""
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=False)
        elif self.progress:
            self.say(f"{self._desc} {position}: " + ", ".join(f"{k} {v}" for k, v in values.items()))

    def end_epoch(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class TensorBoardSink:
    """Event files in <run>/tensorboard; on resume, events past the resumed step are dropped (purge_step)."""

    def __init__(self, run_dir: Path, *, purge_step: int | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # tensorboard is a core dependency; a broken install still gets one line
            raise ResnetsError(f"TensorBoard logging needs the tensorboard package ({exc}); pip install "
                               "tensorboard, or pass --no-tensorboard") from None
        log_dir = run_dir / TENSORBOARD_DIR
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            probe = log_dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step, flush_secs=30)
        except OSError as exc:
            raise ResnetsError(f"cannot write TensorBoard logs in {log_dir}: {exc.strerror or exc}; fix the "
                               "directory or pass --no-tensorboard") from None

    def scalars(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


class MlflowSink:
    """An MLflow run per training run; the run id is kept in <run>/mlflow.json so a resume continues it."""

    def __init__(self, uri: str, run_dir: Path, *, name: str, params: dict[str, Any]):
        try:
            import mlflow
        except ImportError:
            raise ResnetsError("--mlflow needs the mlflow package: pip install 'resnets[mlflow]'") from None
        self.mlflow = mlflow
        record = run_dir / MLFLOW_RECORD
        run_id = json.loads(record.read_text())["run_id"] if record.is_file() else None
        try:
            mlflow.set_tracking_uri(uri)
            self.run = mlflow.start_run(run_id=run_id, run_name=None if run_id else name)
            if run_id is None:
                mlflow.log_params(params)
        except Exception as exc:  # noqa: BLE001 - any client/store error is the same one line to the user
            raise ResnetsError(f"cannot log to MLflow at {uri}: {str(exc).splitlines()[0] if str(exc) else exc}") \
                from None
        if run_id is None:
            write_json(record, {"tracking_uri": uri, "run_id": self.run.info.run_id})

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics({k.replace("/", "_"): v for k, v in values.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class RunLogger:
    """Fans a run's scalars out to the console, TensorBoard, MLflow and the metrics files (rank 0 only)."""

    def __init__(self, console: Console, run_dir: Path):
        self.console = console
        self.run_dir = run_dir
        self.sinks: list[TensorBoardSink | MlflowSink] = []

    def open(self, *, tensorboard: bool, mlflow_uri: str | None, resumed_step: int | None, name: str,
             params: dict[str, Any]) -> None:
        """Open the sinks (rank 0); one-line ResnetsError when a destination cannot be written."""
        if tensorboard:
            self.sinks.append(TensorBoardSink(self.run_dir, purge_step=resumed_step))
        if mlflow_uri:
            self.sinks.append(MlflowSink(mlflow_uri, self.run_dir, name=name, params=params))

    def say(self, message: str) -> None:
        self.console.say(message)

    def interval(self, *, step: int, position: str, loss: float, lr: float, img_per_s: float) -> None:
        self.console.interval(position, {"loss": f"{loss:.4f}", "lr": f"{lr:.3g}", "img/s": f"{img_per_s:.1f}"})
        self._scalars({"train/loss": loss, "train/lr": lr, "train/img_per_s": img_per_s}, step)

    def epoch(self, row: dict[str, Any], *, step: int, history: list[dict[str, Any]]) -> None:
        values = {"train/epoch_loss": row["train_loss"], "val/top1": row["val_top1"], "val/top5": row["val_top5"]}
        if row.get("ema_top1") is not None:
            values.update({"ema/top1": row["ema_top1"], "ema/top5": row["ema_top5"]})
        self._scalars(values, step)
        if self.console.enabled:
            write_metrics(self.run_dir, history)

    def _scalars(self, values: dict[str, float], step: int) -> None:
        if not self.console.enabled:
            return
        for sink in self.sinks:
            sink.scalars(values, step)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.sinks = []
