"""Inference modes: the same network run eagerly, BN-folded, channels_last, compiled, by ONNX Runtime or by
OpenVINO, in fp32 or a reduced precision (bf16, fp16, int8) where the hardware has it.

`prepare(model, mode, precision=...)` returns an `InferenceRunner`: call it with a float batch
(N, 3, H, W) and get float32 logits. A mode that cannot run here (package missing, export or compile
failing, precision not offered by that backend) falls back to the next one in FALLBACK that offers the
precision, and says why (`runner.fallback_reason`, printed when `verbose`). fp32 modes compute the eager
model's function (the tests hold them to 1e-4); reduced precisions are checked by agreement instead.
`mode="best"` measures the candidates on this machine and keeps the fastest that agrees with fp32
eager (inference/best.py).
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ResnetsError, unknown
from ..hardware import EXACT, PRECISIONS, TORCH_DTYPES, capabilities, normalise_precision
from ..models.resnet import MIN_INPUT_SIZE, ResNet
from . import best as best_module
from .fuse import fuse_model
from .onnx_backend import export_onnx, first_line, onnx_missing, onnx_session, session_forward
from .openvino_backend import openvino_missing

MODES = ("eager", "fused", "channels_last", "compile", "onnx", "openvino")
CHOICES = (*MODES, "best")
"""What `prepare` accepts; `resnets bench` also takes "all"."""

BACKENDS = {"eager": "torch", "fused": "torch", "channels_last": "torch", "compile": "torch",
            "onnx": "onnxruntime", "openvino": "openvino"}
SUPPORTED_PRECISIONS = {
    **{mode: ("fp32", "bf16", "fp16") for mode in ("eager", "fused", "channels_last", "compile")},
    "onnx": ("fp32", "int8"),  # ONNX Runtime's CPU provider has no bf16/fp16 convolutions
    "openvino": ("fp32", "bf16", "fp16", "int8"),
}
UNSUPPORTED_WHY = {
    ("onnx", "bf16"): "ONNX Runtime's CPU provider has no bf16 convolutions",
    ("onnx", "fp16"): "ONNX Runtime's CPU provider has no fp16 convolutions",
}

FALLBACK = {"openvino": "onnx", "onnx": "channels_last", "compile": "channels_last", "channels_last": "fused",
            "fused": "eager"}
"""Where a mode that cannot run goes instead: the next fastest that needs nothing extra (skipping those that
do not offer the requested precision)."""

BEST_CANDIDATES = {
    # What `best` times, in order of preference between equally fast candidates (exact first). On CPU the
    # compile mode is left out: 10-50 s of compilation per model and shape, and it was not faster than
    # ONNX Runtime in fp32 nor than OpenVINO in bf16 (docs/benchmarks.md); `--mode compile` stays available.
    "cpu": (("onnx", "fp32"), ("openvino", "fp32"), ("channels_last", "fp32"),
            ("openvino", "bf16"), ("channels_last", "bf16"),
            ("openvino", "fp16"), ("channels_last", "fp16"),
            ("openvino", "int8"), ("onnx", "int8")),
    # Not measured by this project (no GPU machine was available to this work): compiled channels_last in
    # bf16/fp16 is the usual winner on CUDA; the measurement decides.
    "cuda": (("compile", "fp32"), ("channels_last", "fp32"), ("compile", "bf16"), ("channels_last", "bf16"),
             ("compile", "fp16"), ("channels_last", "fp16")),
}

COMPILE_OPTIONS: dict[str, object] = {"mode": None, "freezing": True}
"""torch.compile settings of the compile mode (compare with benchmarks/inference_vs_peers.py --ours compile
--compile-freezing on|off --compile-mode MODE)."""

RECOMPILE_LIMIT = 64
"""Compiled runners per process (models x shapes) before the compile mode falls back to channels_last."""

NUM_CALIB = 64
"""Calibration images for int8 (spread over the --calib folder)."""


class ModeUnavailable(Exception):
    """A mode cannot run on this machine/model; the message says why (internal: triggers a fallback)."""


@dataclass
class InferenceRunner:
    """A prepared model: call it with images (N, C, H, W), get float32 logits (no autograd)."""

    mode: str
    """The mode actually used, after any fallback (for "best": the one it chose)."""
    requested: str
    fallback_reason: str | None
    forward: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    dtype: torch.dtype
    in_chans: int = 3
    fixed_batch: int | None = None
    """Compiled graphs are specialised to one batch size: smaller batches are padded, larger ones split."""
    precision: str = "fp32"
    backend: str = "torch"
    notes: list[str] = field(default_factory=list)
    """Things the user should know (e.g. a precision this hardware only emulates)."""
    selection: best_module.Selection | None = None
    """For mode "best": every candidate's speed and agreement, and why the chosen one won."""

    @property
    def agreement(self) -> float | None:
        """% of the check set whose top-1 equals fp32 eager's (mode "best" only)."""
        return self.selection.chosen.agreement if self.selection is not None else None

    def describe(self) -> str:
        return f"{self.mode} {self.precision} ({self.backend})"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != self.in_chans:
            raise ResnetsError(f"expected images shaped (N, {self.in_chans}, H, W), got {tuple(images.shape)}")
        if min(images.shape[2:]) < MIN_INPUT_SIZE:
            raise ResnetsError(f"input {images.shape[2]}x{images.shape[3]} is too small: use at least "
                               f"{MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}")
        with torch.inference_mode():
            if self.fixed_batch is None:
                return self.forward(images).float()
            return torch.cat([self._padded(chunk) for chunk in images.split(self.fixed_batch)])

    def _padded(self, chunk: torch.Tensor) -> torch.Tensor:
        count = chunk.shape[0]
        if count < self.fixed_batch:
            pad = chunk.new_zeros((self.fixed_batch - count, *chunk.shape[1:]))
            chunk = torch.cat([chunk, pad])
        return self.forward(chunk)[:count].float()


