"""The training loop: it ties the parts together and owns nothing else.

The parts, one job each: `spec` (what the run is, recorded in run.json), `data` (datasets, samplers,
loaders), `step` (forward/backward/update, no host syncs), `evaluation`, `checkpoint` (state files and when
to write them), `logger` (console, TensorBoard, MLflow, metrics files), `distributed` (torchrun).

Three rules keep distributed runs from hanging and bad data from crashing them: before every micro-batch
the ranks exchange (on the host) how many readable images each holds; a micro-batch where any rank holds
fewer than BatchNorm needs is skipped by all ranks together; everything else is weighted by the images it
holds. Exact resume rests on per-sample augmentation seeds (sampler), mid-epoch sampler starts, and state
files that capture every random stream of every rank.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.mixup import Mixup
from ..errors import ResnetsError
from ..hardware import TORCH_DTYPES, capabilities
from ..host_memory import host_memory_policy, retain_freed_memory
from ..models.resnet import ResNet
from ..weights.factory import create_model
from .checkpoint import (
    BEST_WEIGHTS,
    LAST_STATE,
    LAST_WEIGHTS,
    STATE_FORMAT,
    STATE_VERSION,
    CheckpointPolicy,
    load_training_state,
    rng_state,
    save_run_weights,
    save_training_state,
    set_rng_state,
)
from .data import SEED_STREAMS, TrainData, batch_preparers, build_train_data
from .distributed import DistContext
from .ema import build_ema
from .evaluation import Evaluator
from .logger import Console, RunLogger
from .losses import build_loss
from .optim import build_optimizer
from .options import TrainOptions, check_options
from .run_dir import library_versions, write_json, write_text
from .schedule import build_schedule
from .spec import RUN_RECORD, RunSpec, file_sha256, read_run_record, recipe_drift, resolve_spec, run_record
from .step import MIN_BATCH_FOR_BATCHNORM, TrainStep
from .teacher import Distillation, build_teacher

KILL_ENV = "RESNETS_KILL_AT_STEP"
"""Test hook: SIGKILL this process right after that optimiser step."""


class TrainingDiverged(ResnetsError):
    """The loss became NaN or infinite; the run is rolled back to its last good checkpoint."""


@dataclass
class Progress:
    """Where the run is and what it has measured; checkpointed, so a resumed run reports the same numbers."""

    epoch: int = 0
    batch_in_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_top1: float = -1.0
    best_epoch: int = -1
    wall_s: float = 0.0
    train_images: int = 0
    train_time: float = 0.0
    skipped: set[str] = field(default_factory=set)
    skipped_batches: int = 0
    """Micro-batches every rank skipped because some rank held too few readable images for BatchNorm."""
    epoch_images: int = 0
    """Images (all ranks) trained on in the current epoch."""
    epoch_time: float = 0.0
    unlabeled_seen: int = 0
    """Unlabelled images (all ranks) that entered a training step (distillation with --unlabeled)."""

    def to_state(self) -> dict[str, Any]:
        state = dict(vars(self))
        state["skipped"] = sorted(self.skipped)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, set(value) if key == "skipped" else value)


def _amp_dtype(enabled: bool, wanted_name: str, device: torch.device, say) -> torch.dtype | None:
    """The autocast dtype, or None for fp32. Chosen by what the device does natively (resnets.hardware): a CPU
    without bf16 dot-product instructions would emulate bf16 through fp32, slower than fp32 itself, so the
    recipe's AMP falls back to fp32 there and says why."""
    if not enabled:
        return None
    wanted = "fp16" if wanted_name == "float16" else "bf16"
    caps = capabilities(device)
    if device.type == "cuda":
        if wanted == "bf16" and not caps.is_native("bf16"):
            say(f"notice: {caps.why_not('bf16')}; AMP uses float16 with a gradient scaler")
            return torch.float16
        return TORCH_DTYPES[wanted]
    if wanted == "fp16":
        say("notice: float16 AMP needs a GPU (torch's CPU autocast trains in bfloat16); using bfloat16")
    if caps.is_native("bf16"):
        return torch.bfloat16
    say(f"notice: the recipe's AMP falls back to fp32: {caps.why_not('bf16')}")
    return None


