"""A study killed mid-run (SIGKILL to the whole process group) and run again: finished runs are reused
untouched, the interrupted run resumes from its checkpoint, and the results equal an uninterrupted study's."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from resnets.cli import main

ARGS = ["seeds", "--data", "digits", "--seeds", "0-2", "--epochs", "2", "--set", "model.width_multiplier=0.25",
        "--threads", "1", "--no-tensorboard", "--deterministic", "--save-every-minutes", "0.00001"]
SAME = ("run_id", "seed", "status", "val_top1", "val_top5", "final_top1", "params", "macs")


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as handle:
        return [{k: row[k] for k in SAME} for row in csv.DictReader(handle)]


def _kill_mid_run(out: Path) -> tuple[list[str], list[str]]:
    """Start the study in its own process group; SIGKILL the group once a run has finished and another has
    checkpointed mid-way. Returns (finished ids, interrupted ids) at the kill."""
    process = subprocess.Popen([sys.executable, "-m", "resnets", "study", *ARGS, "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            runs = sorted((out / "runs").glob("*")) if (out / "runs").is_dir() else []
            finished = [r.name for r in runs if (r / "summary.json").is_file()]
            partial = [r.name for r in runs if (r / "last.state.pt").is_file() and not (r / "summary.json").is_file()]
            if finished and partial:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return finished, partial
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    pytest.fail("the study ended before it could be killed mid-run")


@pytest.mark.slow
def test_killed_study_resumes_to_the_results_of_an_uninterrupted_one(tmp_path, capsys):
    straight = tmp_path / "straight"
    assert main(["study", *ARGS, "--out", str(straight)]) == 0
    killed = tmp_path / "killed"
    finished, partial = _kill_mid_run(killed)
    stamps = {name: (killed / "runs" / name / "best.safetensors").stat().st_mtime_ns for name in finished}
    capsys.readouterr()
    assert main(["study", *ARGS, "--out", str(killed)]) == 0
    printed = capsys.readouterr().out
    assert f"{len(finished)} finished (reused)" in printed
    for name in partial:
        assert f"{name}: resuming" in printed
        assert "resuming" in (killed / "runs" / name / "train.log").read_text()
    for name in finished:  # not retrained
        assert f"{name}: " not in printed
        assert (killed / "runs" / name / "best.safetensors").stat().st_mtime_ns == stamps[name]
    assert _rows(killed) == _rows(straight)
    for run in (straight / "runs").iterdir():
        a, b = load_file(run / "last.safetensors"), load_file(killed / "runs" / run.name / "last.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), run.name
