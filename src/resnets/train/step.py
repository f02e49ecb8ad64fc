"""The training step: the one implementation behind `resnets train`, `resnets bench --train` and the benchmarks.

A step is `grad_accum` micro-batches (mixup/cutmix, forward under autocast, loss, backward) and one optimiser
update (gradient clipping, GradScaler for fp16, the lr schedule, the EMA). Nothing in it waits for the
device: the loss and a "something was not finite" flag accumulate in device tensors that the caller reads
every `--log-every` steps (`read_and_reset`).

Samples are weighted, not batches: a micro-batch's mean loss is multiplied by its share of the nominal batch
and, before the update, the gradient is rescaled by nominal / actual sample count. With full batches the
factor is exactly 1 and nothing changes; a batch that lost unreadable images counts for what it holds,
on every rank alike.

With a `Distillation` the frozen teacher runs on the same (mixed) batch inside the same autocast, and
samples labelled UNLABELED (-1, from `--unlabeled` folders) get only its term.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..data.mixup import Mixup
from .ema import ModelEma
from .schedule import WarmupSchedule

if TYPE_CHECKING:
    from .teacher import Distillation

MIN_BATCH_FOR_BATCHNORM = 2
"""Training-mode BatchNorm needs more than one value per channel: a (rank's) micro-batch needs 2 images."""


class TrainStep:
    """Forward/backward of micro-batches and the optimiser update, with device-side loss bookkeeping.

    `model` is the bare module (clipping, EMA); `train_model` what runs the forward (DDP and/or compiled
    wrapper around `model`, or `model` itself). `nominal_batch` is the images one micro-batch holds when
    nothing is missing (per rank).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, *,
                 train_model: nn.Module | None = None, schedule: WarmupSchedule | None = None,
                 mixup: Mixup | None = None, ema: ModelEma | None = None, amp_dtype: torch.dtype | None = None,
                 scaler: torch.amp.GradScaler | None = None, grad_clip: float | None = None,
                 grad_accum: int = 1, nominal_batch: int = 1, world_size: int = 1,
                 distillation: Distillation | None = None):
        self.model = model
        self.distillation = distillation
        self.train_model = train_model if train_model is not None else model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.schedule = schedule
        self.mixup = mixup if mixup is not None and mixup.active else None
        self.ema = ema
        self.amp_dtype = amp_dtype
        self.scaler = scaler
        self.grad_clip = grad_clip
        self.grad_accum = int(grad_accum)
        self.nominal_batch = int(nominal_batch)
        self.world_size = int(world_size)
        self.is_ddp = isinstance(self.train_model, nn.parallel.DistributedDataParallel) or isinstance(
            getattr(self.train_model, "_orig_mod", None), nn.parallel.DistributedDataParallel)
        device = next(model.parameters()).device
        self.device_type = device.type
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        """Sum over samples of the per-sample loss since the last read (this rank)."""
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        """Set when a loss was NaN/inf since the last read."""
        self.window_samples = 0
        """Images (all ranks) that entered the gradient of the step being accumulated."""
        self.steps = 0
        """Optimiser updates taken (the schedule's and the EMA's step counter)."""
        self.synced = False
        """Whether DDP all-reduced the gradients of the step being accumulated (on its closing micro-batch)."""

    def micro_batch(self, images: torch.Tensor, targets: torch.Tensor, *, last: bool,
                    global_count: int | None = None) -> None:
        """Forward and backward one micro-batch of normalised images (N, C, H, W) and int targets (N,).

        `last`: this micro-batch closes the accumulation (DDP all-reduces on it only). `global_count`: the
        images of this micro-batch on all ranks together (None: this rank's N times world size)."""
        count = images.shape[0]
        labeled = None
        if self.distillation is not None:  # unlabelled samples (-1) carry a placeholder label from here on
            labeled = targets >= 0
            targets = targets.clamp(min=0)
        if self.mixup is not None:
            images, targets = self.mixup(images, targets)
            if labeled is not None and self.mixup.last_lam < 1.0:
                labeled = labeled & labeled.flip(0)  # a mix holds a label only if both its images had one
        sync = nullcontext() if last or not self.is_ddp else self.train_model.no_sync()
        with sync:
            with torch.autocast(self.device_type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                logits = self.train_model(images)
                if self.distillation is None:
                    loss = self.loss_fn(logits.float(), targets)
                else:
                    teacher_logits = self.distillation.teacher(images)
                    loss = self.distillation.loss(logits.float(), teacher_logits.float(), targets, labeled)
            detached = loss.detach()
            self.loss_sum += detached.double() * count
            self.nonfinite |= ~torch.isfinite(detached)
            share = count / (self.nominal_batch * self.grad_accum)
            scaled = loss * share if share != 1.0 else loss
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        self.window_samples += global_count if global_count is not None else count * self.world_size
        self.synced = self.synced or (last and self.is_ddp)

    def all_reduce_gradients(self) -> None:
        """Average the gradients over ranks by hand: needed when the micro-batch that would have closed the
        accumulation (and triggered DDP's all-reduce) was skipped by every rank."""
        import torch.distributed as dist

        for p in self.model.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(self.world_size)
        self.synced = True

    def optimizer_step(self) -> None:
        """Apply the accumulated gradient (rescaled to the samples it holds) and advance schedule and EMA.

        A window in which every micro-batch was skipped holds no gradient: the weights stay as they are,
        but the step still counts, so the schedule and every step-based position stay where they belong."""
        nominal = self.nominal_batch * self.grad_accum * self.world_size
        if self.window_samples > 0:
            if self.window_samples != nominal:
                grads = [p.grad for p in self.model.parameters() if p.grad is not None]
                if grads:
                    torch._foreach_mul_(grads, nominal / self.window_samples)
            self._update()
        self.optimizer.zero_grad(set_to_none=True)
        self.window_samples = 0
        self.synced = False
        self.steps += 1
        if self.schedule is not None:
            self.schedule.step()
        if self.ema is not None:
            self.ema.update(self.model, self.steps)

    def _update(self) -> None:
        clip = self.grad_clip
        if self.scaler is not None:
            if clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            return
        if clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()

    def step(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        """One whole optimiser step on one batch (no accumulation): what the benchmarks time."""
        self.micro_batch(images, targets, last=True)
        self.optimizer_step()

    def read_and_reset(self) -> tuple[float, bool]:
        """(this rank's summed loss, whether any loss was non-finite) since the last read: a host sync."""
        values = torch.stack([self.loss_sum, self.nonfinite.double()]).cpu()
        self.loss_sum.zero_()
        self.nonfinite.zero_()
        return float(values[0]), bool(values[1])

    def state_dict(self) -> dict[str, object]:
        return {"steps": self.steps, "loss_sum": self.loss_sum.detach().cpu(),
                "nonfinite": self.nonfinite.detach().cpu()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.steps = int(state["steps"])  # type: ignore[arg-type]
        self.loss_sum.copy_(state["loss_sum"])  # type: ignore[arg-type]
        self.nonfinite.copy_(state["nonfinite"])  # type: ignore[arg-type]
