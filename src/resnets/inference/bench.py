"""Measure a model on this machine: parameters, MACs, latency (p50/p90), throughput, peak memory.

Timing: `warmup` untimed calls, then `reps` timed calls of one batch each (CUDA synchronised);
latency is per batch, throughput = batch size / median latency.

Peak memory (`peak_mem_mb`) = the mode's weights + the peak working memory of the timed runs. On CPU the
working memory is the rise of the process's peak resident set (VmHWM, reset through
/proc/self/clear_refs before the warm-up) above the resident set at that moment: activations,
workspaces and runtime arenas (ONNX Runtime allocates its arena on the first run). Without /proc the
lifetime peak from getrusage is used, which can read 0 when an earlier model peaked higher. On CUDA it is
torch.cuda.max_memory_allocated over the runs (weights on the device included).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from ..errors import ResnetsError
from ..hardware import TORCH_DTYPES, normalise_precision
from ..models.cost import count_cost
from ..models.registry import get_config
from ..models.resnet import ResNet
from .best import BestOptions
from .modes import MODES, InferenceRunner, check_mode, prepare

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""The training step's dtypes (--train); inference takes any precision (hardware.PRECISIONS)."""


@dataclass
class BenchSettings:
    """What to measure and how long. `img_size=None`: each model's eval size (train size for --train)."""

    modes: tuple[str, ...] = ("best",)
    batch_sizes: tuple[int, ...] = (1, 16)
    img_size: int | None = None
    warmup: int = 3
    reps: int = 10
    train: bool = False
    dtype: str = "float32"
    """The training step's dtype; follows a float `precision`."""
    device: str = "cpu"
    precision: str | None = None
    """fp32, bf16, fp16 or int8 for the inference modes (None: fp32, and for best every native precision)."""
    calib: str | None = None
    """Image folder: int8 calibration and the agreement check set (else random images)."""
    allow_int8: bool = False
    int8_val: str | None = None
    """Labelled folder for int8's top-1 change (default: the calibration folder)."""

    def __post_init__(self) -> None:
        if "all" in self.modes:
            self.modes = MODES
        for mode in self.modes:
            check_mode(mode)
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ResnetsError(f"batch sizes must be >= 1, got {self.batch_sizes}")
        if self.reps < 1 or self.warmup < 0:
            raise ResnetsError(f"need reps >= 1 and warmup >= 0, got reps={self.reps} warmup={self.warmup}")
        if self.precision is not None:
            self.precision = normalise_precision(self.precision)
            if self.precision in TORCH_DTYPES:
                self.dtype = str(TORCH_DTYPES[self.precision]).removeprefix("torch.")
            elif self.train:
                raise ResnetsError("--train times the training step in a float precision, not int8")
        if self.dtype not in DTYPES:
            raise ResnetsError(f"unknown dtype {self.dtype!r}; choose from {', '.join(DTYPES)}")
        if self.precision == "int8" and not self.calib:
            raise ResnetsError("int8 needs calibration images: --calib DIR")
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise ResnetsError(f"unknown device {self.device!r}; use cpu or cuda") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ResnetsError("device 'cuda' requested but CUDA is not available here")
        if device.type not in ("cpu", "cuda"):
            raise ResnetsError(f"unsupported device {self.device!r}; use cpu or cuda")


@dataclass
class BenchRecord:
    """One measurement: a model in one mode at one batch size (mode 'train' for the training step)."""

    model: str
    mode: str
    batch_size: int
    img_size: int
    params: int
    macs: int
    latency_ms_p50: float | None = None
    latency_ms_p90: float | None = None
    throughput_img_s: float | None = None
    peak_mem_mb: float | None = None
    gflops_s: float | None = None
    """Achieved compute: 2 x MACs x images/s (x3 for a training step: forward + two backward products)."""
    backend: str = "torch"
    precision: str = "fp32"
    agreement: float | None = None
    """Reduced precisions and best: % of check images whose top-1 equals fp32 eager's."""
    top1_fp32: float | None = None
    top1: float | None = None
    """int8: top-1 % of fp32 eager and of this mode against folder labels (class folders = model classes)."""
    choice: str | None = None
    """best: what it chose and why (its candidates' speeds are in the progress output)."""
    requested_mode: str = ""
    fallback_reason: str | None = None
    prepare_s: float | None = None
    threads: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


# --- memory -------------------------------------------------------------------------------------------------


