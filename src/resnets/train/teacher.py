"""The frozen teacher of a distillation run and the loss that joins it to the student.

The teacher is loaded from any weight file `resnets` reads (ours carry their config; timm and torchvision
files need `--teacher-model NAME`), frozen (no gradients, never in the optimiser, never in a checkpoint:
it is not part of the student module) and run in eval mode, or with batch-statistics BatchNorm that leaves
its running statistics untouched (`teacher_bn: train`, PaddleClas' SSLD choice). It sees the student's
batch after Mixup/CutMix, under the same autocast, on the same device. When it expects another
normalisation or resolution, the batch is converted to its own: the student-normalised batch is mapped
affinely to the teacher's mean/std (as timm's DistillationTeacher does) and resized to the teacher's
training size.

Unlabelled samples (label UNLABELED) get only the distillation term. With kd the objective is weighted per
sample: mean over the batch of ``(1 - alpha) * task_i * labelled_i + alpha * T^2 * KL_i``, so a batch of
labelled images gives exactly Hinton's ``(1 - alpha) * task + alpha * T^2 * KL`` and an unlabelled image
adds its KL term without diluting anyone's label loss more than its own presence in the batch does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..distill import kd_loss, ssld_loss
from ..errors import ResnetsError
from ..models.config import ResNetConfig
from ..models.resnet import ResNet
from ..weights.factory import create_model, load_model
from ..weights.io import read_state_dict
from .spec import file_sha256


class Teacher(nn.Module):
    """A frozen model that takes the student's normalised batch and returns logits (no gradients)."""

    def __init__(self, model: ResNet, *, student_mean: tuple[float, ...], student_std: tuple[float, ...],
                 student_size: int, bn: str = "eval"):
        super().__init__()
        if bn not in ("eval", "train"):
            raise ResnetsError(f"teacher BatchNorm mode must be eval or train, got {bn!r}")
        self.model = model
        self.bn = bn
        for p in model.parameters():
            p.requires_grad_(False)
        config = model.config
        t_mean, t_std = tuple(config.mean), tuple(config.std)
        s_mean, s_std = tuple(student_mean), tuple(student_std)
        self.converts = (t_mean, t_std) != (s_mean, s_std)
        # x_t = (x_s * s_std + s_mean - t_mean) / t_std = x_s * scale + shift, per channel
        scale = torch.tensor([s / t for s, t in zip(s_std, t_std, strict=True)]).view(1, -1, 1, 1)
        shift = torch.tensor([(sm - tm) / t for sm, tm, t in zip(s_mean, t_mean, t_std, strict=True)]).view(1, -1, 1, 1)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)
        self.size = int(config.input_size) if int(config.input_size) != int(student_size) else None
        self.interpolation = config.interpolation
        self.train(False)

    def train(self, mode: bool = True) -> Teacher:
        """Always eval mode, except BatchNorm under bn='train': batch statistics without tracking, so the
        running statistics and counters (the teacher's own state) never change."""
        super().train(False)
        if self.bn == "train":
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.train(True)
                    module.track_running_stats = False
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """The student's normalised batch in the teacher's normalisation and resolution."""
        x = images
        if self.converts:
            x = x * self.scale.to(x.dtype) + self.shift.to(x.dtype)
        if self.size is not None:
            mode = self.interpolation if self.interpolation in ("bilinear", "bicubic") else "nearest"
            extra = {"align_corners": False, "antialias": self.size < x.shape[-1]} if mode != "nearest" else {}
            x = F.interpolate(x, size=(self.size, self.size), mode=mode, **extra)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(self.preprocess(images.detach()))

    def preprocessing(self) -> dict[str, Any]:
        """What the teacher's input is, for the run record."""
        config = self.model.config
        return {"mean": list(config.mean), "std": list(config.std), "converted_from_student": self.converts,
                "img_size": self.size, "resized": self.size is not None,
                "interpolation": self.interpolation if self.size is not None else None, "bn": self.bn}


@dataclass
class TeacherFile:
    """A teacher weight file, read and checked: the model, its sha256 and how it was built."""

    model: ResNet
    path: str
    sha256: str
    model_name: str


