"""Wall time of one small study run three ways on this machine: sequentially, with `--parallel 2`, and on a
local Ray cluster with two workers; plus the runner's own overhead per run.

The study: RSB-style seeds of the built-in demo (digits, quarter-width ResNet-18, one thread per run). Each
executor gets a fresh study directory, so every run trains. Overhead per run = the time from the runner
starting a run to its results row being written, minus the run's own training wall time (summary.json):
process start, data and model set-up, checkpoint writes, the val top-1 lookup, params/MACs, and rewriting
results.csv, report.md and the plots. Seeds give identical work in every variant, so the variants differ
only in how the runs are spread over the cores.

    python benchmarks/study_throughput.py                 # 4 seeds x 2 epochs
    python benchmarks/study_throughput.py --seeds 0-1 --epochs 1 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from resnets.studies.executors import LocalExecutor
from resnets.studies.parse import parse_seeds
from resnets.studies.runner import run_study
from resnets.studies.spec import SeedsStudy


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return f"{cpu}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def measure(name: str, executor, study: SeedsStudy, root: Path) -> dict:
    out = root / name.replace(" ", "-")
    start = time.perf_counter()
    summary = run_study(study, out, executor, runtime={"tensorboard": False}, say=lambda _: None)
    wall = time.perf_counter() - start
    overheads = []
    for run_id, timing in summary["timings"].items():
        trained = json.loads((out / "runs" / run_id / "summary.json").read_text())["wall_s"]
        overheads.append(timing["elapsed_s"] - trained)
    return {"executor": name, "runs": summary["runs"], "finished": summary["finished"], "wall_s": round(wall, 2),
            "overhead_per_run_s": round(statistics.median(overheads), 2) if overheads else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-3")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray variant")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    study = SeedsStudy(data="digits", seeds=parse_seeds(args.seeds), epochs=args.epochs,
                       sets=["model.width_multiplier=0.25"], deterministic=True)
    records = []
    with tempfile.TemporaryDirectory(prefix="study-bench-") as tmp:
        root = Path(tmp)
        records.append(measure("sequential", LocalExecutor(parallel=1, threads=1), study, root))
        records.append(measure("local --parallel 2", LocalExecutor(parallel=2, threads=1), study, root))
        if not args.no_ray:
            try:
                import ray
            except ImportError:
                ray = None
            if ray is not None:
                from resnets.studies.executors import RayExecutor

                started = time.perf_counter()
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
                ray_start = time.perf_counter() - started
                record = measure("ray, 2 workers", RayExecutor(cpus_per_run=1), study, root)
                record["cluster_start_s"] = round(ray_start, 2)
                records.append(record)
                ray.shutdown()
    base = records[0]["wall_s"]
    for record in records:
        record["speedup"] = round(base / record["wall_s"], 2)
    if args.json:
        print(json.dumps(records, indent=2))
        return
    print(f"seeds study: {len(study.seeds)} runs x {args.epochs} epoch(s), digits, resnet18 x0.25, 1 thread per run")
    print(f"machine: {machine()}")
    print("| executor | runs | wall s | vs sequential | runner overhead per run (median s) |")
    print("|---|---:|---:|---:|---:|")
    for r in records:
        extra = f" (+{r['cluster_start_s']} s to start the cluster)" if "cluster_start_s" in r else ""
        print(f"| {r['executor']} | {r['finished']}/{r['runs']} | {r['wall_s']:.1f}{extra} | {r['speedup']:.2f}x | "
              f"{r['overhead_per_run_s']} |")


if __name__ == "__main__":
    main()
