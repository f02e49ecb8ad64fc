"""OpenVINO: the BN-folded model converted from its ONNX graph, compiled for the CPU plugin in fp32, bf16 or
fp16 (the plugin's inference-precision hint), or quantised to int8 with NNCF (static, calibrated on images).

Conversion goes through our ONNX export rather than OpenVINO's PyTorch frontend: the frontend traces the
model again and took 22 s for ResNet-50 on 2 cores, against 5.7 s for the ONNX export plus 1.2 s for
OpenVINO to read it; and the graph is then the one `resnets export --format onnx` checks.
Threads: INFERENCE_NUM_THREADS = the run's thread count (torch's, set by --threads), one stream
(PERFORMANCE_HINT=LATENCY: every thread works on the one batch in flight, as the other modes do).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from ..errors import ResnetsError
from .onnx_backend import INPUT_NAME, first_line

INSTALL_HINT = "pip install 'resnets[openvino]'"
OV_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
"""Our precision names -> OpenVINO's INFERENCE_PRECISION_HINT values."""
OV_CAPABILITY = {"fp32": "FP32", "bf16": "BF16", "fp16": "FP16", "int8": "INT8"}


def openvino_missing(*, int8: bool = False) -> str | None:
    """Why the OpenVINO backend (and, with `int8`, NNCF) cannot run here, or None when it can."""
    names = ["openvino"] + (["nncf"] if int8 else [])
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed ({INSTALL_HINT})"
    return None


def _core():
    import openvino as ov

    return ov.Core()


def read_onnx(path: str | Path):
    """An openvino.Model from an ONNX file; a graph OpenVINO cannot convert is a one-line ResnetsError."""
    import openvino as ov

    try:
        return ov.convert_model(str(path))
    except Exception as exc:  # OpenVINO raises its own OpConversionFailure / GeneralFailure
        raise ResnetsError(f"OpenVINO cannot convert this model: {first_line(exc)}") from None


def plugin_supports(precision: str) -> bool:
    """Whether OpenVINO's CPU plugin lists `precision` among its optimisation capabilities on this CPU."""
    return OV_CAPABILITY[precision] in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def compile_model(model, precision: str, *, threads: int | None = None):
    """Compile `model` for the CPU plugin. fp32 is asked for explicitly: the plugin's default hint is bf16
    wherever the CPU has it (it is on this project's AVX512-BF16 machine). int8 models carry their own
    quantised ops; their remaining float ops run in fp32."""
    config = {"INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()), "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": OV_PRECISIONS.get(precision, "f32")}
    try:
        compiled = _core().compile_model(model, "CPU", config)
    except Exception as exc:
        raise ResnetsError(f"OpenVINO cannot compile this model: {first_line(exc)}") from None
    import openvino as ov

    used = compiled.get_property("INFERENCE_PRECISION_HINT")
    expected = {"bf16": ov.Type.bf16, "fp16": ov.Type.f16}.get(precision, ov.Type.f32)
    if used != expected:  # the plugin silently runs fp32 where the CPU lacks the precision
        raise ResnetsError(f"OpenVINO's CPU plugin runs {used.get_type_name()} here, not {precision}: this CPU has "
                           f"no native {precision}")
    return compiled


def compiled_forward(compiled, device: torch.device | str = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """images -> float32 logits through one infer request (reused: OpenVINO keeps its buffers)."""
    request = compiled.create_infer_request()

    def forward(images: torch.Tensor) -> torch.Tensor:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        result = request.infer({INPUT_NAME: array})
        return torch.from_numpy(np.array(result[0], dtype=np.float32, copy=True)).to(device)

    return forward


def quantize_int8(model, calibration: Iterable[np.ndarray], *, subset_size: int):
    """NNCF post-training static quantisation (its default mixed preset: symmetric int8 weights per channel,
    activations calibrated on `calibration` batches, fast bias correction)."""
    import logging

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime" when nncf loads
    import nncf

    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its progress bars would land in the commands' output
            return nncf.quantize(model, nncf.Dataset(list(calibration)), subset_size=subset_size)
    except Exception as exc:
        raise ResnetsError(f"NNCF could not quantise this model: {first_line(exc)}") from None


def save_ir(model, path: str | Path) -> list[Path]:
    """Write OpenVINO IR (`path` .xml + the .bin beside it) atomically: both files appear, or neither.

    Weights stay fp32 (OpenVINO's default would compress them to fp16, which breaks the parity check).
    """
    import openvino as ov

    path = Path(path)
    if path.suffix != ".xml":
        raise ResnetsError(f"an OpenVINO IR file ends in .xml (the weights go to a .bin beside it), got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".resnets-ir-", dir=path.parent))
    try:
        ov.save_model(model, str(tmp / path.name), compress_to_fp16=False)
        bin_path = path.with_suffix(".bin")
        (tmp / path.name).with_suffix(".bin").replace(bin_path)
        (tmp / path.name).replace(path)  # the .xml last: it names the .bin
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [path, bin_path]


def read_ir(path: str | Path):
    try:
        return _core().read_model(str(path))
    except Exception as exc:
        raise ResnetsError(f"cannot load OpenVINO IR {path}: {first_line(exc)}") from None
