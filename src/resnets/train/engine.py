"""The training loop: recipe-driven, AMP, EMA, DDP via torchrun, progress, metrics, exact resume.

Exactness on resume rests on three things: every augmentation is seeded per sample by the sampler
(so worker count and batch layout do not matter), the samplers can start mid-epoch, and the state
file captures every random stream the main process draws from (drop path, dropout, mixup, erasing).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..data.build import build_dataset
from ..data.loader import BatchPreprocessor, build_loader
from ..data.mixup import Mixup
from ..data.samplers import RepeatAugSampler, ShuffleSampler
from ..data.transforms import TrainAugConfig, build_eval_transform, build_train_transform
from ..errors import ResnetsError
from ..evaluate import run_accuracy
from ..host_memory import host_memory_policy, retain_freed_memory
from ..weights.factory import create_model
from .checkpoint import (
    BEST_WEIGHTS,
    LAST_WEIGHTS,
    load_training_state,
    rng_state,
    save_run_weights,
    save_training_state,
    set_rng_state,
)
from .distributed import DistContext
from .ema import build_ema
from .losses import build_loss
from .optim import build_optimizer
from .recipe import Recipe, load_recipe
from .run_dir import library_versions, write_json, write_metrics, write_text
from .schedule import build_schedule

KILL_ENV = "RESNETS_KILL_AT_STEP"
"""Test hook: SIGKILL this process right after that optimiser step."""
RUNTIME_OPTIONS = ("progress", "workers", "device", "log_to_stderr", "retain_memory")
"""Options a resumed run may change: they do not alter the result."""


class TrainingDiverged(ResnetsError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainOptions:
    """Everything `resnets train` takes besides the recipe's own hyper-parameters."""

    data: str | None = None
    """Data set spec; None: the recipe's own (the demo recipe uses the built-in `digits`)."""
    recipe: str = "demo"
    model: str | None = None
    out: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    """Global batch (all ranks together); the recipe's lr is scaled to it by the recipe's rule."""
    img_size: int | None = None
    lr: float | None = None
    """An explicit lr at the actual batch size: no scaling is applied."""
    seed: int | None = None
    """None: the recipe's seed."""
    sets: list[str] = field(default_factory=list)
    """`key=value` recipe overrides; `model.key=value` changes the model config."""
    workers: int | None = None
    """Data-loading processes; None: 0 for the in-memory `digits` set, else min(4, CPU count)."""
    device: str = "auto"
    weights: str | None = None
    reset_head: bool = False
    strict: bool = False
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    save_every: int = 0
    """Also checkpoint every N optimiser steps inside an epoch (0: only at epoch ends)."""
    deterministic: bool = False
    progress: bool = True
    log_to_stderr: bool = False
    """Send progress lines to stderr (keeps stdout clean for `--json`)."""
    retain_memory: bool = True
    """Reuse freed host memory instead of handing it back to the kernel every step (see resnets.host_memory):
    ~1.2x faster CPU steps for a process that keeps its peak footprint. Off: the C library's default."""


def resolve_recipe(options: TrainOptions) -> Recipe:
    """The recipe as this run uses it: per-model size rules, then --set, --epochs, --img-size, --model."""
    base = load_recipe(options.recipe)
    recipe_sets = [s for s in options.sets if not s.split("=", 1)[0].strip().startswith("model.")]
    model_name = options.model or (base.with_sets(recipe_sets).model if recipe_sets else base.model)
    recipe = base.for_model(model_name)
    if recipe_sets:
        recipe = recipe.with_sets(recipe_sets)
    recipe = recipe.with_overrides(model=model_name)
    if options.epochs is not None:
        recipe = recipe.with_epochs(options.epochs)  # step milestones keep their fraction of training
    if options.img_size is not None:
        recipe = recipe.with_overrides(img_size=options.img_size)
    return recipe


def check_options(options: TrainOptions) -> None:
    """Reject values no run can use, before any work starts."""
    for name, minimum in (("epochs", 1), ("batch_size", 1), ("img_size", 32), ("workers", 0), ("save_every", 0)):
        value = getattr(options, name)
        if value is not None and value < minimum:
            raise ResnetsError(f"--{name.replace('_', '-')} must be at least {minimum}, got {value}")
    if options.lr is not None and not options.lr > 0:
        raise ResnetsError(f"--lr must be positive, got {options.lr}")


