"""The benchmark scripts run end to end (tiny settings): their numbers live in docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
def test_train_quality_vs_timm_smoke_trains_both_sides_with_one_config(tmp_path):
    pytest.importorskip("timm")
    data = ROOT.parent / "shared" / "data" / "cifar10-mini"
    if not data.is_dir():
        pytest.skip("needs ../shared/data/cifar10-mini")
    out = _run("train_quality_vs_timm.py", "--smoke", "--threads", "1", "--workers", "0", "--work",
               str(tmp_path / "work"), "--json")
    table = [line for line in out.splitlines() if line.startswith("| ") and line.count("|") == 5]
    settings = {line.split("|")[1].strip(): line.split("|")[4].strip() for line in table[1:]}
    assert {"lr", "warmup_steps", "bce_target_threshold", "auto_augment", "steps_per_epoch"} <= set(settings)
    assert set(settings.values()) == {"yes"}, table
    assert "largest per-step lr difference 0.000 %" in out
    results = json.loads(out.strip().splitlines()[-1])
    rows = results["per_seed"]
    assert sorted((r["seed"], r["side"]) for r in rows) == [(0, "resnets"), (0, "timm"), (1, "resnets"), (1, "timm")]
    assert [r["side"] for r in rows] == ["resnets", "timm", "timm", "resnets"]  # order alternates by seed
    assert all(0 <= r["val"] <= 100 and 0 <= r["holdout"] <= 100 and r["wall_s"] > 0 for r in rows)
    assert results["splits"] == {"train": 20, "val": 10, "holdout": 10}
    assert results["config"]["steps_per_epoch"] == 2 and results["metrics"]["val"]["se"] is not None
    # both sides started from the same initial weights and trained for real: the final weights differ from them
    from safetensors.torch import load_file

    init = load_file(str(tmp_path / "work" / "init-0.safetensors"))
    ours = load_file(str(tmp_path / "work" / "resnets-0" / "last.safetensors"))
    theirs = load_file(str(tmp_path / "work" / "timm-0" / "final.safetensors"))
    assert not torch.equal(init["fc.weight"], ours["fc.weight"]) and not torch.equal(init["fc.weight"],
                                                                                       theirs["fc.weight"])


def test_train_quality_vs_timm_refuses_a_recipe_with_ema(tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    for split in ("train", "val"):
        for name in ("a", "b"):
            (data / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(data / split / name / "0.png")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_quality_vs_timm.py"), "--data", str(data),
                             "--recipe", "torchvision-v2", "--holdout-per-class", "0", "--work", str(tmp_path / "w")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2 and "EMA" in result.stderr.strip().splitlines()[-1], result.stderr[-2000:]


def test_train_quality_vs_timm_statistics_and_config_mapping(monkeypatch):
    pytest.importorskip("timm")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the script imports its timm loop beside it
    import train_quality_vs_timm as quality

    # the timm loop gets exactly the values our resolver chose for the same command line
    args = quality.parse_args(["--data", str(ROOT), "--epochs", "4", "--batch-size", "64"])
    spec = quality.resolve_ours(args, "digits")
    cfg = quality.timm_config(spec, train_images=4000, threads=1, workers=0)
    view = quality.ours_view(spec, cfg["steps_per_epoch"])
    assert {k: v for k, v in view.items() if k != "timm_opt"} == {k: cfg[k] for k in view if k != "timm_opt"}
    assert cfg["steps_per_epoch"] == 62 and cfg["warmup_steps"] == 12
    assert cfg["lr"] == pytest.approx(8e-3 * (64 / 2048) ** 0.5) and cfg["warmup_lr"] == pytest.approx(cfg["lr"] * 1e-4)
    assert quality.schedule_gap(cfg) < 1e-12
    scipy_stats = pytest.importorskip("scipy.stats")
    ours, theirs = [20.7, 20.8, 23.4], [18.4, 20.8, 20.7]
    test = quality.welch(ours, theirs)
    reference = scipy_stats.ttest_ind(ours, theirs, equal_var=False, alternative="less")
    assert test["t"] == pytest.approx(reference.statistic) and test["p_lower"] == pytest.approx(reference.pvalue)
    assert quality.verdict(quality.welch([10.0, 10.5, 9.8], [20.0, 21.0, 20.4])).startswith("ours LOWER")


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
