"""The Ray executor (Ray from PyPI, a local cluster of 2 CPUs started here): the same spec gives the same
per-run results as the local executor on CPU, and each executor reuses the other's finished runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from resnets.studies.executors import LocalExecutor
from resnets.studies.runner import run_study
from resnets.studies.spec import SeedsStudy

ray = pytest.importorskip("ray")

SAME = ("run_id", "seed", "status", "val_top1", "val_top5", "final_top1", "params", "macs")


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as handle:
        return [{k: row[k] for k in SAME} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _study() -> SeedsStudy:
    return SeedsStudy(data="digits", seeds=[0, 1], epochs=1, sets=["model.width_multiplier=0.25"], deterministic=True)


@pytest.mark.slow
def test_ray_and_local_agree_run_for_run_and_reuse_each_other(tmp_path, local_ray):
    from resnets.studies.executors import RayExecutor

    runtime = {"tensorboard": False}
    messages: list[str] = []
    on_ray, on_local = tmp_path / "ray", tmp_path / "local"
    summary = run_study(_study(), on_ray, RayExecutor(cpus_per_run=1), runtime=runtime, say=messages.append)
    assert summary["finished"] == 2, messages
    assert any("ray (local)" in m and "1 CPU(s) and 0 GPU(s) per run" in m for m in messages)
    run_study(_study(), on_local, LocalExecutor(parallel=2, threads=1), runtime=runtime, say=messages.append)
    assert _rows(on_ray) == _rows(on_local)
    for run in (on_ray / "runs").iterdir():
        a, b = load_file(run / "best.safetensors"), load_file(on_local / "runs" / run.name / "best.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), run.name
        assert '"executor": "ray"' in (run / "study-result.json").read_text()
    messages.clear()
    run_study(_study(), on_ray, LocalExecutor(parallel=1, threads=1), runtime=runtime, say=messages.append)
    run_study(_study(), on_local, RayExecutor(cpus_per_run=1), runtime=runtime, say=messages.append)
    assert sum("2 finished (reused)" in m for m in messages) == 2 and not any("starting" in m for m in messages)


@pytest.mark.slow
def test_a_failing_ray_task_is_one_failed_run(tmp_path, local_ray):
    from resnets.studies.executors import RayExecutor
    from resnets.studies.parse import Step
    from resnets.studies.spec import AblationStudy

    study = AblationStudy(data="digits", epochs=1, sets=["model.width_multiplier=0.25"],
                          steps=[Step("huge", {"batch_size": "100000"})])
    summary = run_study(study, tmp_path / "s", RayExecutor(cpus_per_run=1), runtime={"tensorboard": False},
                        say=lambda _: None)
    assert summary["finished"] == 1 and summary["failed"] == 1
    text = (tmp_path / "s" / "results.csv").read_text()
    assert "fewer than one batch" in text