def model_overrides(options: TrainOptions) -> dict[str, Any]:
    """`--set model.key=value` pairs, parsed with YAML rules (numbers, booleans, lists)."""
    import yaml

    overrides: dict[str, Any] = {}
    for assignment in options.sets:
        key, sep, value = assignment.partition("=")
        key = key.strip()
        if not key.startswith("model."):
            continue
        if not sep:
            raise ResnetsError(f"--set {assignment!r}: expected key=value")
        try:
            overrides[key[len("model."):]] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ResnetsError(f"--set {assignment!r}: cannot parse the value ({exc})") from None
    return overrides


def _amp_dtype(recipe: Recipe, device: torch.device, say) -> torch.dtype | None:
    """The autocast dtype, or None for fp32; CPUs without native bf16 fall back to fp32 (bf16 is ~15x slower there)."""
    if not recipe.amp:
        return None
    wanted = torch.float16 if recipe.amp_dtype == "float16" else torch.bfloat16
    if device.type == "cuda":
        if wanted == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            say("notice: this GPU has no bf16; AMP uses float16 with a gradient scaler")
            return torch.float16
        return wanted
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        if wanted == torch.float16:
            say("notice: float16 AMP needs a GPU; using bfloat16 on this CPU")
        return torch.bfloat16
    say("notice: this CPU has no native bf16, so the recipe's AMP falls back to fp32 (bf16 would be far slower)")
    return None


def _default_run_dir(model_name: str, recipe_name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model_name}-{recipe_name}-{stamp}"


