"""Distillation: the losses (values and gradients against hand-computed values and F.kl_div), the frozen
teacher (unchanged, outside optimiser and checkpoints, its own normalisation), the unlabelled stream (used and
counted), resume with and without a teacher, DDP, the recipes, `bench --train --teacher` and every bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

import resnets
from resnets.cli import main
from resnets.data.datasets import SampleRef
from resnets.data.unlabeled import UnlabeledShare, scan_images
from resnets.distill import kd_loss, kd_objective, ssld_loss
from resnets.train.checkpoint import LAST_STATE
from resnets.train.engine import Trainer
from resnets.train.losses import CrossEntropy
from resnets.train.options import TrainOptions
from resnets.train.teacher import Distillation, Teacher

TINY = ["--set", "model.width_multiplier=0.125", "--no-progress", "--no-tensorboard", "--workers", "0",
        "--batch-size", "16", "--img-size", "32", "--set", "eval_img_size=32", "--set", "warmup_epochs=0"]
COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (200, 200, 30)]


# --- losses ---------------------------------------------------------------------------------------------------------
def test_kd_and_ssld_match_hand_computed_values():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # softmax: p = (0.75, 0.25); q = (0.5, 0.5)
    kl_pq = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    kl_qp = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert kd_loss(student, teacher).item() == pytest.approx(kl_pq, rel=1e-6)
    assert ssld_loss(student, teacher).item() == pytest.approx((kl_pq + kl_qp) / 2, rel=1e-6)
    # T = 2: p = softmax(log 3 / 2, 0) = (sqrt3 / (sqrt3 + 1), 1 / (sqrt3 + 1)); times T^2
    r = math.sqrt(3.0)
    p = (r / (r + 1), 1 / (r + 1))
    expected = 4 * sum(pi * math.log(pi / 0.5) for pi in p)
    assert kd_loss(student, teacher, temperature=2.0).item() == pytest.approx(expected, rel=1e-6)
    assert kd_objective(torch.tensor(2.0), torch.tensor(4.0), alpha=0.25).item() == pytest.approx(2.5)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_losses_and_gradients_match_kl_div_formulations(temperature):
    torch.manual_seed(0)
    s1 = torch.randn(6, 5, dtype=torch.float64).float().requires_grad_()
    t1 = (torch.randn(6, 5) * 2).requires_grad_()
    s2, t2 = s1.detach().clone().requires_grad_(), t1.detach().clone().requires_grad_()
    T = temperature
    ours = kd_loss(s1, t1, T)
    # Hinton as usually written: KL(teacher || student) on softened outputs, batchmean, times T^2
    ref = F.kl_div(F.log_softmax(s2 / T, -1), F.softmax(t2 / T, -1), reduction="batchmean") * T * T
    torch.testing.assert_close(ours, ref)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(s1.grad, s2.grad)
    torch.testing.assert_close(t1.grad, t2.grad)
    # d/ds T^2 KL(p || softmax(s / T)) = T (q - p) / N
    hand = T * (F.softmax(s1.detach() / T, -1) - F.softmax(t1.detach() / T, -1)) / s1.shape[0]
    torch.testing.assert_close(s1.grad, hand)

    s1.grad = t1.grad = s2.grad = t2.grad = None
    ours = ssld_loss(s1, t1)
    log_q, log_p = F.log_softmax(s2, -1), F.log_softmax(t2, -1)
    ref = (F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
           + F.kl_div(log_p, log_q, reduction="batchmean", log_target=True)) / 2
    torch.testing.assert_close(ours, ref)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(s1.grad, s2.grad)
    torch.testing.assert_close(t1.grad, t2.grad)
    per_sample = ssld_loss(s1.detach(), t1.detach(), reduction="none")
    assert per_sample.shape == (6,) and torch.all(per_sample >= 0)
    assert torch.allclose(ssld_loss(t1.detach(), t1.detach(), reduction="none"), torch.zeros(6), atol=1e-6)


def test_loss_argument_errors():
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0)
    with pytest.raises(ValueError, match="logits"):
        ssld_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="alpha"):
        kd_objective(torch.tensor(1.0), torch.tensor(1.0), alpha=1.5)


def test_kd_objective_weights_per_sample_and_ignores_unlabelled_targets():
    torch.manual_seed(1)
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    targets = torch.tensor([0, 2, 1, 0])
    ce = CrossEntropy(reduction="none")
    distill = Distillation(torch.nn.Identity(), "kd", task_loss=ce, alpha=0.3, temperature=2.0)
    everyone = torch.ones(4, dtype=torch.bool)
    expected = 0.7 * F.cross_entropy(student, targets) + 0.3 * kd_loss(student, teacher, 2.0)
    torch.testing.assert_close(distill.loss(student, teacher, targets, everyone), expected)
    labeled = torch.tensor([True, False, True, False])
    kd = kd_loss(student, teacher, 2.0, reduction="none")
    task = F.cross_entropy(student, targets, reduction="none") * labeled
    expected = (0.7 * task + 0.3 * kd).mean()
    torch.testing.assert_close(distill.loss(student, teacher, targets, labeled), expected)
    other = torch.tensor([0, 0, 1, 2])  # placeholders of unlabelled samples do not matter
    torch.testing.assert_close(distill.loss(student, teacher, other, labeled), expected)
    ssld = Distillation(torch.nn.Identity(), "ssld", task_loss=ce)
    torch.testing.assert_close(ssld.loss(student, teacher, other, labeled), ssld_loss(student, teacher))


def test_teacher_gets_its_own_normalisation_and_resolution():
    model = resnets.create_model("resnet18", num_classes=3, width_multiplier=0.125, mean=(0.5, 0.5, 0.5),
                                 std=(0.5, 0.5, 0.5), input_size=48)
    student_mean, student_std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    teacher = Teacher(model, student_mean=student_mean, student_std=student_std, student_size=32)
    pixels = torch.rand(2, 3, 32, 32)
    as_student = (pixels - torch.tensor(student_mean).view(1, 3, 1, 1)) / torch.tensor(student_std).view(1, 3, 1, 1)
    converted = teacher.preprocess(as_student)
    assert converted.shape == (2, 3, 48, 48)
    direct = F.interpolate((pixels - 0.5) / 0.5, size=(48, 48), mode="bilinear", align_corners=False)
    torch.testing.assert_close(converted, direct, atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.model.training  # always eval unless bn="train"
    out = teacher(as_student.requires_grad_())
    assert out.shape == (2, 3) and not out.requires_grad


def test_train_mode_teacher_bn_uses_batch_statistics_and_keeps_its_own():
    model = resnets.create_model("resnet18", num_classes=3, width_multiplier=0.125)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.add_(0.3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    teacher = Teacher(model, student_mean=model.config.mean, student_std=model.config.std, student_size=32, bn="train")
    x = torch.randn(4, 3, 32, 32)
    batch_stats = teacher(x)
    eval_teacher = Teacher(resnets.create_model("resnet18", num_classes=3, width_multiplier=0.125),
                           student_mean=model.config.mean, student_std=model.config.std, student_size=32)
    eval_teacher.model.load_state_dict(before)
    assert not torch.allclose(batch_stats, eval_teacher(x))
    for key, value in model.state_dict().items():  # running statistics and counters alike
        assert torch.equal(value, before[key]), key


# --- the unlabelled stream ------------------------------------------------------------------------------------------
def _image(path: Path, colour: tuple[int, int, int], size: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(-25, 26, (size, size, 3), generator=g)
    pixels = (torch.tensor(colour).view(1, 1, 3) + noise).clamp(0, 255).to(torch.uint8).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    """4 classes x 12 train / 4 val images (24-32 px), 16 unlabelled ones in nested folders and 8 flat ones."""
    root = tmp_path_factory.mktemp("distill-data")
    for c, colour in enumerate(COLOURS):
        for i in range(12):
            _image(root / "data" / "train" / f"c{c}" / f"{i}.png", colour, 24 + 8 * (i % 2), c * 100 + i)
        for i in range(4):
            _image(root / "data" / "val" / f"c{c}" / f"{i}.png", colour, 32, 1000 + c * 100 + i)
        for i in range(4):
            _image(root / "nested" / f"part{c}" / "deeper" / f"{i}.jpg", colour, 28, 2000 + c * 10 + i)
        for i in range(2):
            _image(root / "flat" / f"{c}-{i}.png", colour, 32, 3000 + c * 10 + i)
    (root / "flat" / "notes.txt").write_text("not an image")
    (root / "empty" / "sub").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def teacher_file(folders) -> Path:
    """A tiny teacher trained for 1 epoch on the 4-class folder."""
    out = folders / "teacher-run"
    assert main(["train", "--data", str(folders / "data"), "--out", str(out), "--epochs", "1", *TINY]) == 0
    return out / "best.safetensors"


def test_scan_images_flat_and_nested(folders):
    paths = scan_images([folders / "nested", folders / "flat"])
    assert len(paths) == 24 and all(not p.endswith(".txt") for p in paths)


def test_unlabeled_share_uses_every_image_once_before_repeating():
    class Inner:
        def __init__(self):
            self.epoch = 0

        def set_epoch(self, e):
            self.epoch = e

        def __iter__(self):  # 4 labelled, then 3 unlabelled slots
            return iter(SampleRef(i, 100 + i) for i in range(7))

        def __len__(self):
            return 7

    share = UnlabeledShare(Inner(), labeled=4, pool=6, per_epoch=3, seed=5)
    seen = []
    for epoch in range(2):
        share.set_epoch(epoch)
        refs = list(share)
        assert [r.index for r in refs[:4]] == [0, 1, 2, 3] and [r.seed for r in refs] == list(range(100, 107))
        seen += [r.index - 4 for r in refs[4:]]
    assert sorted(seen) == list(range(6))  # two epochs of 3 cover the pool of 6 exactly once
    assert len(share.slot_images(7)) == 3 and len(set(share.slot_images(2) + share.slot_images(3))) == 6


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_ssld_with_unlabelled_images_counts_them_and_leaves_the_teacher_alone(folders, teacher_file, tmp_path):
    teacher_before = load_file(teacher_file)
    options = TrainOptions(data=str(folders / "data"), out=str(tmp_path / "ssld"), epochs=2, batch_size=16,
                           img_size=32, sets=["model.width_multiplier=0.125", "eval_img_size=32", "warmup_epochs=0",
                                              "mixup_alpha=0.2"],
                           workers=0, progress=False, tensorboard=False, teacher=str(teacher_file), distill="ssld",
                           teacher_bn="train", unlabeled=[str(folders / "nested"), str(folders / "flat")])
    trainer = Trainer(options)
    teacher_params = {id(p) for p in trainer.teacher.parameters()}
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert teacher_params and not teacher_params & optimised
    summary = trainer.run()
    # 48 labelled + 24 unlabelled = 72 images, 4 steps of 16 per epoch: all but 8 images per epoch enter a step
    assert summary["distill"]["mode"] == "ssld" and summary["distill"]["unlabeled_images"] == 24
    assert summary["distill"]["teacher"]["sha256"] and summary["distill"]["teacher"]["model"] == "resnet18"
    order_check = trainer.data.sampler
    expected = 0
    for epoch in range(2):
        order_check.set_epoch(epoch)
        used = [ref.index for ref in order_check][:summary["steps"] // 2 * 16]
        expected += sum(1 for index in used if index >= 48)
    assert summary["distill"]["unlabeled_seen"] == expected > 0
    for key, value in trainer.teacher.model.state_dict().items():  # BN train mode: running stats kept too
        assert torch.equal(value.cpu(), teacher_before[key]), key
    # the teacher is in no checkpoint: the saved states hold exactly the student's tensors
    student_keys = set(trainer.model.state_dict())
    assert set(load_file(tmp_path / "ssld" / "last.safetensors")) == student_keys
    state = torch.load(tmp_path / "ssld" / LAST_STATE, weights_only=True)
    assert set(state["model"]) == student_keys
    assert len(state["optimizer"]["param_groups"][0]["params"]) + sum(
        len(g["params"]) for g in state["optimizer"]["param_groups"][1:]) == len(list(trainer.model.parameters()))
    record = json.loads((tmp_path / "ssld" / "run.json").read_text())
    assert record["teacher"]["path"] == str(teacher_file) and record["teacher"]["preprocessing"]["bn"] == "train"
    assert record["resolved_recipe"]["distill"] == "ssld"


def test_kd_with_an_unlabelled_share(folders, teacher_file, tmp_path):
    out = tmp_path / "kd"
    code = main(["train", "--data", str(folders / "data"), "--out", str(out), "--epochs", "2", *TINY,
                 "--teacher", str(teacher_file), "--distill", "kd", "--distill-alpha", "0.7", "--temperature", "2",
                 "--unlabeled", str(folders / "nested"), "--unlabeled-ratio", "0.34"])
    assert code == 0
    distill = _summary(out)["distill"]
    # round(0.34 x 48) = 16 unlabelled slots per epoch: 64 images, 4 full steps, every slot used
    assert (distill["alpha"], distill["temperature"], distill["unlabeled_per_epoch"]) == (0.7, 2.0, 16)
    assert distill["unlabeled_seen"] == 32


# --- resume ---------------------------------------------------------------------------------------------------------
def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    environment.pop("RESNETS_KILL_AT_STEP", None)
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "resnets", "train", *args], capture_output=True, text=True,
                          env=environment, timeout=900)


@pytest.mark.slow
def test_resume_with_a_teacher_is_exact_and_refuses_a_changed_one(folders, teacher_file, tmp_path):
    teacher = tmp_path / "teacher.safetensors"
    teacher.write_bytes(teacher_file.read_bytes())
    common = ["--data", str(folders / "data"), "--epochs", "2", *TINY, "--deterministic", "--teacher", str(teacher),
              "--distill", "kd", "--unlabeled", str(folders / "flat"), "--save-every", "1"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _cli("--out", str(straight), *common).returncode == 0
    assert _cli("--out", str(killed), *common, RESNETS_KILL_AT_STEP="5").returncode != 0
    resumed = _cli("--resume", str(killed), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_file(straight / "last.safetensors"), load_file(killed / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _summary(straight)["distill"]["unlabeled_seen"] == _summary(killed)["distill"]["unlabeled_seen"]

    again = tmp_path / "again"
    assert _cli("--out", str(again), *common, RESNETS_KILL_AT_STEP="2").returncode != 0
    other = resnets.load_model(teacher)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    resnets.save_model(other, teacher)
    refused = _cli("--resume", str(again), "--no-progress")
    assert refused.returncode == 2
    assert "teacher" in refused.stderr and "changed since the run started" in refused.stderr
    assert refused.stderr.strip().count("\n") == 0
    teacher.unlink()
    gone = _cli("--resume", str(again), "--no-progress")
    assert gone.returncode == 2 and "is gone" in gone.stderr


def test_resume_without_a_teacher_and_no_teacher_flags_on_resume(folders, tmp_path, capsys):
    out = tmp_path / "plain"
    common = ["--data", str(folders / "data"), "--epochs", "2", *TINY, "--save-every", "1"]
    assert _cli("--out", str(out), *common, RESNETS_KILL_AT_STEP="3").returncode != 0
    assert _cli("--resume", str(out), "--no-progress").returncode == 0
    assert _summary(out)["distill"] is None and json.loads((out / "run.json").read_text())["teacher"] is None
    assert main(["train", "--resume", str(out), "--teacher", "x.safetensors"]) == 2
    assert "drop --teacher" in capsys.readouterr().err


# --- DDP ---------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_process_ddp_distillation(folders, teacher_file, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "resnets",
           "train", "--data", str(folders / "data"), "--out", str(out), "--epochs", "1", *TINY,
           "--teacher", str(teacher_file), "--distill", "kd", "--unlabeled", str(folders / "nested"),
           "--set", "mixup_alpha=0.2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RESNETS_KILL_AT_STEP", None)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = _summary(out)
    assert summary["world_size"] == 2 and summary["ranks_in_sync"] is True
    # 64 images over 2 ranks x 8 per micro-batch: 4 steps, every image used once; the counts of both ranks add up
    assert summary["steps"] == 4 and summary["distill"]["unlabeled_seen"] == 16
    assert result.stdout.count("distillation: kd") == 1


# --- recipes, bench, bad input -------------------------------------------------------------------------------------------
def test_paddle_ssld_recipes():
    from resnets.train.recipe import load_recipe

    stage1, stage2 = load_recipe("paddle-ssld"), load_recipe("paddle-ssld-finetune")
    assert (stage1.model, stage1.epochs, stage1.batch_size, stage1.lr, stage1.weight_decay) == (
        "resnet50_vd", 360, 1024, 0.4, 7e-5)
    assert (stage1.distill, stage1.label_smoothing, stage1.teacher_bn, stage1.schedule) == ("ssld", 0.0, "train", "cosine")
    assert stage1.warmup_epochs > 0 and "ssld.md" in stage1.source
    assert (stage2.epochs, stage2.lr, stage2.batch_size) == (60, 0.004, 1024)


def test_bench_times_a_distillation_step(tmp_path, capsys):
    teacher = tmp_path / "t.safetensors"
    resnets.save_model(resnets.create_model("resnet18", width_multiplier=0.125), teacher)
    code = main(["bench", "resnet18", "--train", "--teacher", str(teacher), "--distill", "ssld", "--batch-size", "2",
                 "--img-size", "32", "--mode", "eager", "--warmup", "1", "--reps", "1", "--json"])
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["mode"] for r in records if r["mode"].startswith("train")] == ["train", "train+ssld"]
    assert all(r["error"] is None and r["throughput_img_s"] > 0 for r in records)


@pytest.mark.parametrize("args, message", [
    (["--distill", "kd"], "--distill kd needs a teacher"),
    (["--teacher", "{teacher}"], "--teacher needs a distillation mode"),
    (["--teacher", "{missing}", "--distill", "kd"], "file not found"),
    (["--teacher", "{garbage}", "--distill", "kd"], "--teacher"),
    (["--teacher", "{wrong_classes}", "--distill", "kd"], "predicts 7 classes, the student 4"),
    (["--teacher", "{teacher}", "--distill", "ssld", "--unlabeled", "{empty}"], "no images"),
    (["--teacher", "{teacher}", "--distill", "ssld", "--unlabeled", "{missing}"], "folder not found"),
    (["--teacher", "{teacher}", "--distill", "ssld", "--temperature", "2"], "--temperature apply to kd"),
    (["--teacher", "{teacher}", "--distill", "kd", "--distill-alpha", "1.5"], "--distill-alpha must be in"),
    (["--unlabeled", "{flat}"], "--unlabeled apply to distillation"),
    (["--teacher", "{teacher}", "--distill", "kd", "--unlabeled-ratio", "0.5"], "add --unlabeled DIR"),
    (["--recipe", "paddle-ssld"], "recipe paddle-ssld distils from a teacher"),
    (["--teacher", "{timm_like}", "--distill", "kd"], "--teacher-model NAME"),
])
def test_bad_input_one_line(args, message, folders, teacher_file, tmp_path, capsys):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not weights")
    wrong = tmp_path / "wrong.safetensors"
    resnets.save_model(resnets.create_model("resnet18", num_classes=7, width_multiplier=0.125), wrong)
    timm_like = tmp_path / "plain.pth"
    torch.save(resnets.create_model("resnet18", num_classes=4, width_multiplier=0.125).state_dict(), timm_like)
    values = {"teacher": teacher_file, "missing": tmp_path / "missing", "garbage": garbage, "wrong_classes": wrong,
              "empty": folders / "empty", "flat": folders / "flat", "timm_like": timm_like}
    filled = [a.format(**{k: str(v) for k, v in values.items()}) for a in args]
    code = main(["train", "--data", str(folders / "data"), "--out", str(tmp_path / "x"), *TINY, *filled])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x" / "run.json").exists()


def test_kd_step_matches_timm_logit_distillation_task(tmp_path):
    """Parity with timm's own KD (timm.task.distillation, random weights): the same student, a teacher with
    another normalisation, the same batch: the same loss and the same gradient at the input."""
    timm = pytest.importorskip("timm")
    timm_distillation = pytest.importorskip("timm.task.distillation")
    torch.manual_seed(0)
    their_student, their_teacher = timm.create_model("resnet10t", num_classes=5), timm.create_model("resnet10t",
                                                                                                  num_classes=5)
    their_teacher.pretrained_cfg = {**their_teacher.pretrained_cfg, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    task = timm_distillation.LogitDistillationTask(their_student, their_teacher, criterion=torch.nn.CrossEntropyLoss(),
                                                   task_loss_weight=0.3, temperature=2.0, device=torch.device("cpu"),
                                                   verbose=False)
    task.train()
    paths = []
    for name, model in (("student", their_student), ("teacher", their_teacher)):
        paths.append(tmp_path / f"{name}.pth")
        torch.save(model.state_dict(), paths[-1])
    student = resnets.create_model("resnet10t", weights=paths[0], source="timm").train()
    teacher = Teacher(resnets.create_model("resnet10t", weights=paths[1], source="timm", mean=(0.5, 0.5, 0.5),
                                           std=(0.5, 0.5, 0.5), input_size=32),
                      student_mean=student.config.mean, student_std=student.config.std, student_size=32)
    assert teacher.converts and teacher.size is None  # timm's teacher converts normalisation, never resolution
    images, targets = torch.randn(6, 3, 32, 32), torch.randint(0, 5, (6,))
    theirs_in, ours_in = images.clone().requires_grad_(), images.clone().requires_grad_()
    theirs = task(theirs_in, targets)["loss"]
    distillation = Distillation(teacher, "kd", task_loss=CrossEntropy(reduction="none"), alpha=0.7, temperature=2.0)
    ours = distillation.loss(student(ours_in), teacher(ours_in), targets, torch.ones(6, dtype=torch.bool))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    theirs.backward()
    ours.backward()
    torch.testing.assert_close(ours_in.grad, theirs_in.grad, rtol=1e-4, atol=1e-7)


def test_unlabelled_stream_through_the_decoded_cache_and_device_augmentation(folders, teacher_file, tmp_path):
    out = tmp_path / "cached"
    code = main(["train", "--data", str(folders / "data"), "--out", str(out), "--epochs", "1", *TINY,
                 "--cache", "ram", "--augment-on", "device", "--teacher", str(teacher_file), "--distill", "ssld",
                 "--unlabeled", str(folders / "nested")])
    assert code == 0
    record = json.loads((out / "run.json").read_text())
    assert record["input_pipeline"]["augment_on"] == "device"
    assert record["input_pipeline"]["cache"]["train"]["mode"] == "ram"
    # 48 labelled + 16 unlabelled = 64 images: 4 full steps of 16, every unlabelled image used once
    assert _summary(out)["distill"]["unlabeled_seen"] == 16
