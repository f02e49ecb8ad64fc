"""The training engine end to end: run directory, exact resume (time/step checkpoints, before any checkpoint,
edited recipe), batched NaN rollback, DDP with broken data, logging, and every bad input in one line."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import resnets
from resnets.cli import main
from resnets.train.checkpoint import LAST_STATE
from resnets.weights.io import save_weights

TINY = ["--set", "model.width_multiplier=0.25", "--no-progress", "--deterministic", "--no-tensorboard"]


def _train_cmd(out: Path, *extra: str, recipe: str = "demo") -> list[str]:
    return [sys.executable, "-m", "resnets", "train", "--data", "digits", "--recipe", recipe, "--out", str(out),
            *TINY, *extra]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RESNETS_KILL_AT_STEP", None)
    env.update(extra)
    return env


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(**env), timeout=900)


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "last.safetensors"), load_file(b / "last.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_directory_contents(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", "digits", "--out", str(out), "--epochs", "1", "--batch-size", "64",
                 "--workers", "0", *TINY])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "top-1" in printed
    for name in ("run.json", "recipe.yaml", "metrics.jsonl", "metrics.csv", "summary.json", "last.safetensors",
                 "best.safetensors", LAST_STATE):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("best_top1", "final_top1", "final_top5", "epochs", "train_img_per_s", "wall_s", "eval_img_size"):
        assert key in summary
    assert summary["epochs"] == 1 and 0 <= summary["final_top1"] <= 100
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 0 and "torch" in run["versions"] and run["model_config"]["width_multiplier"] == 0.25
    assert run["resolved_recipe"]["epochs"] == 1 and run["options"]["recipe"] == "demo"
    assert any("warmup" in note for note in run["notes"])  # the demo's 1-epoch warmup in a 1-epoch run
    rows = _rows(out)
    assert len(rows) == 1 and {"train_loss", "val_top1", "val_top5", "lr", "img_per_s", "epoch_time_s"} <= set(rows[0])
    assert (out / "metrics.csv").read_text().splitlines()[0].startswith("epoch,train_loss")
    model = resnets.load_model(out / "best.safetensors")
    assert model.class_names == [str(i) for i in range(10)]
    # training state is plain data: loadable without unpickling code
    state = torch.load(out / LAST_STATE, weights_only=True)
    assert state["progress"]["epoch"] == 1 and state["step"][0]["steps"] == summary["steps"] > 0


def test_out_directory_holding_a_run_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", "digits", "--out", str(out), "--epochs", "1", "--workers", "0", *TINY]
    assert main(args) == 0
    before = (out / "last.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and f"--resume {out}" in err and err.count("\n") == 1
    assert (out / "last.safetensors").read_bytes() == before


# Every random stream on: mixup/cutmix, erasing, drop path, EMA, accumulation, repeated augmentation.
RANDOM_EVERYTHING = ["--set", "mixup_alpha=0.2", "--set", "cutmix_alpha=1.0", "--set", "re_prob=0.25",
                     "--set", "drop_path_rate=0.1", "--set", "ema_decay=0.9", "--set", "grad_accum=2",
                     "--set", "aug_repeats=2"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> tuple[Path, int]:
    """An uninterrupted 2-epoch run with every random stream on (checkpointing only at epoch ends)."""
    straight = tmp_path_factory.mktemp("straight") / "run"
    result = _run(_train_cmd(straight, "--epochs", "2", "--batch-size", "128", *RANDOM_EVERYTHING,
                             "--workers", "0", "--save-every-minutes", "0"))
    assert result.returncode == 0, result.stderr[-2000:]
    steps_per_epoch = json.loads((straight / "summary.json").read_text())["steps"] // 2
    return straight, steps_per_epoch


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["steps", "minutes"])
def test_resume_after_sigkill_mid_epoch_is_exact(tmp_path, straight_run, policy):
    straight, steps_per_epoch = straight_run
    kill_step = steps_per_epoch + 3  # mid-way through the second epoch
    if policy == "steps":  # the last checkpoint (every 2 steps) is one step behind the kill
        save = ["--save-every", "2", "--save-every-minutes", "0"]
        kill_step += 1 - kill_step % 2
    else:  # time-based checkpoints, due after every step at this interval
        save = ["--save-every-minutes", "0.00001"]
    killed = tmp_path / "killed"
    result = _run(_train_cmd(killed, "--epochs", "2", "--batch-size", "128", *RANDOM_EVERYTHING, "--workers", "2",
                             *save), RESNETS_KILL_AT_STEP=str(kill_step))
    assert result.returncode == -9, result.stderr[-2000:]  # SIGKILL: no chance to clean up
    state = torch.load(killed / LAST_STATE, weights_only=True)
    assert state["progress"]["epoch"] == 1 and 0 < state["progress"]["batch_in_epoch"] < 2 * steps_per_epoch
    expected_step = kill_step - 1 if policy == "steps" else kill_step
    assert state["step"][0]["steps"] == expected_step

    result = _run([sys.executable, "-m", "resnets", "train", "--resume", str(killed), "--no-progress"])
    assert result.returncode == 0, result.stderr[-2000:]
    _same_weights(straight, killed)
    ema_a = torch.load(straight / LAST_STATE, weights_only=True)["ema"]["module"]
    ema_b = torch.load(killed / LAST_STATE, weights_only=True)["ema"]["module"]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    assert [r["train_loss"] for r in _rows(straight)] == [r["train_loss"] for r in _rows(killed)]
    assert [r["val_top1"] for r in _rows(straight)] == [r["val_top1"] for r in _rows(killed)]


@pytest.mark.slow
def test_run_killed_before_its_first_checkpoint_resumes_from_the_start(tmp_path):
    common = ["--epochs", "1", "--batch-size", "128", "--set", "mixup_alpha=0.2", "--workers", "0",
              "--save-every-minutes", "0"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _run(_train_cmd(straight, *common)).returncode == 0
    result = _run(_train_cmd(killed, *common), RESNETS_KILL_AT_STEP="3")
    assert result.returncode == -9
    assert (killed / "run.json").is_file() and not (killed / LAST_STATE).exists()
    result = _run([sys.executable, "-m", "resnets", "train", "--resume", str(killed), "--no-progress"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "saved no checkpoint" in result.stdout and "from the beginning" in result.stdout
    _same_weights(straight, killed)


@pytest.mark.slow
def test_resume_uses_the_recorded_recipe_not_the_edited_file(tmp_path):
    import yaml

    recipe = yaml.safe_load((Path(resnets.__file__).parent / "train" / "recipes" / "demo.yaml").read_text())
    recipe_file = tmp_path / "mine.yaml"
    recipe_file.write_text(yaml.safe_dump({**recipe, "name": "mine", "epochs": 2}))
    common = ["--batch-size", "128", "--workers", "0", "--save-every", "2", "--save-every-minutes", "0"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _run(_train_cmd(straight, *common, recipe=str(recipe_file))).returncode == 0
    result = _run(_train_cmd(killed, *common, recipe=str(recipe_file)), RESNETS_KILL_AT_STEP="15")
    assert result.returncode == -9
    recipe_file.write_text(yaml.safe_dump({**recipe, "name": "mine", "epochs": 3, "lr": 0.5}))  # edited
    result = _run([sys.executable, "-m", "resnets", "train", "--resume", str(killed), "--no-progress"])
    assert result.returncode == 0, result.stderr[-2000:]
    note = [line for line in result.stdout.splitlines() if "changed since this run started" in line]
    assert len(note) == 1 and "epochs" in note[0] and "lr" in note[0] and "values recorded in the run" in note[0]
    _same_weights(straight, killed)
    assert json.loads((killed / "summary.json").read_text())["epochs"] == 2


def _poison_loss_at(monkeypatch, call: int) -> None:
    """Make the training loss NaN from its `call`-th evaluation on (what a diverging run looks like)."""
    import resnets.train.engine as engine

    original = engine.build_loss

    def build(recipe):
        loss_fn, calls = original(recipe), [0]

        def poisoned(logits, targets):
            calls[0] += 1
            loss = loss_fn(logits, targets)
            return loss * float("nan") if calls[0] >= call else loss

        return poisoned

    monkeypatch.setattr(engine, "build_loss", build)


def test_nan_is_caught_at_a_log_point_and_rolled_back(tmp_path, capsys, monkeypatch):
    _poison_loss_at(monkeypatch, 5)  # step 5 goes wrong; checkpoints every 4 steps, log points every 3
    out = tmp_path / "nan"
    code = main(["train", "--data", "digits", "--out", str(out), "--epochs", "1", "--batch-size", "64",
                 "--workers", "0", "--save-every", "4", "--log-every", "3", *TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one line, no traceback
    assert "loss became non-finite by step 6" in err  # found at the first log point after it, not per step
    assert "rolled back to the last good checkpoint (epoch 0, step 4)" in err
    state = torch.load(out / LAST_STATE, weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert state["step"][0]["steps"] == 4 and not bool(state["step"][0]["nonfinite"])


def test_rollback_restores_the_checkpoint_in_memory(tmp_path, monkeypatch):
    from resnets.train.engine import Trainer, TrainingDiverged
    from resnets.train.options import TrainOptions

    _poison_loss_at(monkeypatch, 5)
    options = TrainOptions(data="digits", out=str(tmp_path / "run"), epochs=1, batch_size=64, workers=0,
                           save_every=4, log_every=3, sets=["model.width_multiplier=0.25"], progress=False,
                           tensorboard=False)
    trainer = Trainer(options)
    with pytest.raises(TrainingDiverged):
        trainer.run()
    saved = torch.load(tmp_path / "run" / LAST_STATE, weights_only=True)
    assert trainer.step.steps == saved["step"][0]["steps"] == 4
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, saved["model"][key]), key
    for key, value in trainer.optimizer.state_dict()["state"].items():
        assert torch.equal(value["momentum_buffer"], saved["optimizer"]["state"][key]["momentum_buffer"])


def test_checkpoint_write_failure_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "last.safetensors"
    save_weights({"w": torch.ones(3)}, path)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("resnets.weights.io.save_file", disk_full)
    with pytest.raises(OSError):
        save_weights({"w": torch.zeros(3)}, path)
    assert torch.equal(load_file(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temporary file left behind


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "resnets",
            "train", *args]


@pytest.mark.slow
def test_two_process_ddp_stays_in_sync(tmp_path):
    out = tmp_path / "ddp"
    result = _run(_torchrun("--data", "digits", "--out", str(out), "--epochs", "1", "--batch-size", "64",
                            "--workers", "0", "--set", "grad_accum=2", "--set", "ema_decay=0.9", *TINY))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"] is True
    assert summary["global_batch"] == 64
    assert (out / "last.safetensors").is_file()
    assert result.stdout.count("run directory:") == 1  # only rank 0 talks and writes


def _mostly_truncated_folder(root: Path, shared_data: Path) -> Path:
    """train: 3 of every 4 images truncated (unreadable); val intact."""
    for split, per_class in (("train", 16), ("val", 4)):
        for name in ("cat", "dog"):
            target = root / split / name
            target.mkdir(parents=True)
            for i, image in enumerate(sorted((shared_data / "cifar10-mini" / split / name).iterdir())[:per_class]):
                data = image.read_bytes()
                (target / image.name).write_bytes(data if split == "val" or i % 4 == 0 else data[:len(data) // 3])
    return root


@pytest.mark.slow
def test_ddp_run_on_mostly_truncated_images_finishes(tmp_path, shared_data):
    data = _mostly_truncated_folder(tmp_path / "data", shared_data)
    out = tmp_path / "run"
    result = _run(_torchrun("--data", str(data), "--out", str(out), "--epochs", "2", "--batch-size", "8",
                            "--workers", "0", "--img-size", "32", "--set", "auto_augment=null", *TINY))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_images"] == 24 and summary["ranks_in_sync"] is True
    assert summary["skipped_batches"] > 0  # micro-batches some rank could not fill for BatchNorm
    assert "Expected more than 1 value" not in result.stderr


def test_ddp_step_weights_samples_not_ranks(tmp_path):
    """Two ranks holding 32 and 20 images give the update one process computes on those 52 images."""
    script = Path(__file__).with_name("ddp_step_worker.py")
    result = _run([sys.executable, str(script), str(tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    for rank in (0, 1):
        ddp = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for key in single:
            torch.testing.assert_close(ddp[key], single[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("args, message", [
    (["--recipe", "rsb-a9"], "unknown recipe"),
    (["--model", "resnet5O"], "unknown model"),
    (["--data", "/nonexistent/data"], "/nonexistent/data"),
    (["--set", "lrr=0.1"], "lrr"),
    (["--batch-size", "3000"], "fewer than one batch"),
    (["--log-every", "0"], "--log-every must be at least 1"),
    (["--save-every-minutes", "-1"], "--save-every-minutes"),
])
def test_bad_input_one_line(args, message, capsys, tmp_path):
    code = main(["train", "--out", str(tmp_path / "x"), "--workers", "0", "--no-progress", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_tensorboard_directory_that_cannot_be_written(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "tensorboard").write_text("a file where the log folder should be")
    code = main(["train", "--data", "digits", "--out", str(out), "--epochs", "1", "--workers", "0",
                 "--set", "model.width_multiplier=0.25", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot write TensorBoard logs" in err and "--no-tensorboard" in err and err.count("\n") == 1


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "run.json").write_text("{not json"), "run record"),
    (lambda run: (run / "run.json").unlink(), "not a resnets run directory"),
    (lambda run: (run / "run.json").write_text(json.dumps({"format": "resnets-run", "version": 2})), "damaged"),
    (lambda run: (run / LAST_STATE).write_bytes(b"garbage"), "unreadable"),
])
def test_resume_of_a_broken_run_is_one_line_and_loses_nothing(tmp_path, capsys, damage, message):
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--out", str(out), "--epochs", "1", "--workers", "0", *TINY]) == 0
    damage(out)
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == files


def test_resume_missing_directory(capsys, tmp_path):
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert "run directory not found" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--epochs", "5"], ["--model", "resnet34"], ["--data", "elsewhere"]])
def test_resume_refuses_changed_settings(tmp_path, capsys, flags):
    assert main(["train", "--resume", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert f"drop {flags[0]}" in err and err.count("\n") == 1


def test_resume_refuses_data_whose_classes_changed(tmp_path, shared_data, capsys):
    data = tmp_path / "data"
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            (data / split / name).mkdir(parents=True)
            for image in sorted((shared_data / "cifar10-mini" / split / name).iterdir())[:8]:
                shutil.copy(image, data / split / name / image.name)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "8",
                 "--workers", "0", "--img-size", "32", *TINY]) == 0
    for split in ("train", "val"):
        shutil.copytree(data / split / "cat", data / split / "bird")
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "now has 3 classes" in err and err.count("\n") == 1


def test_trained_weights_evaluate_at_their_training_resolution(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--out", str(out), "--epochs", "1", "--batch-size", "64",
                 "--workers", "0", "--json", *TINY]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # --json: stdout holds only the summary; progress went to stderr
    assert "run directory" in captured.err
    config = resnets.load_model(out / "best.safetensors").config
    assert (config.input_size, config.eval_size, config.crop_pct) == (32, 32, 1.0)
    assert main(["eval", "--weights", str(out / "best.safetensors"), "--data", "digits", "--json",
                 "--workers", "0"]) == 0  # no size flags: the checkpoint knows its preprocessing
    result = json.loads(capsys.readouterr().out)
    assert result["top1"] == pytest.approx(summary["best_top1"], abs=1e-6)


def test_eval_size_follows_img_size_and_is_printed(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--recipe", "rsb-a3", "--model", "resnet18", "--img-size", "40",
                 "--epochs", "1", "--batch-size", "64", "--workers", "0", "--out", str(out),
                 "--set", "auto_augment=null", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "evaluation at 56 px" in printed and "160:224" in printed  # round(40 * 224 / 160)
    run = json.loads((out / "run.json").read_text())
    assert run["img_size"] == 40 and run["eval_img_size"] == 56
    assert resnets.load_model(out / "best.safetensors").config.eval_size == 56


@pytest.mark.parametrize("flag, value", [("--batch-size", "0"), ("--epochs", "0"), ("--img-size", "16"),
                                         ("--lr", "-1"), ("--save-every", "-2"), ("--eval-img-size", "8")])
def test_bad_numbers(tmp_path, capsys, flag, value):
    assert main(["train", "--out", str(tmp_path / "x"), flag, value, "--no-progress"]) == 2
    assert flag in capsys.readouterr().err


def test_strict_stops_on_corrupt_image_with_workers(tmp_path, shared_data, capsys):
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            target = tmp_path / "data" / split / name
            target.mkdir(parents=True)
            for image in sorted((shared_data / "cifar10-mini" / split / name).iterdir())[:8]:
                shutil.copy(image, target / image.name)
    (tmp_path / "data" / "train" / "cat" / "zz_broken.png").write_bytes(b"garbage")
    code = main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--batch-size", "8", "--workers", "2", "--strict", "--img-size", "32", *TINY])
    assert code == 2
    err = capsys.readouterr().err
    assert "zz_broken.png" in err and err.count("\n") == 1


def test_log_lines_without_a_terminal_and_tensorboard_scalars(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--out", str(out), "--epochs", "2", "--batch-size", "64",
                 "--workers", "0", "--log-every", "10", "--set", "model.width_multiplier=0.25"]) == 0
    printed = capsys.readouterr().out
    assert "\r" not in printed  # not a terminal: no progress-bar redraws
    lines = [line for line in printed.splitlines() if line.startswith("epoch 1/2 step")]
    assert len(lines) == 2 and "loss" in lines[0] and "img/s" in lines[0]  # steps 10 and 20 of 22
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/img_per_s", "val/top1", "val/top5", "train/epoch_loss"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [10, 20, 30, 40]
    assert [e.step for e in events.Scalars("val/top1")] == [22, 44]
    top1 = [e.value for e in events.Scalars("val/top1")]
    assert top1 == pytest.approx([r["val_top1"] for r in _rows(out)])


def test_mlflow_logging(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--out", str(out), "--epochs", "1", "--workers", "0",
                 "--log-every", "10", "--mlflow", uri, *TINY]) == 0
    run_id = json.loads((out / "mlflow.json").read_text())["run_id"]
    client = mlflow.tracking.MlflowClient(uri)
    assert client.get_run(run_id).data.params["recipe"] == "demo"
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [10, 20]
    assert client.get_metric_history(run_id, "val_top1")[0].value == pytest.approx(_rows(out)[0]["val_top1"])


def test_repeated_augmentation_on_one_process_keeps_copies_apart(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--out", str(out), "--epochs", "1", "--batch-size", "64",
                 "--workers", "0", "--set", "aug_repeats=3", *TINY]) == 0
    assert "never into one BatchNorm batch" in capsys.readouterr().out


@pytest.mark.slow
def test_two_processes_at_32_make_the_update_of_one_at_64(tmp_path):
    """DDP equals one process at the same global batch: GroupNorm (per-sample statistics) and no augmentation
    randomness, so only the gradient all-reduce and the sample weighting can differ. Compared after 4 steps
    (checkpointed every step, then killed): over a whole epoch SGD amplifies fp32 rounding to ~1e-4."""
    fixed = ["--epochs", "1", "--batch-size", "64", "--workers", "0", "--save-every", "1",
             "--set", "model.norm_layer=groupnorm", "--set", "model.norm_groups=8", "--set", "hflip=0",
             "--set", "rrc_scale=[1,1]", "--set", "rrc_ratio=[1,1]", *TINY]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert _run(_train_cmd(single, *fixed), RESNETS_KILL_AT_STEP="4").returncode == -9
    result = _run(_torchrun("--data", "digits", "--out", str(ddp), *fixed), RESNETS_KILL_AT_STEP="4")
    assert result.returncode != 0  # torchrun reports its killed workers
    a = torch.load(single / LAST_STATE, weights_only=True)
    b = torch.load(ddp / LAST_STATE, weights_only=True)
    assert a["step"][0]["steps"] == b["step"][0]["steps"] == 4  # saved, then killed
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_atomically_written_files_get_the_usual_permissions(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights({"w": torch.ones(3)}, path)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
