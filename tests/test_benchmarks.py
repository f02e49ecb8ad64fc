"""The benchmark scripts run end to end (tiny settings): their numbers live in docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                            text=True, timeout=600, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_train_throughput_runs_every_contender_in_its_own_process():
    pytest.importorskip("timm")
    out = _run("train_throughput.py", "--quick", "--img-size", "64", "--batch-size", "4", "--reps", "1",
               "--warmup", "1", "--threads", "1", "--json")
    records = json.loads(out)
    assert [r["contender"] for r in records] == [
        "timm eager", "timm channels_last", "timm channels_last + retained memory", "resnets eager",
        "resnets channels_last"]
    assert all(r["img_per_s"] > 0 and r["page_faults_per_step"] >= 0 for r in records)
    assert records[0]["vs_timm_eager"] == 1.0 and records[1]["vs_timm_channels_last"] == 1.0


@pytest.mark.slow
def test_host_memory_benchmark_reports_both_policies():
    out = _run("host_memory.py", "--model", "resnet18", "--batch-size", "2", "--img-size", "64", "--reps", "1",
               "--warmup", "1", "--threads", "1")
    assert "| default (released) |" in out and "| retained |" in out and "retained / default:" in out


@pytest.mark.slow
def test_gpu_train_benchmark_runs_its_code_on_a_cpu():
    """benchmarks/gpu_train.py is for a GPU machine; --device cpu runs the same steps and pipelines tiny."""
    out = _run("gpu_train.py", "--device", "cpu", "--model", "resnet18", "--img-size", "32", "--batch-size", "4",
               "--steps", "1", "--warmup", "1", "--no-compile", "--workers", "0", "--json")
    rows = json.loads(out)["results"]
    assert [r["data"] for r in rows] == ["synthetic", "real data, decoded cache", "real data, --decode gpu"]
    assert all(r["img_per_s"] > 0 for r in rows)


@pytest.mark.slow
def test_kornia_check_reports_ours_exact_and_kornia_off():
    pytest.importorskip("kornia")
    out = _run("kornia_check.py", "--size", "64", "--batch-size", "4")
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in out.splitlines() if line.startswith("| ")}
    assert int(rows["ours, kernel per image (the CPU method)"][1]) == 0
    assert int(rows["ours, batched taps (the GPU method)"][1]) <= 2
    assert int(rows["kornia RandomResizedCrop (resample)"][1]) > 5
