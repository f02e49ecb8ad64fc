"""One study run, executed in a process of its own (a local child or a Ray worker): train or resume it with
the engine, then measure what the study adds (extra evaluations, parameters/MACs, latency/throughput) and
record that in `study-result.json` beside the engine's files.

The run directory stays an ordinary `resnets train` run: a directory with run.json resumes, one with
summary.json is finished; this module adds one file and never writes the engine's.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULT_FILE = "study-result.json"
LOG_FILE = "train.log"


@dataclass
class RunJob:
    """Everything a process needs to execute one run; plain data (it travels to Ray workers)."""

    run_id: str
    run_dir: str
    options: dict[str, Any]
    """TrainOptions of a new run (with `out` = run_dir and the runtime options)."""
    evals: list[list[str]] = field(default_factory=list)
    bench: dict[str, Any] | None = None
    """BenchSettings fields for the latency/throughput measurement, or None."""
    threads: int = 1
    gpu: int | None = None
    """Local executor: the GPU this run may use (CUDA_VISIBLE_DEVICES); Ray assigns its own."""
    cwd: str = "."
    executor: str = "local"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def execute(job: RunJob) -> dict[str, Any]:
    """Train (or resume, or reuse) the run, then measure it; returns and writes the result record."""
    import torch

    from ..train.engine import Trainer
    from ..train.options import RUNTIME_OPTIONS, TrainOptions

    started = time.perf_counter()
    torch.set_num_threads(max(1, job.threads))
    run_dir = Path(job.run_dir)
    options = TrainOptions(**job.options)
    resumed = False
    if not (run_dir / "summary.json").is_file():
        if (run_dir / "run.json").is_file():
            resumed = True
            runtime = TrainOptions(**{k: getattr(options, k) for k in RUNTIME_OPTIONS})
            Trainer(runtime, resume_dir=run_dir).run()
        else:
            Trainer(options).run()
    summary = json.loads((run_dir / "summary.json").read_text())
    record = json.loads((run_dir / "run.json").read_text())
    device = _device(options.device)
    result: dict[str, Any] = {
        "status": "finished", "run_id": job.run_id, "resumed": resumed,
        "val": _best_val(run_dir, summary), "cost": _cost(record), "evals": {},
        "executor": job.executor, "host": platform.node(), "threads": torch.get_num_threads(),
        "device": str(device),
    }
    workers = options.workers if options.workers is not None else 2
    for name, folder in job.evals:
        result["evals"][name] = _evaluate(run_dir, folder, workers, device)
    if job.bench is not None:
        result["bench"] = _bench(run_dir, record, job.bench, device)
    result["job_s"] = round(time.perf_counter() - started, 3)
    from ..weights.io import atomic_write

    atomic_write(run_dir / RESULT_FILE, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2) + "\n"))
    return result


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _best_val(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Val top-1/top-5 of the weights in best.safetensors (the model's or the EMA's, at its best epoch)."""
    from safetensors import safe_open

    with safe_open(str(run_dir / "best.safetensors"), framework="pt") as handle:
        meta = handle.metadata() or {}
    epoch, source = int(json.loads(meta.get("epoch", "0"))), meta.get("weights", "model")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    row = next((r for r in rows if r["epoch"] == epoch), rows[-1])
    prefix = "ema" if source == "ema" else "val"
    return {"top1": row[f"{prefix}_top1"], "top5": row[f"{prefix}_top5"], "epoch": epoch, "weights": source,
            "final_top1": summary.get("final_top1"), "final_top5": summary.get("final_top5"),
            "train_wall_s": summary.get("wall_s"), "img_per_s": summary.get("train_img_per_s")}


def _cost(record: dict[str, Any]) -> dict[str, Any]:
    from ..models.config import ResNetConfig
    from ..models.cost import config_cost

    config = ResNetConfig.from_dict(record["model_config"])
    size = int(record["eval_img_size"])
    cost = config_cost(config, size)
    return {"params": cost.params, "macs": cost.macs, "img_size": size}


def _evaluate(run_dir: Path, folder: str, workers: int, device: str) -> dict[str, Any]:
    from ..evaluate_folder import EvalSettings, evaluate_folder

    out = evaluate_folder(EvalSettings(weights=str(run_dir / "best.safetensors"), data=folder, workers=workers,
                                       device=device))
    return {"top1": out["top1"], "top5": out["top5"], "n": out["n"], "data": folder}


def _bench(run_dir: Path, record: dict[str, Any], settings: dict[str, Any], device: str) -> dict[str, Any]:
    """Latency at batch 1 and throughput at the throughput batch, at the run's evaluation resolution."""
    from ..inference.bench import BenchSettings, bench_inference
    from ..weights.factory import load_model

    model = load_model(run_dir / "best.safetensors").eval()
    size = int(record["eval_img_size"])
    bench = BenchSettings(**{**settings, "img_size": size, "device": device})
    records = bench_inference(model, record["model"], bench, verbose=False)
    errors = [r.error for r in records if r.error]
    if errors:
        return {"error": errors[0]}
    first, last = records[0], records[-1]
    return {"mode": first.mode, "img_size": size, "latency_ms": first.latency_ms_p50,
            "latency_batch": first.batch_size, "throughput_img_s": last.throughput_img_s,
            "throughput_batch": last.batch_size, "threads": first.threads, "device": first.device}


# --- process entry points ---------------------------------------------------------------------------------------
def _redirect_output(log_path: str) -> None:
    """Send this process's stdout/stderr (file descriptors too: C++ warnings, DataLoader workers) to the log."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _error_line(exc: BaseException) -> str:
    """The last line of the message (a DataLoader worker folds a worker's traceback into it)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _guarded(job: RunJob) -> dict[str, Any]:
    """Run the job; a failure becomes {"status": "failed", "error": one line} (the traceback goes to the log)."""
    from ..errors import ResnetsError

    try:
        return execute(job)
    except ResnetsError as exc:
        print(f"error: {_error_line(exc)}", file=sys.stderr)
        return {"status": "failed", "error": _error_line(exc)}
    except Exception as exc:  # noqa: BLE001 - a run's bug must not take the study down
        traceback.print_exc()
        return {"status": "failed", "error": f"{type(exc).__name__}: {_error_line(exc)}"}


def child_main(job_data: dict[str, Any], log_path: str) -> None:
    """Entry point of a local child process (started by the forkserver, so it shares no threads with the
    study process): its own log, its thread count, its GPU; exit status 0 when the run finished."""
    import multiprocessing

    # A forkserver child inherits the forkserver start method; its DataLoader workers would then start a
    # forkserver of their own (importing torch again). Fork them from this process, as PyTorch does by default.
    multiprocessing.set_start_method("fork", force=True)
    job = RunJob(**job_data)
    if job.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(job.gpu)  # before the first CUDA call of this process
    os.environ["OMP_NUM_THREADS"] = str(job.threads)
    if job.cwd and Path(job.cwd).is_dir():
        os.chdir(job.cwd)
    _redirect_output(log_path)
    outcome = _guarded(job)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if outcome["status"] == "finished" else 2)  # skip atexit hooks inherited from the forkserver


def ray_main(job_data: dict[str, Any], log_path: str) -> dict[str, Any]:
    """Entry point of a Ray task (one fresh worker process per run: max_calls=1)."""
    job = RunJob(**job_data)
    if job.cwd and Path(job.cwd).is_dir():
        os.chdir(job.cwd)
    _redirect_output(log_path)
    outcome = _guarded(job)
    outcome["host"] = platform.node()
    return {k: outcome.get(k) for k in ("status", "error", "host")}
