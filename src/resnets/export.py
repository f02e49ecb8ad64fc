"""Export a model to ONNX, OpenVINO IR or TorchScript, load the file back and check it against eager PyTorch.

The exported graph is the BN-folded model (inference/fuse.py): smaller, and runtimes that do not fold
BN themselves run it faster. The batch dimension is dynamic in every format (with `dynamic_size`, height
and width too, for ONNX and OpenVINO); the parity check runs batches of 2 and 3 to prove it (and, with
`dynamic_size`, two image sizes). int8 files (ONNX Runtime QDQ or OpenVINO/NNCF) change the outputs:
instead of the 1e-4 parity they get an accuracy report against fp32 eager on an image folder.
"""

from __future__ import annotations

import copy
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import ResnetsError, unknown
from .inference.fuse import fuse_model
from .inference.onnx_backend import (
    INPUT_NAME,
    check_size,
    export_onnx,
    first_line,
    onnx_missing,
    onnx_session,
    require_onnx,
    session_forward,
)
from .inference.openvino_backend import openvino_missing
from .models.resnet import MIN_INPUT_SIZE, ResNet
from .weights.io import atomic_write

FORMATS = ("onnx", "openvino", "torchscript")
EXPORT_PRECISIONS = {"onnx": ("fp32", "int8"), "openvino": ("fp32", "int8"), "torchscript": ("fp32",)}
PARITY_BATCHES = (2, 3)
PARITY_TOLERANCE = 1e-4
"""Largest max |difference| vs eager, relative to the logits' scale (max(1, max |logit|)), called parity."""
INT8_MAX_TOP1_DROP = 0.5
"""An int8 export whose top-1 on a labelled folder drops by more than this (points) is reported as failing."""