def _default_run_dir(model_name: str, recipe_name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model_name}-{recipe_name}-{stamp}"


def _configure_determinism(deterministic: bool, device: torch.device) -> None:
    """cuDNN autotuning on GPU unless exactness is asked for; then what CUDA needs for repeatable results."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # must precede the first cuBLAS call
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


class Trainer:
    """One training run. `Trainer(options).run()` returns the summary dict (also written to summary.json);
    `Trainer(runtime_options, resume_dir=DIR)` continues the run recorded in DIR."""

    def __init__(self, options: TrainOptions, *, resume_dir: str | Path | None = None) -> None:
        check_options(options)
        if options.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before DistContext touches CUDA
        self.ctx = ctx = DistContext.from_env(options.device)
        self.console = Console(enabled=ctx.is_main, progress=options.progress, to_stderr=options.log_to_stderr)
        resume_state: dict[str, Any] | None = None
        if resume_dir is not None:
            self.run_dir = Path(resume_dir)
            record = read_run_record(self.run_dir)
            spec = record.spec
            spec.options = spec.options.with_runtime(options)
            check_options(spec.options)
            drift = recipe_drift(spec)
            if drift:
                self.say(drift)
            resume_state = load_training_state(self.run_dir)
        else:
            spec = resolve_spec(options)
            self.run_dir = Path(options.out) if options.out else _default_run_dir(spec.model_name, options.recipe)
            if (self.run_dir / RUN_RECORD).exists():
                raise ResnetsError(f"{self.run_dir} already holds a run: continue it with --resume {self.run_dir} "
                                   "or choose another --out")
        self.spec = spec
        opts = spec.options
        if opts.retain_memory:
            retain_freed_memory()
        if opts.sync_bn and ctx.device.type != "cuda":
            raise ResnetsError("--sync-bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on the CPU)")
        _configure_determinism(opts.deterministic, ctx.device)
        resuming = f" (resuming {self.run_dir})" if resume_dir is not None else ""
        self.say(f"resnets train: recipe {opts.recipe}, data {opts.data}{resuming}")
        for note in spec.notes:
            self.say(f"note: {note}")
        torch.manual_seed(opts.seed)  # same initial weights on every rank; per-rank streams seeded below

        self.data: TrainData = build_train_data(spec, ctx, self.say)
        self.classes = self.data.classes
        if resume_dir is not None:
            if record.classes != self.classes:
                raise ResnetsError(f"cannot resume: the data at {opts.data} now has {len(self.classes)} classes "
                                   f"({', '.join(self.classes[:4])}...), the run trained on {len(record.classes)}")
            self.model = ResNet(record.model_config).to(ctx.device)
            if resume_state is None:
                self.say("note: the run saved no checkpoint before it stopped; starting it again from the beginning "
                         "with its recorded settings")
                self._initial_weights(record.data.get("initial_weights"))
        else:
            self.model = create_model(spec.model_name, num_classes=len(self.classes), weights=opts.weights,
                                      reset_head=opts.reset_head, **spec.model_overrides).to(ctx.device)
        self.teacher, self.teacher_record = None, None
        if spec.recipe.distill:
            recorded = (record.data.get("teacher") or {}) if resume_dir is not None else None
            self.teacher, self.teacher_record = build_teacher(
                opts.teacher, opts.teacher_model, classes=self.classes, student=self.model.config,
                student_size=spec.recipe.img_size, bn=spec.recipe.teacher_bn, device=ctx.device,
                channels_last=opts.channels_last, recorded=recorded)
        torch.manual_seed(opts.seed + ctx.rank)  # per-rank drop path / dropout streams
        self._build_training(spec)
        self.progress = Progress()
        self.checkpoints = CheckpointPolicy(every_steps=opts.save_every, every_minutes=opts.save_every_minutes)
        if resume_state is not None:
            self._restore(resume_state)
        self.say(f"model {spec.model_name} ({sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M params), "
                 f"{self.data.describe()}, {spec.lr_note()}")
        if self.teacher_record is not None:
            self.say(f"distillation: {self._distill_note()}")
        self.say(f"resolution: train {spec.recipe.img_size} px, evaluation {spec.eval_img_size} px "
                 f"(crop {spec.recipe.eval_crop_pct:g}); {self.checkpoints.describe()}")

    # -- assembly ----------------------------------------------------------------------------------------
    def _build_training(self, spec: RunSpec) -> None:
        recipe, opts, ctx = spec.recipe, spec.options, self.ctx
        if ctx.enabled and opts.sync_bn:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        # What the weights expect at inference: this run's resolution and crop, stored in every checkpoint.
        self.save_config = self.model.config.replace(
            input_size=recipe.img_size, test_input_size=spec.eval_img_size, crop_pct=recipe.eval_crop_pct,
            interpolation=recipe.resolved_eval_interpolation)
        if opts.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, recipe, lr=spec.lr)
        self.schedule = build_schedule(self.optimizer, recipe, lr=spec.lr, steps_per_epoch=self.data.steps_per_epoch,
                                       epochs=recipe.epochs)
        self.ema = build_ema(self.model, recipe, self.data.steps_per_epoch, global_batch=spec.global_batch)
        self.amp_dtype = _amp_dtype(recipe.amp, recipe.amp_dtype, ctx.device, self.say)
        self.scaler = (torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16
                       and ctx.device.type == "cuda" else None)
        train_model: nn.Module = self.model
        if ctx.enabled:
            device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        if opts.compile:
            train_model = torch.compile(train_model)
        self.mix_generator = torch.Generator().manual_seed(opts.seed * 1000 + SEED_STREAMS["mix"] + ctx.rank)
        mixup = Mixup(len(self.classes), mixup_alpha=recipe.mixup_alpha, cutmix_alpha=recipe.cutmix_alpha,
                      prob=recipe.mixup_prob, switch_prob=recipe.mixup_switch_prob,
                      label_smoothing=recipe.label_smoothing, generator=self.mix_generator)
        distillation = None
        if self.teacher is not None:
            distillation = Distillation(self.teacher, recipe.distill, task_loss=build_loss(recipe, reduction="none"),
                                        alpha=recipe.distill_alpha, temperature=recipe.temperature)
        self.step = TrainStep(self.model, self.optimizer, build_loss(recipe), train_model=train_model,
                              schedule=self.schedule, mixup=mixup, ema=self.ema, amp_dtype=self.amp_dtype,
                              scaler=self.scaler, grad_clip=recipe.grad_clip, grad_accum=recipe.grad_accum,
                              nominal_batch=self.data.rank_batch, world_size=ctx.world_size,
                              distillation=distillation)
        self.prepare, eval_prepare, self.erase_generator = batch_preparers(
            spec, self.model.config.mean, self.model.config.std, ctx, channels_last=opts.channels_last)
        self.evaluate = Evaluator(self.data.val_loader, eval_prepare, len(self.classes), ctx,
                                  amp_dtype=self.amp_dtype, on_skipped=lambda names: self.progress.skipped.update(names))

    def _initial_weights(self, recorded: dict[str, str] | None) -> None:
        """A resume from the start reloads the initial weights, and refuses a file that changed since."""
        opts = self.spec.options
        if not opts.weights:
            return
        path = Path(opts.weights)
        if not path.is_file():
            raise ResnetsError(f"cannot resume from the start: the initial weights {path} are gone")
        if recorded and file_sha256(path) != recorded.get("sha256"):
            raise ResnetsError(f"cannot resume from the start: the initial weights {path} changed since the run "
                               "started (sha256 differs)")
        loaded = create_model(self.spec.model_name, num_classes=len(self.classes), weights=opts.weights,
                              reset_head=opts.reset_head, **self.spec.model_overrides)
        self.model.load_state_dict(loaded.state_dict())

    # -- helpers -----------------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        self.console.say(message)

    def _distill_note(self) -> str:
        recipe, teacher = self.spec.recipe, self.teacher_record or {}
        terms = (f"(1 - {recipe.distill_alpha:g}) x task + {recipe.distill_alpha:g} x T^2 KL, T {recipe.temperature:g}"
                 if recipe.distill == "kd" else "symmetric KL of the softmax outputs, no label loss")
        prep = teacher.get("preprocessing", {})
        own = [f"its own normalisation {tuple(prep['mean'])}/{tuple(prep['std'])}"] if prep.get("converted_from_student") else []
        own += [f"resized to {prep['img_size']} px"] if prep.get("resized") else []
        unlabeled = (f"; {self.data.unlabeled_per_epoch} of {self.data.unlabeled_pool} unlabelled images per epoch"
                     if self.data.unlabeled_pool else "")
        return (f"{recipe.distill} ({terms}) from teacher {teacher.get('model')} {teacher.get('path')} "
                f"({teacher.get('params', 0) / 1e6:.2f} M params, frozen, BN {recipe.teacher_bn}"
                f"{', ' + ', '.join(own) if own else ''}){unlabeled}")

    def _unwrapped_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def _write_record(self) -> None:
        """run.json and recipe.yaml, written before the first step: a run killed at once can still resume."""
        spec, ctx = self.spec, self.ctx
        if (self.run_dir / RUN_RECORD).exists():
            return
        initial = None
        if spec.options.weights:
            initial = {"path": spec.options.weights, "sha256": file_sha256(spec.options.weights)}
        runtime = {"world_size": ctx.world_size, "batch_per_process": self.data.rank_batch,
                   "grad_accum": spec.recipe.grad_accum, "steps_per_epoch": self.data.steps_per_epoch,
                   "amp_dtype": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "float32",
                   "device": str(ctx.device), "host_memory": host_memory_policy(), "initial_weights": initial,
                   "input_pipeline": self.data.pipeline, "teacher": self.teacher_record,
                   "versions": library_versions()}
        document = run_record(spec, model_config=self.model.config, classes=self.classes, runtime=runtime)

        def write() -> None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text(self.run_dir / "recipe.yaml", spec.recipe.to_yaml())
            write_json(self.run_dir / RUN_RECORD, document)  # last: its presence marks a complete record

        ctx.on_main(write, what=f"could not write the run record in {self.run_dir}")

    # -- checkpoints -----------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        ctx = self.ctx
        return {
            "format": STATE_FORMAT, "version": STATE_VERSION,
            "model": self._unwrapped_state(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": ctx.gather_objects(rng_state()),
            "generators": ctx.gather_objects([self.mix_generator.get_state(), self.erase_generator.get_state()]),
            "step": ctx.gather_objects(self.step.state_dict()),
            "progress": self.progress.to_state(),
            "world_size": ctx.world_size, "classes": self.classes,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        ctx = self.ctx
        if state.get("world_size", 1) != ctx.world_size:
            raise ResnetsError(f"cannot resume: the run used {state['world_size']} process(es), this one has "
                               f"{ctx.world_size}")
        if state.get("classes") != self.classes:
            raise ResnetsError("cannot resume: the data set's classes differ from the run's")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][ctx.rank])
        mix_state, erase_state = state["generators"][ctx.rank]
        self.mix_generator.set_state(mix_state)
        self.erase_generator.set_state(erase_state)
        self.step.load_state_dict(state["step"][ctx.rank])
        self.progress.load_state(state["progress"])

    def _save(self, *, epoch_end: bool) -> None:
        """Write last.* (every rank joins the collectives, only rank 0 writes). A checkpoint is written only
        after the loss and the weights are confirmed finite: the previous one stays the last good one."""
        _, nonfinite = self._peek_losses()
        if nonfinite:
            self._diverged("the loss became non-finite")
        self._check_weights_finite()
        state = self._state()
        meta = {"epoch": self.progress.epoch, "step": self.step.steps, "recipe": self.spec.recipe.name}

        def write() -> None:
            save_run_weights(self.run_dir, LAST_WEIGHTS, state["model"], config=self.save_config,
                             class_names=self.classes, extra=meta)
            save_training_state(self.run_dir, state)

        self.ctx.on_main(write, what=f"could not write a checkpoint in {self.run_dir} (the previous one is intact)")
        self.checkpoints.saved()

    def _peek_losses(self, since: torch.Tensor | None = None) -> tuple[float, bool]:
        """(the epoch's summed loss over all ranks, minus `since` if given; whether any rank saw a non-finite
        loss). One host sync and one small collective; nothing is reset."""
        parts = [self.step.loss_sum - since if since is not None else self.step.loss_sum,
                 self.step.nonfinite.double()]
        totals = self.ctx.sum(torch.stack(parts).cpu().tolist())
        return totals[0], totals[1] > 0

    def _check_weights_finite(self) -> None:
        floats = [t for t in self.model.state_dict().values() if t.is_floating_point()]
        finite = bool(torch.stack([torch.isfinite(t).all() for t in floats]).all())
        if self.ctx.sum([float(finite)])[0] != self.ctx.world_size:
            self._diverged("the weights became non-finite")

    def _diverged(self, what: str) -> None:
        """Roll the in-memory run back to its last good checkpoint and stop with one line saying so."""
        step = self.step.steps
        state = load_training_state(self.run_dir) if (self.run_dir / LAST_STATE).exists() else None
        if state is not None:
            self._restore(state)
            kept = (f"rolled back to the last good checkpoint (epoch {self.progress.epoch}, step {self.step.steps}) "
                    f"in {self.run_dir}")
        else:
            kept = "no checkpoint had been written yet"
        raise TrainingDiverged(f"{what} by step {step} (epoch {self.progress.epoch + 1}); stopped, {kept}. "
                               "Try a lower --lr, gradient clipping (--set grad_clip=1.0) or fp32 (--set amp=false)")

    # -- the loop --------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self._write_record()
        spec = self.spec
        purge = self.step.steps if self.step.steps else None
        params = {"model": spec.model_name, "recipe": spec.recipe.name, "data": spec.options.data,
                  "seed": spec.options.seed, "global_batch": spec.global_batch, "lr": spec.lr,
                  "epochs": spec.recipe.epochs, "img_size": spec.recipe.img_size, "eval_img_size": spec.eval_img_size}
        self.logger = RunLogger(self.console, self.run_dir)
        self.ctx.on_main(lambda: self.logger.open(tensorboard=spec.options.tensorboard, mlflow_uri=spec.options.mlflow,
                                                  resumed_step=purge, name=self.run_dir.name, params=params),
                         what=f"could not set up logging in {self.run_dir}")
        self.say(f"run directory: {self.run_dir}")
        start_wall = time.perf_counter() - self.progress.wall_s
        kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
        try:
            while self.progress.epoch < spec.recipe.epochs:
                self._train_epoch(kill_at, start_wall)
                self._end_epoch(start_wall)
            summary = self._summary(time.perf_counter() - start_wall)
        finally:
            self.logger.close()
            self.ctx.close()
        return summary

    def _train_epoch(self, kill_at: int, start_wall: float) -> None:
        data, progress, step, ctx = self.data, self.progress, self.step, self.ctx
        accum = self.spec.recipe.grad_accum
        data.sampler.set_epoch(progress.epoch)
        data.sampler.set_start(progress.batch_in_epoch * data.rank_batch)
        self.model.train()
        # Creating a DataLoader iterator draws from the global RNG; keep that out of the training streams.
        saved_rng = torch.get_rng_state()
        batches = iter(data.train_loader)
        torch.set_rng_state(saved_rng)
        if progress.batch_in_epoch == 0:
            progress.epoch_images, progress.epoch_time = 0, 0.0
            step.loss_sum.zero_()
        self.console.start_epoch(f"epoch {progress.epoch + 1}/{self.spec.recipe.epochs}", data.batches_per_epoch,
                                 progress.batch_in_epoch)
        epoch_start = time.perf_counter() - progress.epoch_time
        interval = {"start": time.perf_counter(), "images": 0, "loss_from": step.loss_sum.clone()}
        self.optimizer.zero_grad(set_to_none=True)
        for _ in range(data.batches_per_epoch - progress.batch_in_epoch):
            batch = next(batches)
            progress.skipped.update(batch.skipped)
            last_micro = (progress.batch_in_epoch + 1) % accum == 0
            save_due = last_micro and ctx.is_main and self.checkpoints.due(step.steps + 1)
            unlabeled = int((batch.targets < 0).sum()) if data.unlabeled_pool else 0  # host tensor: no sync
            counts = ctx.gather_ints([len(batch.targets), int(save_due), unlabeled])
            fewest, total = min(c[0] for c in counts), sum(c[0] for c in counts)
            save_due = bool(counts[0][1])
            if fewest >= MIN_BATCH_FOR_BATCHNORM:
                images = self.prepare(batch.images)
                targets = batch.targets.to(ctx.device, non_blocking=True)
                step.micro_batch(images, targets, last=last_micro, global_count=total)
                progress.epoch_images += total
                progress.unlabeled_seen += sum(c[2] for c in counts)
                interval["images"] += total
            else:  # every rank skips together: no rank enters a collective the others do not
                progress.skipped_batches += 1
            progress.batch_in_epoch += 1
            progress.epoch_time = time.perf_counter() - epoch_start
            self.console.advance()
            if not last_micro:
                continue
            if step.window_samples and ctx.enabled and not step.synced:
                step.all_reduce_gradients()  # the closing micro-batch was skipped: sync by hand
            step.optimizer_step()
            if step.steps % self.spec.options.log_every == 0:
                self._log_interval(interval)
            if save_due and progress.batch_in_epoch < data.batches_per_epoch:
                progress.wall_s = time.perf_counter() - start_wall
                self._save(epoch_end=False)
            if kill_at and step.steps == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        self.console.end_epoch()
        progress.epoch_time = time.perf_counter() - epoch_start

    def _log_interval(self, interval: dict[str, Any]) -> None:
        """A log point: the only host sync of the loop. Checks for non-finite losses across ranks."""
        step, progress = self.step, self.progress
        loss, nonfinite = self._peek_losses(since=interval["loss_from"])
        if nonfinite:
            self._diverged("the loss became non-finite")
        elapsed = time.perf_counter() - interval["start"]
        images = interval["images"]
        if images:
            self.logger.interval(step=step.steps, loss=loss / images, lr=self.schedule.lr,
                                 img_per_s=images / max(elapsed, 1e-9),
                                 position=f"step {progress.batch_in_epoch}/{self.data.batches_per_epoch}")
        interval.update(start=time.perf_counter(), images=0, loss_from=step.loss_sum.clone())

    def _end_epoch(self, start_wall: float) -> None:
        progress, spec = self.progress, self.spec
        epoch_loss, nonfinite = self._peek_losses()
        if nonfinite:
            self._diverged("the loss became non-finite")
        self._check_weights_finite()  # before anything is evaluated or written
        self.step.loss_sum.zero_()
        mean_loss = epoch_loss / max(progress.epoch_images, 1)
        top1, top5 = self.evaluate(self.model)
        ema_top1 = ema_top5 = None
        if self.ema is not None:
            ema_top1, ema_top5 = self.evaluate(self.ema.module, with_parameters=True)
        row = {
            "epoch": progress.epoch + 1, "train_loss": round(mean_loss, 6), "val_top1": round(top1, 4),
            "val_top5": round(top5, 4), "ema_top1": None if ema_top1 is None else round(ema_top1, 4),
            "ema_top5": None if ema_top5 is None else round(ema_top5, 4), "lr": self.optimizer.param_groups[0]["lr"],
            "img_per_s": round(progress.epoch_images / max(progress.epoch_time, 1e-9), 2),
            "epoch_time_s": round(progress.epoch_time, 3), "skipped_images": len(progress.skipped),
            "skipped_batches": progress.skipped_batches,
        }
        progress.history.append(row)
        progress.train_images += progress.epoch_images
        progress.train_time += progress.epoch_time
        ema_note = f", EMA top-1 {ema_top1:.2f}" if ema_top1 is not None else ""
        self.say(f"epoch {progress.epoch + 1}/{spec.recipe.epochs}: loss {mean_loss:.4f}, val top-1 {top1:.2f}, "
                 f"top-5 {top5:.2f}{ema_note}, {row['img_per_s']:.1f} img/s, {progress.epoch_time:.1f} s")
        candidates = [(top1, "model")] + ([(ema_top1, "ema")] if ema_top1 is not None else [])
        best_value, source = max(candidates, key=lambda c: c[0])
        progress.epoch += 1
        progress.batch_in_epoch = 0
        progress.epoch_images, progress.epoch_time = 0, 0.0
        progress.wall_s = time.perf_counter() - start_wall
        if best_value > progress.best_top1:
            progress.best_top1, progress.best_epoch = best_value, progress.epoch
            weights = self._unwrapped_state() if source == "model" else {
                k: v.detach().cpu() for k, v in self.ema.module.state_dict().items()}
            self.ctx.on_main(lambda: save_run_weights(
                self.run_dir, BEST_WEIGHTS, weights, config=self.save_config, class_names=self.classes,
                extra={"epoch": progress.epoch, "top1": best_value, "weights": source}),
                what=f"could not write {BEST_WEIGHTS} in {self.run_dir}")
        self._save(epoch_end=True)
        self.logger.epoch(row, step=self.step.steps, history=progress.history)

    def _summary(self, wall_s: float) -> dict[str, Any]:
        progress = self.progress
        in_sync = self._ranks_in_sync()
        skipped = sorted(set().union(*self.ctx.gather_objects(sorted(progress.skipped))))
        last = progress.history[-1] if progress.history else {}
        summary = {
            "model": self.spec.model_name, "recipe": self.spec.recipe.name, "data": self.spec.options.data,
            "run_dir": str(self.run_dir), "epochs": progress.epoch, "steps": self.step.steps,
            "best_top1": progress.best_top1, "best_epoch": progress.best_epoch,
            "final_top1": last.get("val_top1"), "final_top5": last.get("val_top5"),
            "final_ema_top1": last.get("ema_top1"),
            "train_img_per_s": round(progress.train_images / max(progress.train_time, 1e-9), 2),
            "wall_s": round(wall_s, 2), "skipped_images": len(skipped), "skipped_files": skipped[:100],
            "skipped_batches": progress.skipped_batches, "global_batch": self.spec.global_batch, "lr": self.spec.lr,
            "img_size": self.spec.recipe.img_size, "eval_img_size": self.spec.eval_img_size,
            "world_size": self.ctx.world_size, "ranks_in_sync": in_sync, "distill": self._distill_summary(),
        }
        if self.ctx.is_main:
            write_json(self.run_dir / "summary.json", summary)
            if skipped:
                self.say(f"skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]}")
            if progress.skipped_batches:
                self.say(f"skipped {progress.skipped_batches} batch(es) that held fewer than "
                         f"{MIN_BATCH_FOR_BATCHNORM} readable images on some process")
            self.say(f"done: best top-1 {progress.best_top1:.2f} (epoch {progress.best_epoch}), final top-1 "
                     f"{summary['final_top1']:.2f}, {summary['train_img_per_s']} img/s, {summary['wall_s']:.0f} s; "
                     f"run directory {self.run_dir}")
        return summary

    def _distill_summary(self) -> dict[str, Any] | None:
        if self.teacher_record is None:
            return None
        recipe, teacher = self.spec.recipe, self.teacher_record
        return {"mode": recipe.distill, "alpha": recipe.distill_alpha if recipe.distill == "kd" else None,
                "temperature": recipe.temperature if recipe.distill == "kd" else None,
                "teacher": {key: teacher[key] for key in ("path", "sha256", "model")},
                "teacher_bn": recipe.teacher_bn, "unlabeled_images": self.data.unlabeled_pool,
                "unlabeled_per_epoch": self.data.unlabeled_per_epoch,
                "unlabeled_seen": self.progress.unlabeled_seen}

    def _ranks_in_sync(self) -> bool | None:
        """Under DDP, check that every rank ends with the same weights and buffers (BN statistics included)."""
        if not self.ctx.enabled:
            return None
        modules = [self.model] + ([self.ema.module] if self.ema is not None else [])
        with torch.no_grad():
            tensors = [t for m in modules for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
            checksum = torch.stack([t.detach().double().sum() for t in tensors]).cpu()
        gathered = self.ctx.gather_objects(checksum)
        return all(torch.equal(gathered[0], other) for other in gathered[1:])


def train(options: TrainOptions) -> dict[str, Any]:
    """Run a training job described by `options`; returns the summary."""
    return Trainer(options).run()


def resume(run_dir: str | Path, options: TrainOptions | None = None) -> dict[str, Any]:
    """Continue the run recorded in `run_dir` (runtime settings such as workers/progress from `options`)."""
    return Trainer(options or TrainOptions(), resume_dir=run_dir).run()


__all__ = ["TrainOptions", "Trainer", "TrainingDiverged", "resume", "train"]
