"""`resnets bench --train`: the speed of the training step `resnets train` runs, on synthetic batches.

It times the engine's own `TrainStep` built from a recipe (its loss, optimiser, mixup/cutmix, clipping), so
the number is the step the training loop takes, minus data loading. `--dtype bfloat16/float16` trains
under autocast (mixed precision, fp32 weights), as a recipe with `amp: true` does.
"""

from __future__ import annotations

import copy
import sys

import torch

from ..data.mixup import Mixup
from ..errors import ResnetsError
from ..hardware import normalise_precision
from ..inference.bench import BenchRecord, BenchSettings, PeakMemory, progress_line, time_calls
from ..inference.bench import _error_text as error_text
from ..inference.bench import _fill_timing as fill_timing
from ..inference.bench import _peak_mb as peak_mb
from ..models.cost import count_cost
from ..models.resnet import ResNet
from .losses import build_loss
from .optim import build_optimizer
from .recipe import Recipe, load_recipe
from .step import TrainStep
from .teacher import Distillation, Teacher, TeacherFile

DEFAULT_RECIPE = "rsb-a3"
TRAIN_FLOPS_FACTOR = 6
"""2 FLOPs per MAC, times 3 for the forward and the two backward products (inputs and weights)."""


def build_bench_step(model: ResNet, recipe: Recipe, *, batch_size: int, amp_dtype: torch.dtype | None = None,
                     teacher: Teacher | None = None, distill: str = "kd") -> TrainStep:
    """A TrainStep for `model` with the recipe's loss, optimiser and batch mixing (no schedule, no EMA);
    with `teacher`, the distillation step `resnets train --teacher` takes (`distill`: kd or ssld)."""
    num_classes = max(1, model.config.num_classes)
    optimizer = build_optimizer(model, recipe, lr=recipe.lr)
    mixup = Mixup(num_classes, mixup_alpha=recipe.mixup_alpha, cutmix_alpha=recipe.cutmix_alpha,
                  prob=recipe.mixup_prob, switch_prob=recipe.mixup_switch_prob,
                  label_smoothing=recipe.label_smoothing, generator=torch.Generator().manual_seed(0))
    distillation = None
    if teacher is not None:
        distillation = Distillation(teacher, distill, task_loss=build_loss(recipe, reduction="none"),
                                    alpha=recipe.distill_alpha, temperature=recipe.temperature)
    return TrainStep(model, optimizer, build_loss(recipe), mixup=mixup, amp_dtype=amp_dtype,
                     grad_clip=recipe.grad_clip, nominal_batch=batch_size, distillation=distillation)


def bench_training(model: ResNet, name: str, settings: BenchSettings, *, recipe: str | Recipe = DEFAULT_RECIPE,
                   channels_last: bool = False, verbose: bool = True, teacher: TeacherFile | None = None,
                   distill: str = "kd", teacher_bn: str = "eval") -> list[BenchRecord]:
    """Training-step speed (mixup, forward, loss, backward, optimiser step) for every batch size; with
    `teacher`, the distillation step too (the teacher's forward included; mode "train+kd"/"train+ssld"),
    timed right after the plain step of the same batch size so the two see the same machine."""
    recipe = load_recipe(recipe) if isinstance(recipe, str) else recipe
    size = settings.img_size or model.config.input_size
    cost = count_cost(model, size)
    device = torch.device(settings.device)
    amp = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(settings.dtype)
    records = []
    frozen = None
    if teacher is not None:
        if teacher.model.config.num_classes != model.config.num_classes:
            raise ResnetsError(f"--teacher {teacher.path} predicts {teacher.model.config.num_classes} classes, "
                               f"the student {name} {model.config.num_classes}")
        frozen = Teacher(teacher.model, student_mean=model.config.mean, student_std=model.config.std,
                         student_size=size, bn=teacher_bn).to(device)
        if channels_last:
            frozen = frozen.to(memory_format=torch.channels_last)
    variants = [(None, "train")] + ([(frozen, f"train+{distill}")] if frozen is not None else [])
    for batch_size, (step_teacher, mode) in ((b, v) for b in settings.batch_sizes for v in variants):
        record = BenchRecord(name, mode, batch_size, size, cost.params, cost.macs, requested_mode=mode,
                             threads=torch.get_num_threads(), device=str(device), dtype=settings.dtype,
                             precision=normalise_precision(settings.dtype))
        try:
            net = copy.deepcopy(model).to(device).train()
            memory_format = torch.channels_last if channels_last else torch.contiguous_format
            net = net.to(memory_format=memory_format)
            step = build_bench_step(net, recipe, batch_size=batch_size, amp_dtype=amp, teacher=step_teacher,
                                    distill=distill)
            images = torch.randn(batch_size, model.config.in_chans, size, size, device=device)
            images = images.contiguous(memory_format=memory_format)
            labels = torch.randint(0, max(1, model.config.num_classes), (batch_size,), device=device)
            with PeakMemory(device) as memory:
                times = time_calls(lambda step=step, images=images, labels=labels: step.step(images, labels),
                                   warmup=settings.warmup, reps=settings.reps, device=device)
            fill_timing(record, times, TRAIN_FLOPS_FACTOR * cost.macs)
            record.peak_mem_mb = peak_mb(memory, model, torch.float32, device)
            del net, step
        except (Exception, MemoryError) as exc:
            record.error = error_text(exc)
        records.append(record)
        if verbose:
            print(progress_line(record), file=sys.stderr)
    return records