def export_torchscript(model: nn.Module, path: str | Path, *, img_size: int, in_chans: int = 3) -> None:
    """Trace `model` to TorchScript. Convolutions and the global pool trace shape-free, so batch stays dynamic."""
    check_size(img_size)
    example = torch.randn(2, in_chans, img_size, img_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export, still works
        traced = torch.jit.trace(model, example, check_trace=False)
        atomic_write(path, lambda tmp: torch.jit.save(traced, tmp))


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - RuntimeError or zip errors
            raise ResnetsError(f"cannot load TorchScript file {path}: {first_line(exc)}") from None


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        hint = unknown("export format", fmt, FORMATS)
        raise ResnetsError(f"{hint}" if "did you mean" in str(hint) else
                           f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")


def check_request(fmt: str, precision: str, *, opset: int | None, dynamic_size: bool, calib: str | None,
                  out: str | Path | None = None) -> None:
    """Every usage error of an export request, before any weights are loaded."""
    check_format(fmt)
    if fmt == "openvino" and out is not None and Path(out).suffix != ".xml":
        raise ResnetsError(f"an OpenVINO IR file ends in .xml (the weights go to a .bin beside it), got {out}")
    if precision not in EXPORT_PRECISIONS[fmt]:
        raise ResnetsError(f"--format {fmt} exports {' or '.join(EXPORT_PRECISIONS[fmt])}, not {precision}")
    if fmt in ("onnx", "openvino"):
        require_onnx(runtime=fmt == "onnx" or precision == "int8")
    if fmt == "openvino":
        missing = openvino_missing(int8=precision == "int8")
        if missing:
            raise ResnetsError(f"OpenVINO export: {missing}")
    if opset is not None and fmt != "onnx":
        raise ResnetsError("--opset applies to --format onnx only")
    if dynamic_size and fmt == "torchscript":
        raise ResnetsError("--dynamic-size applies to onnx and openvino (TorchScript traces are size-free already)")
    if dynamic_size and precision == "int8":
        raise ResnetsError("--dynamic-size is for fp32 exports (int8 is calibrated at one image size)")
    if precision == "int8" and not calib:
        raise ResnetsError("an int8 export needs calibration images: --calib DIR")


@dataclass
class ExportReport:
    """What `export_model` wrote and how closely the exported file matches eager PyTorch."""

    path: str
    format: str
    img_size: int
    opset: int | None
    size_bytes: int
    seconds: float
    max_abs_diff: dict[int, float] = field(default_factory=dict)
    """Batch size -> max |exported - eager| over the logits of a random batch (fp32 exports)."""
    logit_scale: float = 1.0
    precision: str = "fp32"
    dynamic_size: bool = False
    size_diffs: dict[int, float] = field(default_factory=dict)
    """With `dynamic_size`: image size -> max |exported - eager| at that size."""
    files: list[str] = field(default_factory=list)
    accuracy: object | None = None
    """int8: a quantize.Int8Accuracy (agreement with fp32 eager, top-1 before/after on labelled folders)."""

    @property
    def parity_ok(self) -> bool:
        if self.precision == "int8":
            change = self.accuracy.top1_change if self.accuracy is not None else None
            return change is None or -change <= INT8_MAX_TOP1_DROP
        tolerance = PARITY_TOLERANCE * max(1.0, self.logit_scale)
        return all(d <= tolerance for d in [*self.max_abs_diff.values(), *self.size_diffs.values()])

    def summary(self) -> list[str]:
        size = "H, W" if self.dynamic_size else f"{self.img_size}, {self.img_size}"
        dynamic = "dynamic batch, height and width" if self.dynamic_size else "dynamic batch"
        lines = [f"wrote {', '.join(self.files) or self.path} ({self.format} {self.precision}, "
                 f"{self.size_bytes / 1e6:.1f} MB, {self.seconds:.1f} s, input (batch, 3, {size}), {dynamic}"
                 + (f", opset {self.opset})" if self.opset is not None else ")")]
        verdict = "OK" if self.parity_ok else "MISMATCH"
        if self.precision == "int8":
            accuracy = self.accuracy
            if accuracy.top1_change is None:
                lines.append(f"int8 accuracy vs fp32 eager: {accuracy.summary()} (no labels: class folders are "
                             "not the model's classes, so no top-1 check)")
            else:
                lines.append(f"int8 accuracy vs fp32 eager: {accuracy.summary()} -> "
                             f"{'OK' if self.parity_ok else 'TOO LARGE'} (top-1 may drop <= {INT8_MAX_TOP1_DROP})")
            return lines
        diffs = ", ".join(f"batch {b}: {d:.2e}" for b, d in self.max_abs_diff.items())
        if self.size_diffs:
            diffs += ", " + ", ".join(f"{s}x{s}: {d:.2e}" for s, d in self.size_diffs.items())
        lines.append(f"parity vs eager PyTorch, max |difference| of logits: {diffs} -> {verdict} "
                     f"(tolerance {PARITY_TOLERANCE:g} x max(1, max |logit| = {self.logit_scale:.3g}))")
        return lines


def _second_size(size: int) -> int:
    """Another size the network accepts for the dynamic-size check: 3/4 of `size`, at least the minimum."""
    return max(MIN_INPUT_SIZE, (size * 3 // 4) // 8 * 8)


def export_model(model: ResNet, path: str | Path, fmt: str, *, img_size: int | None = None,
                 opset: int | None = None, precision: str = "fp32", dynamic_size: bool = False,
                 calib: str | None = None, val: str | None = None) -> ExportReport:
    """Fold BN, export to `fmt`, load the file back and compare it with eager `model` on batches of 2 and 3
    (and a second image size with `dynamic_size`); int8 is calibrated on `calib` and its accuracy measured on
    `val` (default: the calib folder)."""
    check_request(fmt, precision, opset=opset, dynamic_size=dynamic_size, calib=calib, out=path)
    size = img_size or model.config.eval_size
    check_size(size)
    path = Path(path)
    start = time.perf_counter()
    on_cpu = all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())
    reference = model if on_cpu else copy.deepcopy(model).float().cpu()
    was_training = reference.training
    reference.eval()
    in_chans = model.config.in_chans
    used_opset: int | None = None
    files = [str(path)]
    if fmt == "torchscript":
        export_torchscript(fuse_model(reference), path, img_size=size, in_chans=in_chans)
        run = load_torchscript(path)
    elif fmt == "onnx" and precision == "fp32":
        used_opset = export_onnx(fuse_model(reference), path, img_size=size, opset=opset, in_chans=in_chans,
                                 dynamic_size=dynamic_size)
        run = session_forward(onnx_session(path))
    else:
        run, used_opset, files = _export_runtime(reference, path, fmt, precision, size, dynamic_size, calib)
    seconds = time.perf_counter() - start
    report = ExportReport(str(path), fmt, size, used_opset, sum(Path(f).stat().st_size for f in files), seconds,
                          precision=precision, dynamic_size=dynamic_size, files=files)
    if precision == "int8":
        from .inference.quantize import compare_int8

        report.accuracy = compare_int8(reference, run, val or calib, img_size=size)
    else:
        _parity(report, reference, run, in_chans, size, dynamic_size)
    reference.train(was_training)
    return report


def _parity(report: ExportReport, reference: nn.Module, run, in_chans: int, size: int, dynamic_size: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for batch in PARITY_BATCHES:
            images = torch.randn(batch, in_chans, size, size, generator=generator)
            expected = reference(images)
            report.max_abs_diff[batch] = (run(images) - expected).abs().max().item()
            report.logit_scale = max(report.logit_scale, expected.abs().max().item())
        if dynamic_size:
            for other in (_second_size(size), size + 32):
                images = torch.randn(2, in_chans, other, other + 32, generator=generator)  # non-square too
                expected = reference(images)
                report.size_diffs[other] = (run(images) - expected).abs().max().item()
                report.logit_scale = max(report.logit_scale, expected.abs().max().item())


def _export_runtime(reference: ResNet, path: Path, fmt: str, precision: str, size: int, dynamic_size: bool,
                    calib: str | None):
    """ONNX int8 or OpenVINO (fp32/int8): via an fp32 ONNX graph. Returns (forward, opset, files written)."""
    from .inference import modes

    in_chans = reference.config.in_chans
    with tempfile.TemporaryDirectory(prefix="resnets-export-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        opset = export_onnx(fuse_model(reference), fp32, img_size=size, in_chans=in_chans, dynamic_size=dynamic_size)
        calibration = None
        if precision == "int8":
            calibration = modes.calibration_batches(reference, calib, size)
        if fmt == "onnx":
            from .inference.quantize import quantize_onnx_int8

            data = quantize_onnx_int8(fp32.read_bytes(), calibration)
            atomic_write(path, lambda target: Path(target).write_bytes(data))
            return session_forward(onnx_session(path)), opset, [str(path)]
        from .inference import openvino_backend as ovb

        ov_model = ovb.read_onnx(fp32)
    if calibration is not None:
        ov_model = ovb.quantize_int8(ov_model, calibration, subset_size=sum(len(b) for b in calibration))
    written = ovb.save_ir(ov_model, path)
    compiled = ovb.compile_model(ovb.read_ir(path), precision)
    return ovb.compiled_forward(compiled), None, [str(p) for p in written]


__all__ = ["FORMATS", "INPUT_NAME", "ExportReport", "check_format", "check_request", "export_model",
           "export_onnx", "export_torchscript", "load_torchscript", "onnx_missing", "onnx_session"]