# --- one builder per mode: (model, settings) -> forward function, or ModeUnavailable ------------------------


@dataclass(frozen=True)
class _Settings:
    img_size: int
    batch_size: int
    precision: str
    device: torch.device
    calib: str | None = None
    """Calibration image folder (int8 only)."""

    @property
    def dtype(self) -> torch.dtype:
        return TORCH_DTYPES.get(self.precision, torch.float32)


def _on(model: nn.Module, settings: _Settings) -> nn.Module:
    return model.to(device=settings.device, dtype=settings.dtype)


def _input(settings: _Settings, channels_last: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def convert(images: torch.Tensor) -> torch.Tensor:
        return images.to(device=settings.device, dtype=settings.dtype, memory_format=memory_format)

    return convert


def _build_eager(model: ResNet, settings: _Settings) -> Callable:
    params = next(model.parameters(), None)
    same = params is None or (params.device == settings.device and params.dtype == settings.dtype)
    net = model if same else _on(copy.deepcopy(model), settings)  # never move the caller's model
    convert = _input(settings)

    def forward(images: torch.Tensor) -> torch.Tensor:
        was_training = net.training
        net.eval()
        try:
            return net(convert(images))
        finally:
            net.train(was_training)

    return forward


def _build_fused(model: ResNet, settings: _Settings) -> Callable:
    net = _on(fuse_model(model), settings)  # fold in the model's own precision, then cast
    convert = _input(settings)
    return lambda images: net(convert(images))


def _build_channels_last(model: ResNet, settings: _Settings) -> Callable:
    net = _on(fuse_model(model), settings).to(memory_format=torch.channels_last)
    convert = _input(settings, channels_last=True)
    return lambda images: net(convert(images))


def _build_compile(model: ResNet, settings: _Settings) -> Callable:
    import logging

    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime" on CPU boxes
    net = _on(fuse_model(model), settings).to(memory_format=torch.channels_last)
    convert = _input(settings, channels_last=True)
    # One compile worker: no subprocess pool is left behind, and on a 2-core machine a pool gains little.
    inductor_patches = {"freezing": bool(COMPILE_OPTIONS["freezing"]), "compile_threads": 1}
    # Every runner compiles the same code object (ResNet.forward) for a new module: past dynamo's
    # recompile limit (8) it would silently run eagerly. Raise the limit, and fail loudly when it is hit.
    dynamo_patches = {"recompile_limit": RECOMPILE_LIMIT}
    compiled = torch.compile(net, mode=COMPILE_OPTIONS["mode"], dynamic=False)
    example = torch.zeros(settings.batch_size, model.config.in_chans, settings.img_size, settings.img_size)
    try:
        with inductor_config.patch(inductor_patches), dynamo_config.patch(
                {**dynamo_patches, "fail_on_recompile_limit_hit": True}), torch.inference_mode():
            compiled(convert(example))  # compilation happens here, on the first call
    except Exception as exc:  # inductor raises anything from C++ compiler errors to dynamo's
        if "recompile_limit" in str(exc):
            raise ModeUnavailable(f"this process already holds {RECOMPILE_LIMIT} compiled models/shapes "
                                  "(modes.RECOMPILE_LIMIT)") from None
        raise ModeUnavailable(f"torch.compile failed: {first_line(exc)}") from None

    def forward(images: torch.Tensor) -> torch.Tensor:
        with inductor_config.patch(inductor_patches), dynamo_config.patch(dynamo_patches):
            return compiled(convert(images))

    return forward


def _onnx_bytes(model: ResNet, img_size: int) -> bytes:
    """The BN-folded fp32 graph at `img_size` (dynamic batch), exported once per model, size and weights and
    shared by the onnx and openvino modes in every precision."""
    entries = _CACHE.setdefault(model, {})
    key = ("onnx-graph", img_size)
    fingerprint = _fingerprint(model)
    if key in entries and entries[key][0] == fingerprint:
        return entries[key][1]
    missing = onnx_missing(runtime=False)
    if missing:
        raise ModeUnavailable(missing)
    fused = fuse_model(model).float().cpu()
    try:
        with tempfile.TemporaryDirectory(prefix="resnets-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            export_onnx(fused, path, img_size=img_size, in_chans=model.config.in_chans)
            data = path.read_bytes()
    except ResnetsError as exc:
        raise ModeUnavailable(str(exc)) from None
    entries[key] = (fingerprint, data)
    return data


def _sized(forward: Callable, size: int, what: str) -> Callable:
    def checked(images: torch.Tensor) -> torch.Tensor:
        if images.shape[2] != size or images.shape[3] != size:  # the exported graph fixes H and W
            raise ResnetsError(f"this {what} runner was prepared for {size}x{size} images, got "
                               f"{images.shape[2]}x{images.shape[3]}: prepare it with img_size={images.shape[2]}")
        return forward(images)

    return checked


def calibration_batches(model: ResNet, folder: str, img_size: int, *, count: int = NUM_CALIB) -> list:
    """Up to `count` images of `folder` (spread over it), preprocessed for `model`, as float32 numpy batches."""
    from ..evaluate import file_batches, image_files

    files = image_files(folder, count)
    batches = [b.numpy() for b in file_batches(files, model.config, img_size=img_size, batch_size=8)]
    if not batches:
        raise ResnetsError(f"no readable image in {folder}")
    return batches


def _calibration(model: ResNet, settings: _Settings) -> list:
    if not settings.calib:
        raise ModeUnavailable("int8 needs calibration images: give an image folder (--calib DIR)")
    try:
        return calibration_batches(model, settings.calib, settings.img_size)
    except ResnetsError as exc:
        raise ModeUnavailable(f"int8 calibration: {exc}") from None


def _build_onnx(model: ResNet, settings: _Settings) -> Callable:
    missing = onnx_missing()
    if missing:
        raise ModeUnavailable(missing)
    graph = _onnx_bytes(model, settings.img_size)
    try:
        if settings.precision == "int8":
            from .quantize import quantize_onnx_int8

            graph = quantize_onnx_int8(graph, _calibration(model, settings))
        session = onnx_session(graph, device=str(settings.device))
    except ResnetsError as exc:
        raise ModeUnavailable(str(exc)) from None
    return _sized(session_forward(session, settings.device), settings.img_size, "ONNX")


def _build_openvino(model: ResNet, settings: _Settings) -> Callable:
    from . import openvino_backend as ovb

    missing = openvino_missing(int8=settings.precision == "int8")
    if missing:
        raise ModeUnavailable(missing)
    if settings.device.type != "cpu":
        raise ModeUnavailable("the openvino mode runs on the CPU (its plugin for Intel GPUs is not used here)")
    if not ovb.plugin_supports(settings.precision):
        raise ModeUnavailable(f"OpenVINO's CPU plugin offers no {settings.precision} on this CPU")
    graph = _onnx_bytes(model, settings.img_size)
    try:
        with tempfile.TemporaryDirectory(prefix="resnets-ov-") as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(graph)
            ov_model = ovb.read_onnx(path)
        if settings.precision == "int8":
            calibration = _calibration(model, settings)
            ov_model = ovb.quantize_int8(ov_model, calibration, subset_size=sum(len(b) for b in calibration))
        compiled = ovb.compile_model(ov_model, settings.precision)
    except ResnetsError as exc:
        raise ModeUnavailable(str(exc)) from None
    return _sized(ovb.compiled_forward(compiled, settings.device), settings.img_size, "OpenVINO")


BUILDERS: dict[str, Callable[[ResNet, _Settings], Callable]] = {
    "eager": _build_eager,
    "fused": _build_fused,
    "channels_last": _build_channels_last,
    "compile": _build_compile,
    "onnx": _build_onnx,
    "openvino": _build_openvino,
}
_CACHED_MODES = ("compile", "onnx", "openvino")  # those that take seconds to minutes to prepare

# model -> {key: (weights fingerprint, value)}; entries die with the model.
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[tuple, object]]] = weakref.WeakKeyDictionary()