def _proc_status_kb(key: str) -> int | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _release_freed_memory() -> None:
    """Hand memory freed by earlier runs back to the OS (glibc keeps it resident otherwise), so the next
    measurement's peak is not hidden under the previous one's leftovers."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the measure is coarser, nothing breaks
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Context manager: the peak memory (MB) the code inside adds above what is resident when it starts."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._use_proc = self._reset_hwm()
        self._start_kb = (_proc_status_kb("VmRSS") if self._use_proc else
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return self

    @staticmethod
    def _reset_hwm() -> bool:
        _release_freed_memory()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # "5": reset the peak RSS to the current RSS
        except OSError:
            return False
        return _proc_status_kb("VmHWM") is not None

    def __exit__(self, *exc_info) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        end_kb = (_proc_status_kb("VmHWM") if self._use_proc else
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        self.peak_mb = max(0, (end_kb or 0) - (self._start_kb or 0)) / 1024


def weights_mb(model: nn.Module, dtype: torch.dtype) -> float:
    itemsize = torch.empty((), dtype=dtype).element_size()
    return sum(t.numel() for t in model.state_dict().values() if t.is_floating_point()) * itemsize / 2**20


def _peak_mb(memory: PeakMemory, model: nn.Module, dtype: torch.dtype, device: torch.device) -> float:
    """CUDA's peak already holds the weights; the CPU measure is only what the runs added."""
    return memory.peak_mb if device.type == "cuda" else weights_mb(model, dtype) + memory.peak_mb


# --- timing -------------------------------------------------------------------------------------------------