class Trainer:
    """One training run. `Trainer(options).run()` returns the summary dict (also written to summary.json)."""

    def __init__(self, options: TrainOptions, *, resume_dir: str | Path | None = None) -> None:
        self.ctx = DistContext.from_env(options.device)
        self.resume_state: dict[str, Any] | None = None
        if resume_dir is not None:
            run_dir = Path(resume_dir)
            self.resume_state = load_training_state(run_dir)
            runtime = {k: getattr(options, k) for k in RUNTIME_OPTIONS}
            try:
                options = TrainOptions(**{**self.resume_state["options"], **runtime})
            except TypeError as exc:
                raise ResnetsError(f"cannot resume {run_dir}: its state file is from an incompatible version "
                                   f"({exc})") from None
            options.out = str(run_dir)
        check_options(options)
        self.options = options
        if options.retain_memory:
            retain_freed_memory()
        self.recipe = recipe = resolve_recipe(options)
        model_name = recipe.model
        if options.data is None:
            if not recipe.data:
                raise ResnetsError(f"recipe {recipe.name} names no data set: pass --data DIR")
            options.data = recipe.data
        if options.seed is None:
            options.seed = recipe.seed
        if options.sync_bn and self.ctx.device.type != "cuda":
            raise ResnetsError("--sync-bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on the CPU)")
        self.say(f"resnets train: recipe {options.recipe}, data {options.data}"
                 + (f" (resuming {options.out})" if resume_dir is not None else ""))

        if options.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(options.seed)  # same initial weights on every rank; per-rank streams seeded below

        # Data. uint8 all the way to the device; normalisation, erasing and mixing happen on the batch.
        aug = TrainAugConfig(img_size=recipe.img_size, scale=tuple(recipe.rrc_scale), ratio=tuple(recipe.rrc_ratio),
                             interpolation=recipe.interpolation, hflip=recipe.hflip,
                             auto_augment=recipe.auto_augment)
        self.train_set = build_dataset(options.data, "train", build_train_transform(aug), strict=options.strict)
        self.classes = list(self.train_set.classes)
        self.eval_size = recipe.resolved_eval_img_size
        self.val_set = build_dataset(options.data, "val",
                                     build_eval_transform(self.eval_size, recipe.eval_crop_pct,
                                                          recipe.resolved_eval_interpolation),
                                     strict=options.strict)
        if list(self.val_set.classes) != self.classes:
            raise ResnetsError(f"train and val classes differ: train has {len(self.classes)} "
                               f"({', '.join(self.classes[:5])}...), val has {len(self.val_set.classes)}")

        world = self.ctx.world_size
        self.global_batch = options.batch_size if options.batch_size is not None else recipe.batch_size
        if self.global_batch % (world * recipe.grad_accum):
            raise ResnetsError(f"batch size {self.global_batch} must divide evenly over {world} process(es) x "
                               f"{recipe.grad_accum} accumulation step(s)")
        self.rank_batch = self.global_batch // (world * recipe.grad_accum)
        if len(self.train_set) < self.rank_batch * world:
            raise ResnetsError(f"the training set has {len(self.train_set)} images, fewer than one batch "
                               f"({self.rank_batch * world}); lower --batch-size")
        sampler_args = dict(seed=options.seed, num_replicas=world, rank=self.ctx.rank)
        if recipe.aug_repeats > 1:
            self.sampler = RepeatAugSampler(len(self.train_set), num_repeats=recipe.aug_repeats, **sampler_args)
        else:
            self.sampler = ShuffleSampler(len(self.train_set), shuffle=True, drop_last=True, **sampler_args)
        pin = self.ctx.device.type == "cuda"
        if options.workers is None:
            options.workers = 0 if options.data == "digits" else min(4, os.cpu_count() or 1)
        self.train_loader = build_loader(self.train_set, batch_size=self.rank_batch, sampler=self.sampler,
                                         num_workers=options.workers, pin_memory=pin, drop_last=True,
                                         persistent_workers=options.workers > 0)
        val_indices = list(range(self.ctx.rank, len(self.val_set), world))
        self.val_loader = build_loader(self.val_set, batch_size=max(self.rank_batch, 32), sampler=val_indices,
                                       num_workers=options.workers, pin_memory=pin)
        self.steps_per_epoch = len(self.sampler) // self.rank_batch // recipe.grad_accum
        if self.steps_per_epoch < 1:
            raise ResnetsError("an epoch has no complete optimiser step: lower --batch-size or grad_accum")
        self.batches_per_epoch = self.steps_per_epoch * recipe.grad_accum  # no trailing half-accumulated batches

        # Model, optimiser, schedule.
        overrides = {"drop_rate": recipe.drop_rate, "drop_path_rate": recipe.drop_path_rate,
                     **recipe.model_overrides, **model_overrides(options)}
        if recipe.bn_momentum is not None:
            overrides.setdefault("bn_momentum", recipe.bn_momentum)
        self.model = create_model(model_name, num_classes=len(self.classes), weights=options.weights,
                                  reset_head=options.reset_head, **overrides).to(self.ctx.device)
        torch.manual_seed(options.seed + self.ctx.rank)  # per-rank drop path / dropout streams
        if self.ctx.enabled and options.sync_bn:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model_name = model_name
        # What the weights expect at inference: this run's resolution and crop, stored in every checkpoint.
        self.save_config = self.model.config.replace(
            input_size=recipe.img_size, test_input_size=self.eval_size, crop_pct=recipe.eval_crop_pct,
            interpolation=recipe.resolved_eval_interpolation)
        if options.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.recipe_lr_explicit():
            self.lr = float(options.lr)
            lr_note = f"lr {self.lr:g} (given, not scaled)"
        else:
            self.lr = recipe.scaled_lr(self.global_batch)
            lr_note = (f"lr {recipe.lr:g} @ batch {recipe.batch_size} -> {self.lr:.4g} @ batch {self.global_batch} "
                       f"({recipe.lr_scaling} scaling)")
        self.say(f"model {model_name} ({sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M params), "
                 f"{len(self.classes)} classes, {len(self.train_set)} train / {len(self.val_set)} val images, "
                 f"{self.steps_per_epoch} steps/epoch, {lr_note}")
        self.optimizer = build_optimizer(self.model, recipe, lr=self.lr)
        self.schedule = build_schedule(self.optimizer, recipe, lr=self.lr, steps_per_epoch=self.steps_per_epoch,
                                       epochs=recipe.epochs)
        self.loss_fn = build_loss(recipe)
        self.ema = build_ema(self.model, recipe, self.steps_per_epoch, global_batch=self.global_batch)
        self.amp_dtype = _amp_dtype(recipe, self.ctx.device, self.say)
        self.scaler = (torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16
                       and self.ctx.device.type == "cuda" else None)

        self.train_model: nn.Module = self.model
        if self.ctx.enabled:
            device_ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        if options.compile:
            self.train_model = torch.compile(self.train_model)

        self.mix_generator = torch.Generator().manual_seed(options.seed * 1000 + 17 + self.ctx.rank)
        self.erase_generator = torch.Generator().manual_seed(options.seed * 1000 + 29 + self.ctx.rank)
        self.mixup = Mixup(len(self.classes), mixup_alpha=recipe.mixup_alpha, cutmix_alpha=recipe.cutmix_alpha,
                           prob=recipe.mixup_prob, switch_prob=recipe.mixup_switch_prob,
                           label_smoothing=recipe.label_smoothing, generator=self.mix_generator)
        self.prepare = BatchPreprocessor(self.model.config.mean, self.model.config.std, device=self.ctx.device,
                                         channels_last=options.channels_last, re_prob=recipe.re_prob,
                                         re_mode=recipe.re_mode, generator=self.erase_generator)
        self.eval_prepare = BatchPreprocessor(self.model.config.mean, self.model.config.std, device=self.ctx.device,
                                              channels_last=options.channels_last)

        # Progress counters (restored on resume).
        self.epoch = 0
        self.batch_in_epoch = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best_top1 = -1.0
        self.best_epoch = -1
        self.wall_s = 0.0
        self.train_images = 0
        self.train_time = 0.0
        self.skipped: set[str] = set()
        self.partial = {"loss_sum": 0.0, "loss_count": 0, "images": 0, "time": 0.0}
        """Running sums of the current epoch, checkpointed so a mid-epoch resume reports the same loss."""
        self.run_dir = Path(options.out) if options.out else _default_run_dir(model_name, options.recipe)
        if self.resume_state is not None:
            self._restore(self.resume_state)
        self.run_dir = Path(self.ctx.broadcast_object(str(self.run_dir)))

    # -- helpers ---------------------------------------------------------------------------------------
    def recipe_lr_explicit(self) -> bool:
        return self.options.lr is not None

    def say(self, message: str) -> None:
        if self.ctx.is_main:
            print(message, flush=True, file=sys.stderr if self.options.log_to_stderr else sys.stdout)

    def _unwrapped_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    # -- checkpoints -----------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        rngs = self.ctx.gather_objects(rng_state())
        generators = self.ctx.gather_objects([self.mix_generator.get_state(), self.erase_generator.get_state()])
        return {
            "format": "resnets-train-state", "version": 1,
            "options": asdict(self.options), "recipe": self.recipe.to_dict(),
            "model": self._unwrapped_state(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": rngs, "generators": generators,
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
            "history": self.history, "best_top1": self.best_top1, "best_epoch": self.best_epoch,
            "wall_s": self.wall_s, "train_images": self.train_images, "train_time": self.train_time,
            "skipped": sorted(self.skipped), "partial": self.ctx.gather_objects(self.partial),
            "world_size": self.ctx.world_size, "classes": self.classes,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("world_size", 1) != self.ctx.world_size:
            raise ResnetsError(f"cannot resume: the run used {state['world_size']} process(es), this one has "
                               f"{self.ctx.world_size}")
        if state.get("classes") != self.classes:
            raise ResnetsError("cannot resume: the data set's classes differ from the run's")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][self.ctx.rank])
        mix_state, erase_state = state["generators"][self.ctx.rank]
        self.mix_generator.set_state(mix_state)
        self.erase_generator.set_state(erase_state)
        for key in ("epoch", "batch_in_epoch", "step", "history", "best_top1", "best_epoch", "wall_s",
                    "train_images", "train_time", "skipped"):
            setattr(self, key, state[key])
        self.skipped = set(self.skipped)
        self.partial = dict(state["partial"][self.ctx.rank])

    def _save(self, *, epoch_end: bool) -> None:
        """Write last.* (and the run's files); every rank joins the collectives, only rank 0 writes.

        Weights that overflowed are never written: the previous checkpoint stays the last good one."""
        self._check_weights_finite()
        state = self._state()

        def write() -> None:
            meta = {"epoch": self.epoch, "step": self.step, "recipe": self.recipe.name}
            save_run_weights(self.run_dir, LAST_WEIGHTS, state["model"], config=self.save_config,
                             class_names=self.classes, extra=meta)
            save_training_state(self.run_dir, state)
            if epoch_end:
                write_metrics(self.run_dir, self.history)

        self._write_on_main(write)

    def _write_on_main(self, write) -> None:
        """Rank 0 writes; a failure (disk full) becomes the same one-line error on every rank, not a hang."""
        error = None
        if self.ctx.is_main:
            try:
                write()
            except OSError as exc:
                error = (f"could not write a checkpoint in {self.run_dir}: {exc.strerror or exc}; the previous "
                         "checkpoint is intact")
        error = self.ctx.broadcast_object(error)
        if error:
            raise ResnetsError(error)

    def _check_weights_finite(self) -> None:
        finite = all(bool(torch.isfinite(t).all()) for t in self.model.state_dict().values() if t.is_floating_point())
        if self.ctx.sum([float(finite)])[0] != self.ctx.world_size:
            self._diverged(None)

    def _write_run_description(self) -> None:
        if not self.ctx.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.run_dir / "run.json", {
            "model": self.model_name, "recipe": self.recipe.name, "data": self.options.data,
            "seed": self.options.seed, "world_size": self.ctx.world_size, "global_batch": self.global_batch,
            "batch_per_process": self.rank_batch, "grad_accum": self.recipe.grad_accum, "lr": self.lr,
            "lr_rule": "given" if self.recipe_lr_explicit() else self.recipe.lr_scaling,
            "amp_dtype": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "float32",
            "device": str(self.ctx.device), "host_memory": host_memory_policy(), "options": asdict(self.options),
            "model_config": self.model.config.to_dict(), "classes": self.classes, "versions": library_versions(),
        })
        write_text(self.run_dir / "recipe.yaml", self.recipe.to_yaml())

    # -- the loop --------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self._write_run_description()
        self.say(f"run directory: {self.run_dir}")
        start_wall = time.perf_counter() - self.wall_s
        kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
        try:
            while self.epoch < self.recipe.epochs:
                self._train_epoch(kill_at, start_wall)
                self._end_epoch(start_wall)
            summary = self._summary(time.perf_counter() - start_wall)
        finally:
            self.ctx.close()
        return summary

    def _train_epoch(self, kill_at: int, start_wall: float) -> None:
        recipe = self.recipe
        self.sampler.set_epoch(self.epoch)
        self.sampler.set_start(self.batch_in_epoch * self.rank_batch)
        self.train_model.train()
        # Creating a DataLoader iterator draws from the global RNG; keep that out of the training streams.
        saved_rng = torch.get_rng_state()
        batches = iter(self.train_loader)
        torch.set_rng_state(saved_rng)
        remaining = self.batches_per_epoch - self.batch_in_epoch
        bar = tqdm(total=self.batches_per_epoch, initial=self.batch_in_epoch, disable=not (
            self.options.progress and self.ctx.is_main), desc=f"epoch {self.epoch + 1}/{recipe.epochs}",
            unit="batch", dynamic_ncols=True, leave=False)
        if self.batch_in_epoch == 0:
            self.partial = {"loss_sum": 0.0, "loss_count": 0, "images": 0, "time": 0.0}
        part = self.partial
        epoch_start = time.perf_counter() - part["time"]
        self.optimizer.zero_grad(set_to_none=True)
        previous = None
        for _ in range(remaining):
            batch = next(batches)
            self.skipped.update(batch.skipped)
            last_micro = (self.batch_in_epoch + 1) % recipe.grad_accum == 0
            weight = 1.0
            if len(batch.targets) == 0:  # every image of the batch was unreadable
                if not self.ctx.enabled or previous is None:
                    self.batch_in_epoch += 1
                    if last_micro:
                        self._optimizer_step()
                    bar.update(1)
                    continue
                batch, weight = previous, 0.0  # keep DDP's collectives in step: replay with zero weight
            previous = batch
            images = self.prepare(batch.images)
            targets = batch.targets.to(self.ctx.device, non_blocking=True)
            images, soft_targets = self.mixup(images, targets)
            # Under DDP, gradients are all-reduced only on the micro-batch that closes an accumulation.
            with self.train_model.no_sync() if self.ctx.enabled and not last_micro else nullcontext():
                with torch.autocast(self.ctx.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.amp_dtype is not None):
                    logits = self.train_model(images)
                    loss = self.loss_fn(logits.float(), soft_targets)
                loss_value = loss.detach()
                if not self._all_finite(loss_value):
                    self._diverged(loss_value)
                scaled = loss * (weight / recipe.grad_accum)
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            self.batch_in_epoch += 1
            part["loss_sum"] += float(loss_value) * weight
            part["loss_count"] += int(weight > 0)
            part["images"] += len(batch.targets) if weight else 0
            part["time"] = time.perf_counter() - epoch_start
            if last_micro:
                self._optimizer_step()
                if self.options.save_every and self.step % self.options.save_every == 0 \
                        and self.batch_in_epoch < self.batches_per_epoch:
                    self.wall_s = time.perf_counter() - start_wall
                    self._save(epoch_end=False)
                if kill_at and self.step == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            elapsed = time.perf_counter() - epoch_start
            bar.set_postfix(loss=f"{loss_value.item():.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.3g}",
                            img_s=f"{part['images'] * self.ctx.world_size / max(elapsed, 1e-9):.1f}")
            bar.update(1)
        bar.close()
        elapsed = time.perf_counter() - epoch_start
        totals = self.ctx.sum([part["loss_sum"], float(part["loss_count"]), float(part["images"])])
        self._epoch_loss = totals[0] / max(totals[1], 1)
        self._epoch_images = totals[2]
        self._epoch_time = elapsed
        self.train_images += int(totals[2])
        self.train_time += elapsed

    def _optimizer_step(self) -> None:
        clip = self.recipe.grad_clip
        if self.scaler is not None:
            if clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            if clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model, self.step)

    def _all_finite(self, loss: torch.Tensor) -> bool:
        finite = float(torch.isfinite(loss).all())
        return self.ctx.sum([finite])[0] == self.ctx.world_size

    def _diverged(self, loss: torch.Tensor | None) -> None:
        kept = (f"the last good checkpoint is kept in {self.run_dir}" if (self.run_dir / LAST_WEIGHTS).exists()
                else "no checkpoint had been written yet")
        what = "the weights became non-finite" if loss is None else f"loss became {loss.item()}"
        raise TrainingDiverged(f"{what} at epoch {self.epoch + 1}, step {self.step + 1}; "
                               f"stopped, {kept}. Try a lower --lr, gradient clipping (--set grad_clip=1.0) or "
                               "fp32 (--set amp=false)")

    def _evaluate(self, model: nn.Module) -> tuple[float, float]:
        """Top-1/top-5 of `model` on the val set, sharded over ranks. Under DDP every rank first takes rank 0's
        BatchNorm statistics (and EMA state), so the result is exactly that of the weights rank 0 saves."""
        if self.ctx.enabled:
            self.ctx.broadcast_tensors(list(model.buffers()) + ([] if model is self.model else
                                                                list(model.parameters())))
        model.eval()

        def predict(images: torch.Tensor) -> torch.Tensor:
            with torch.autocast(self.ctx.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                return model(images)

        acc = run_accuracy(predict, self.val_loader, len(self.classes), self.eval_prepare,
                           on_skipped=self.skipped.update)
        acc.load_tensor(self.ctx.all_reduce_tensor(acc.as_tensor()))
        return acc.top(1), acc.top(5)

    def _end_epoch(self, start_wall: float) -> None:
        self._check_weights_finite()  # before anything is evaluated or written
        top1, top5 = self._evaluate(self.model)
        ema_top1 = ema_top5 = None
        if self.ema is not None:
            ema_top1, ema_top5 = self._evaluate(self.ema.module)
        row = {
            "epoch": self.epoch + 1, "train_loss": round(self._epoch_loss, 6), "val_top1": round(top1, 4),
            "val_top5": round(top5, 4), "ema_top1": None if ema_top1 is None else round(ema_top1, 4),
            "ema_top5": None if ema_top5 is None else round(ema_top5, 4),
            "lr": self.optimizer.param_groups[0]["lr"],
            "img_per_s": round(self._epoch_images / max(self._epoch_time, 1e-9), 2),
            "epoch_time_s": round(self._epoch_time, 3), "skipped_images": len(self.skipped),
        }
        self.history.append(row)
        ema_note = f", EMA top-1 {ema_top1:.2f}" if ema_top1 is not None else ""
        self.say(f"epoch {self.epoch + 1}/{self.recipe.epochs}: loss {self._epoch_loss:.4f}, val top-1 {top1:.2f}, "
                 f"top-5 {top5:.2f}{ema_note}, {row['img_per_s']:.1f} img/s, {self._epoch_time:.1f} s")
        candidates = [(top1, "model")] + ([(ema_top1, "ema")] if ema_top1 is not None else [])
        best_value, source = max(candidates, key=lambda c: c[0])
        self.epoch += 1
        self.batch_in_epoch = 0
        self.wall_s = time.perf_counter() - start_wall
        if best_value > self.best_top1:
            self.best_top1, self.best_epoch = best_value, self.epoch
            weights = self._unwrapped_state() if source == "model" else {
                k: v.detach().cpu() for k, v in self.ema.module.state_dict().items()}
            self._write_on_main(lambda: save_run_weights(
                self.run_dir, BEST_WEIGHTS, weights, config=self.save_config, class_names=self.classes,
                extra={"epoch": self.epoch, "top1": best_value, "weights": source}))
        self._save(epoch_end=True)

    def _summary(self, wall_s: float) -> dict[str, Any]:
        in_sync = self._ranks_in_sync()
        skipped = sorted(set().union(*self.ctx.gather_objects(sorted(self.skipped))))
        last = self.history[-1] if self.history else {}
        summary = {
            "model": self.model_name, "recipe": self.recipe.name, "data": self.options.data,
            "run_dir": str(self.run_dir), "epochs": self.epoch, "steps": self.step,
            "best_top1": self.best_top1, "best_epoch": self.best_epoch,
            "final_top1": last.get("val_top1"), "final_top5": last.get("val_top5"),
            "final_ema_top1": last.get("ema_top1"),
            "train_img_per_s": round(self.train_images / max(self.train_time, 1e-9), 2),
            "wall_s": round(wall_s, 2), "skipped_images": len(skipped), "skipped_files": skipped[:100],
            "global_batch": self.global_batch, "lr": self.lr, "world_size": self.ctx.world_size,
            "ranks_in_sync": in_sync,
        }
        if self.ctx.is_main:
            write_json(self.run_dir / "summary.json", summary)
            if skipped:
                self.say(f"skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]}")
            self.say(f"done: best top-1 {self.best_top1:.2f} (epoch {self.best_epoch}), final top-1 "
                     f"{summary['final_top1']:.2f}, {summary['train_img_per_s']} img/s, {summary['wall_s']:.0f} s; "
                     f"run directory {self.run_dir}")
        return summary

    def _ranks_in_sync(self) -> bool | None:
        """Under DDP, check that every rank ends with the same weights (max |difference| of a checksum)."""
        if not self.ctx.enabled:
            return None
        modules = [self.model] + ([self.ema.module] if self.ema is not None else [])
        with torch.no_grad():
            checksum = torch.stack([p.detach().double().sum() for m in modules for p in m.parameters()]).cpu()
        gathered = self.ctx.gather_objects(checksum)
        return all(torch.equal(gathered[0], other) for other in gathered[1:])


def train(options: TrainOptions) -> dict[str, Any]:
    """Run a training job described by `options`; returns the summary."""
    return Trainer(options).run()


def resume(run_dir: str | Path) -> dict[str, Any]:
    """Continue a run from its last checkpoint, with the options it was started with."""
    return Trainer(TrainOptions(), resume_dir=run_dir).run()


__all__ = ["TrainOptions", "Trainer", "TrainingDiverged", "resume", "train"]