_fingerprint = best_module.weights_fingerprint


def _build(model: ResNet, mode: str, settings: _Settings) -> Callable:
    if settings.precision not in SUPPORTED_PRECISIONS[mode]:
        raise ModeUnavailable(UNSUPPORTED_WHY.get((mode, settings.precision),
                                                  f"the {mode} mode runs {', '.join(SUPPORTED_PRECISIONS[mode])}"))
    if mode not in _CACHED_MODES:
        return BUILDERS[mode](model, settings)
    # ONNX and OpenVINO graphs have a dynamic batch: one build serves every batch size.
    key = (mode, settings if mode == "compile" else dataclasses.replace(settings, batch_size=0))
    entries = _CACHE.setdefault(model, {})
    fingerprint = _fingerprint(model)
    if key in entries and entries[key][0] == fingerprint:
        return entries[key][1]
    forward = BUILDERS[mode](model, settings)
    entries[key] = (fingerprint, forward)
    return forward


def candidate_modes(mode: str, precision: str = "fp32") -> list[str]:
    """The modes `prepare` will try for an explicit `mode` in `precision`, in order (the request, then its
    fallbacks that offer the precision)."""
    chain = [mode]
    while chain[-1] in FALLBACK:
        chain.append(FALLBACK[chain[-1]])
    return [chain[0]] + [m for m in chain[1:] if precision in SUPPORTED_PRECISIONS[m]]