def read_teacher(path: str, model_name: str | None, *, num_classes: int,
                 classes: list[str] | None = None) -> TeacherFile:
    """Load the teacher and check it predicts the student's `num_classes` (and, when both sides name them,
    the same `classes` in the same order); one line for every way it cannot."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ResnetsError(f"--teacher {path}: " + ("is a directory, not a weight file" if file.is_dir()
                                                    else "file not found"))
    try:
        _, metadata = read_state_dict(file)
        if "config" in metadata:
            model = load_model(file)
            recorded = model.config.name
            if model_name is not None and recorded and model_name != recorded:
                raise ResnetsError(f"--teacher {path} holds a {recorded}, not the --teacher-model {model_name}")
            name = recorded or model_name or "resnet"
        elif model_name is None:
            raise ResnetsError(f"--teacher {path} carries no model config (not written by resnets): name its "
                               "architecture with --teacher-model NAME")
        else:
            model = create_model(model_name, weights=file)
            name = model_name
    except ResnetsError as exc:
        message = str(exc)
        raise ResnetsError(message if message.startswith("--teacher") else f"--teacher {path}: {message}") from None
    count = model.config.num_classes
    if count != num_classes:
        raise ResnetsError(f"--teacher {path} ({name}) predicts {count} classes, the student {num_classes}: "
                           "a teacher must predict the student's classes (--reset-head does not "
                           "apply to a teacher)")
    names = getattr(model, "class_names", None)
    if names and classes and list(names) != list(classes):
        raise ResnetsError(f"--teacher {path} ({name}) was trained on other classes than the student's data "
                           f"(its first: {', '.join(names[:3])}; the data's: {', '.join(classes[:3])})")
    return TeacherFile(model=model, path=str(path), sha256=file_sha256(file), model_name=name)


def build_teacher(path: str, model_name: str | None, *, classes: list[str], student: ResNetConfig,
                  student_size: int, bn: str, device: torch.device, channels_last: bool = False,
                  recorded: dict[str, Any] | None = None) -> tuple[Teacher, dict[str, Any]]:
    """The teacher on `device` and its run-record entry. `recorded`: the entry of the run being resumed,
    whose sha256 the file must still have."""
    if recorded is not None and not Path(path).expanduser().is_file():
        raise ResnetsError(f"cannot resume: the teacher {path} is gone")
    loaded = read_teacher(path, model_name, num_classes=len(classes), classes=classes)
    if recorded is not None and loaded.sha256 != recorded.get("sha256"):
        raise ResnetsError(f"cannot resume: the teacher {path} changed since the run started (sha256 "
                           f"{loaded.sha256[:12]}..., recorded {str(recorded.get('sha256'))[:12]}...)")
    teacher = Teacher(loaded.model, student_mean=student.mean, student_std=student.std, student_size=student_size,
                      bn=bn).to(device)
    if channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    record = {"path": loaded.path, "sha256": loaded.sha256, "model": loaded.model_name,
              "num_classes": loaded.model.config.num_classes,
              "params": sum(p.numel() for p in loaded.model.parameters()),
              "preprocessing": teacher.preprocessing()}
    return teacher, record


class Distillation:
    """The distillation objective of a run: teacher logits for the (mixed) batch and the loss of the
    student against them and the labels."""

    def __init__(self, teacher: nn.Module, mode: str, *, task_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 alpha: float = 0.5, temperature: float = 1.0):
        if mode not in ("kd", "ssld"):
            raise ResnetsError(f"distillation mode must be kd or ssld, got {mode!r}")
        self.teacher, self.mode, self.task_loss = teacher, mode, task_loss
        self.alpha, self.temperature = float(alpha), float(temperature)

    def loss(self, student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor,
             labeled: torch.Tensor) -> torch.Tensor:
        """Batch-mean loss. `targets` as the task loss takes them (indices or mixed soft targets);
        `labeled`: bool (N,), False for unlabelled samples (their targets are placeholders)."""
        if self.mode == "ssld":
            return ssld_loss(student, teacher)
        distill = kd_loss(student, teacher, self.temperature, reduction="none")
        if self.alpha == 1.0:
            return distill.mean()
        task = self.task_loss(student, targets)
        if task.dim() > 1:  # per-class losses (BCE): the mean over classes, as the recipe's loss takes it
            task = task.mean(dim=-1)
        task = torch.where(labeled, task, torch.zeros_like(task))
        return ((1.0 - self.alpha) * task + self.alpha * distill).mean()