def time_calls(call: Callable[[], object], *, warmup: int, reps: int, device: torch.device) -> list[float]:
    """Seconds per call of `reps` timed calls after `warmup` untimed ones."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        call()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return times


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _fill_timing(record: BenchRecord, times: list[float], flops_per_image: float) -> None:
    record.latency_ms_p50 = statistics.median(times) * 1000
    record.latency_ms_p90 = percentile(times, 90) * 1000
    record.throughput_img_s = record.batch_size / statistics.median(times)
    record.gflops_s = flops_per_image * record.throughput_img_s / 1e9


# --- measuring one model --------------------------------------------------------------------------------------


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if not isinstance(exc, ResnetsError) else text


def bench_inference(model: ResNet, name: str, settings: BenchSettings, *, verbose: bool = True) -> list[BenchRecord]:
    """Records for every mode x batch size of `settings` (a mode that fails gives a record with `error`)."""
    size = settings.img_size or model.config.eval_size
    cost = count_cost(model, size)
    device = torch.device(settings.device)
    best = BestOptions(precision=settings.precision, calib=settings.calib, allow_int8=settings.allow_int8,
                       int8_val=settings.int8_val)
    records = []
    checked: dict[tuple[str, str], tuple] = {}  # (mode, precision) -> accuracy fields, measured once
    for mode in settings.modes:
        for batch_size in settings.batch_sizes:
            record = BenchRecord(name, mode, batch_size, size, cost.params, cost.macs, requested_mode=mode,
                                 threads=torch.get_num_threads(), device=str(device), dtype=settings.dtype)
            try:
                start = time.perf_counter()
                runner = prepare(model, mode, img_size=size, batch_size=batch_size, precision=settings.precision,
                                 device=device, verbose=verbose, calib=settings.calib, best=best)
                record.prepare_s = time.perf_counter() - start
                _describe(record, runner)
                if runner.selection is None and runner.precision != "fp32":
                    key = (runner.mode, runner.precision)
                    if key not in checked:
                        checked[key] = _accuracy(model, runner, settings, size)
                    record.agreement, record.top1_fp32, record.top1 = checked[key]
                _measure(record, runner, model, settings, 2 * cost.macs)
                if runner.precision == "int8":
                    record.peak_mem_mb -= weights_mb(model, torch.float32) * 0.75  # int8 weights: a quarter
            except (Exception, MemoryError) as exc:  # one failing mode must not stop the run
                record.error = _error_text(exc)
            records.append(record)
            if verbose:
                print(progress_line(record), file=sys.stderr)
    return records


def _describe(record: BenchRecord, runner: InferenceRunner) -> None:
    record.mode, record.fallback_reason = runner.mode, runner.fallback_reason
    record.backend, record.precision = runner.backend, runner.precision
    record.dtype = "int8" if runner.precision == "int8" else str(runner.dtype).removeprefix("torch.")
    if runner.selection is not None:
        record.agreement = runner.agreement
        chosen = runner.selection.chosen
        record.top1_fp32, record.top1 = chosen.top1_fp32, chosen.top1
        record.choice = f"{chosen.name}: {chosen.verdict}"


def _accuracy(model: ResNet, runner: InferenceRunner, settings: BenchSettings, size: int) -> tuple:
    """(agreement %, top-1 fp32, top-1 of the runner) of a reduced-precision runner; top-1 needs int8's
    labelled folder."""
    from .best import check_set
    from .quantize import compare_int8

    if runner.precision == "int8":
        result = compare_int8(model, runner, settings.int8_val or settings.calib, img_size=size)
        return result.agreement, result.top1_fp32, result.top1_int8
    batches, _ = check_set(model, BestOptions(calib=settings.calib), size, 16)
    reference = prepare(model, "eager", img_size=size, batch_size=16, device=runner.device, verbose=False)
    same = total = 0
    for images in batches:
        images = images.to(runner.device)
        same += int((runner(images).argmax(1) == reference(images).argmax(1)).sum())
        total += len(images)
    return 100.0 * same / total, None, None


def _measure(record: BenchRecord, runner: Callable, model: ResNet, settings: BenchSettings, flops: float) -> None:
    device = torch.device(settings.device)
    dtype = TORCH_DTYPES.get(record.precision, torch.float32)
    images = torch.randn(record.batch_size, model.config.in_chans, record.img_size, record.img_size).to(device)
    with PeakMemory(device) as memory:
        times = time_calls(lambda: runner(images), warmup=settings.warmup, reps=settings.reps, device=device)
    _fill_timing(record, times, flops)
    record.peak_mem_mb = _peak_mb(memory, model, dtype, device)


def run_bench(models: Iterable[str | tuple[str, ResNet]], settings: BenchSettings, *, verbose: bool = True,
              train_bench: Callable[..., list[BenchRecord]] | None = None) -> list[BenchRecord]:
    """Measure each model (a preset name, built with random weights, or a (name, model) pair).

    With `settings.train`, `train_bench(model, name, settings, verbose=...)` times the training step (the
    training package provides it: `resnets.train.bench.bench_training`)."""
    items = list(models)
    for item in items:  # fail on a typo before minutes of measuring
        if isinstance(item, str):
            get_config(item)
    records = []
    for item in items:
        name, model = (item, None) if isinstance(item, str) else item
        try:
            if model is None:
                from ..weights.factory import create_model

                model = create_model(name).eval()
        except (Exception, MemoryError) as exc:
            records.append(BenchRecord(name, settings.modes[0], 0, settings.img_size or 0, 0, 0, error=_error_text(exc)))
            continue
        records += bench_inference(model, name, settings, verbose=verbose)
        if settings.train and train_bench is not None:
            records += train_bench(model, name, settings, verbose=verbose)
        del model
    return records


# --- output -------------------------------------------------------------------------------------------------


def progress_line(record: BenchRecord) -> str:
    head = f"{record.model} {record.mode} {record.precision} batch {record.batch_size} @{record.img_size}"
    if record.error:
        return f"{head}: FAILED ({record.error})"
    line = (f"{head}: {record.latency_ms_p50:.2f} ms p50, {record.throughput_img_s:.1f} img/s, "
            f"{record.peak_mem_mb:.0f} MB")
    return line + (f", {accuracy_summary(record)}" if record.agreement is not None else "")


def accuracy_summary(record: BenchRecord) -> str:
    text = f"top-1 agrees with fp32 eager on {record.agreement:.1f}% of images"
    if record.top1 is not None:
        text += f"; top-1 {record.top1_fp32:.2f}% -> {record.top1:.2f}% ({record.top1 - record.top1_fp32:+.2f})"
    return text


def format_table(records: list[BenchRecord]) -> str:
    """A fixed-width table of the records, failures last with their reason."""
    header = ["model", "mode", "precision", "batch", "size", "params (M)", "GMACs", "p50 ms", "p90 ms", "img/s", "GFLOP/s",
              "peak MB"]
    rows = []
    for r in records:
        if r.error:
            continue
        mode = r.mode if r.mode == r.requested_mode else f"{r.mode} (for {r.requested_mode})"
        rows.append([r.model, mode, r.precision, str(r.batch_size), str(r.img_size), f"{r.params / 1e6:.2f}", f"{r.macs / 1e9:.3f}",
                     f"{r.latency_ms_p50:.2f}", f"{r.latency_ms_p90:.2f}", f"{r.throughput_img_s:.1f}",
                     f"{r.gflops_s:.1f}", f"{r.peak_mem_mb:.0f}"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    for r in records:
        if r.error:
            lines.append(f"{r.model} {r.requested_mode} batch {r.batch_size}: FAILED: {r.error}")
    notes = sorted({f"{r.requested_mode} -> {r.mode}: {r.fallback_reason}" for r in records if r.fallback_reason})
    lines += [f"note: {n}" for n in notes]
    lines += sorted({f"{r.mode} {r.precision} {r.model}: {accuracy_summary(r)}" for r in records
                     if r.agreement is not None and r.choice is None})
    lines += sorted({f"best {r.model} batch {r.batch_size}: {r.choice}" for r in records if r.choice})
    return "\n".join(lines)


def write_csv(records: list[BenchRecord], path: str | Path) -> None:
    import csv

    from ..weights.io import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=BenchRecord.columns())
            writer.writeheader()
            for record in records:
                writer.writerow(record.to_dict())

    atomic_write(path, write)