def check_mode(mode: str, *, allow_all: bool = False) -> None:
    """Raise a ResnetsError naming the closest valid modes for an unknown `mode`."""
    choices = (*CHOICES, "all") if allow_all else CHOICES
    if mode == "all" and not allow_all:
        raise ResnetsError("mode 'all' is only for `resnets bench`; pick one of " + ", ".join(CHOICES))
    if mode not in choices:
        raise unknown("inference mode", mode, choices)


def _emulation_note(mode: str, precision: str, device: torch.device) -> str | None:
    if BACKENDS[mode] != "torch" or precision in EXACT:
        return None
    caps = capabilities(device)
    return None if caps.is_native(precision) else f"{caps.why_not(precision)} (running it because it was asked for)"


def prepare(model: ResNet, mode: str, *, img_size: int, batch_size: int = 16,
            precision: str | torch.dtype | None = None, dtype: torch.dtype | None = None,
            device: str | torch.device = "cpu", verbose: bool = True, calib: str | None = None,
            best: best_module.BestOptions | None = None) -> InferenceRunner:
    """Make `model` ready to run in `mode` (one of MODES, or "best") for `batch_size` images of `img_size`.

    `precision` (fp32, bf16, fp16, int8; `dtype` is the same as a torch dtype) defaults to fp32 for a named
    mode; for "best" it restricts the candidates (None: every precision native here; int8 only with
    `best.allow_int8`). int8 calibrates on `calib` (an image folder). The caller's model is never modified
    (fused/compiled/exported copies are made); compiled, ONNX and OpenVINO runners are cached per model
    and shape, and rebuilt when the weights change.
    """
    check_mode(mode)
    if precision is not None and dtype is not None and normalise_precision(precision) != normalise_precision(dtype):
        raise ResnetsError(f"precision {precision} and dtype {dtype} disagree: give one")
    chosen = precision if precision is not None else dtype
    precision = normalise_precision(chosen) if chosen is not None else None
    if img_size < MIN_INPUT_SIZE:
        raise ResnetsError(f"image size {img_size} is too small: use at least {MIN_INPUT_SIZE} (the total stride)")
    if batch_size < 1:
        raise ResnetsError(f"batch size must be >= 1, got {batch_size}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ResnetsError("device 'cuda' requested but CUDA is not available here")
    if mode == "best":
        options = dataclasses.replace(best or best_module.BestOptions(), precision=precision,
                                      calib=calib if calib is not None else (best.calib if best else None))
        return _prepare_best(model, img_size, batch_size, device, options, verbose)
    precision = precision or "fp32"
    if precision == "int8" and not calib:
        raise ResnetsError("int8 needs calibration images: give an image folder (--calib DIR)")
    if precision == "int8" and mode not in ("onnx", "openvino"):
        raise ResnetsError(f"int8 runs in the onnx or openvino mode, not {mode!r} (PyTorch modes run fp32, "
                           "bf16, fp16)")
    settings = _Settings(img_size, batch_size, precision, device, calib if precision == "int8" else None)
    reasons = []
    for candidate in candidate_modes(mode, precision):
        try:
            forward = _build(model, candidate, settings)
        except ModeUnavailable as exc:
            reasons.append(f"{candidate}: {exc}")
            continue
        reason = "; ".join(reasons) or None
        if reason and verbose:
            print(f"note: mode {mode!r} -> using {candidate!r} ({reason})", file=sys.stderr)
        runner = _runner(model, candidate, mode, reason, forward, settings)
        note = _emulation_note(candidate, precision, device)
        if note:
            runner.notes.append(note)
            if verbose:
                print(f"note: {note}", file=sys.stderr)
        return runner
    raise ResnetsError(f"no inference mode could run {precision}: {'; '.join(reasons)}")


def _runner(model: ResNet, mode: str, requested: str, reason: str | None, forward: Callable,
            settings: _Settings) -> InferenceRunner:
    return InferenceRunner(mode, requested, reason, forward, settings.device, settings.dtype, model.config.in_chans,
                           fixed_batch=settings.batch_size if mode == "compile" else None,
                           precision=settings.precision, backend=BACKENDS[mode])


def best_pairs(device: torch.device, options: best_module.BestOptions) -> tuple[list[tuple[str, str]], list[str]]:
    """(mode, precision) pairs `best` will time here, and one line for each pair left out, saying why."""
    caps = capabilities(device)
    pairs, left_out = [], []
    for mode, precision in BEST_CANDIDATES.get(device.type, BEST_CANDIDATES["cpu"]):
        if options.precision is not None and precision != options.precision:
            continue
        if not caps.is_native(precision):
            note = f"{precision}: {caps.why_not(precision)}"
            if note not in left_out:
                left_out.append(note)
            continue
        if precision == "int8":
            why = options.int8_ineligible()
            if why:
                if f"int8: {why}" not in left_out:
                    left_out.append(f"int8: {why}")
                continue
        missing = onnx_missing() if mode == "onnx" else (
            openvino_missing(int8=precision == "int8") if mode == "openvino" else None)
        if missing:
            left_out.append(f"{mode} {precision}: {missing}")
            continue
        pairs.append((mode, precision))
    return pairs, left_out


def _prepare_best(model: ResNet, img_size: int, batch_size: int, device: torch.device,
                  options: best_module.BestOptions, verbose: bool) -> InferenceRunner:
    pairs, left_out = best_pairs(device, options)
    if not pairs:
        raise ResnetsError("best has no candidate to run here: " + "; ".join(left_out))

    def build(mode: str, precision: str) -> InferenceRunner:
        settings = _Settings(img_size, batch_size, precision, device, options.calib if precision == "int8" else None)
        try:
            return _runner(model, mode, "best", None, _build(model, mode, settings), settings)
        except ModeUnavailable as exc:
            raise ResnetsError(str(exc)) from None

    reference = _build_eager(model, _Settings(img_size, batch_size, "fp32", device))
    selection = best_module.choose(pairs, build, reference, model, img_size=img_size, batch_size=batch_size,
                                   options=options, left_out=left_out, device=device)
    if verbose:
        for line in selection.lines():
            print(line, file=sys.stderr)
    runner = selection.chosen.forward  # the InferenceRunner `build` made
    runner.selection = selection
    return runner


__all__ = ["BACKENDS", "BEST_CANDIDATES", "CHOICES", "MODES", "PRECISIONS", "InferenceRunner", "prepare"]
