"""ONNX: write the BN-folded graph (torch.onnx) and run it with ONNX Runtime.

Used by the `onnx` and `openvino` inference modes (OpenVINO reads the same ONNX graph), by int8
quantisation and by `resnets export`. It lives in `inference` so that `export` depends on inference and
never the other way round.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import ResnetsError
from ..models.resnet import MIN_INPUT_SIZE
from ..weights.io import atomic_write

INSTALL_HINT = "pip install 'resnets[export]'"
OPSET_RANGE = (7, 23)
"""Opsets torch 2.14 can write (torch.onnx._constants ONNX_MIN_OPSET / ONNX_MAX_OPSET)."""
TORCHSCRIPT_EXPORTER_MAX_OPSET = 20  # torch.onnx._constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
DYNAMO_EXPORTER_MIN_OPSET = 18  # the torch.export-based exporter writes 18+ natively
INPUT_NAME, OUTPUT_NAME = "images", "logits"


def onnx_missing(*, runtime: bool = True) -> str | None:
    """Why ONNX export (and, with `runtime`, ONNX Runtime) cannot run here, or None when it can."""
    names = ("onnx", "onnxruntime") if runtime else ("onnx",)
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed ({INSTALL_HINT})"
    return None


def require_onnx(*, runtime: bool = True) -> None:
    reason = onnx_missing(runtime=runtime)
    if reason:
        raise ResnetsError(f"ONNX export needs the onnx packages: {reason}")


def check_size(img_size: int) -> None:
    if img_size < MIN_INPUT_SIZE:
        raise ResnetsError(f"image size {img_size} is too small: use at least {MIN_INPUT_SIZE} (the total stride)")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (exporters and runtimes write pages)."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def export_onnx(model: nn.Module, path: str | Path, *, img_size: int, opset: int | None = None,
                in_chans: int = 3, dynamic_size: bool = False) -> int:
    """Write `model` (in eval mode, float32, CPU) as ONNX with a dynamic batch axis; returns the opset.

    `dynamic_size` makes height and width dynamic too (the graph then runs at any size the network
    accepts). The TorchScript-based exporter is tried first: on ResNets it exports ~4x faster than the
    torch.export-based one (3.5 s vs 14 s for ResNet-50 on 2 cores) and ONNX Runtime runs its graph as
    fast. The torch.export-based exporter is the fallback (and the only one once PyTorch drops the old one).
    """
    require_onnx(runtime=False)
    check_size(img_size)
    if opset is not None and not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        raise ResnetsError(f"opset {opset} is not supported: choose {OPSET_RANGE[0]} to {OPSET_RANGE[1]}")
    exporters = [name for name, fits in (("torchscript", opset is None or opset <= TORCHSCRIPT_EXPORTER_MAX_OPSET),
                                         ("dynamo", opset is None or opset >= DYNAMO_EXPORTER_MIN_OPSET)) if fits]
    example = torch.randn(2, in_chans, img_size, img_size)
    errors = []
    for exporter in exporters:
        try:
            atomic_write(path, lambda tmp, e=exporter: _export_with(e, model, example, tmp, opset, dynamic_size))
        except Exception as exc:  # exporters raise many types; report them all if every one fails
            errors.append(f"{exporter} exporter: {first_line(exc)}")
            continue
        written = onnx_opset(path)
        if opset is None or written == opset:
            return written
        errors.append(f"{exporter} exporter wrote opset {written}, not {opset}")
    raise ResnetsError("ONNX export failed: " + "; ".join(errors))


def _export_with(exporter: str, model: nn.Module, example: torch.Tensor, path: str, opset: int | None,
                 dynamic_size: bool) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns that it is deprecated
        if exporter == "torchscript":
            axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
            torch.onnx.export(model, (example,), path, dynamo=False, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset or 17,
                              dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: {0: "batch"}})
        else:
            shapes = {0: torch.export.Dim("batch", min=1)}
            if dynamic_size:
                # H and W as multiples of the total stride (32): what torch.export can prove the convs accept.
                shapes[2] = 32 * torch.export.Dim("h32", min=1, max=256)
                shapes[3] = 32 * torch.export.Dim("w32", min=1, max=256)
            torch.onnx.export(model, (example,), path, dynamo=True, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset, external_data=False,
                              dynamic_shapes={"x": shapes}, verbose=False)


def onnx_opset(path: str | Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), -1)


def onnx_session(path_or_bytes: str | Path | bytes, *, threads: int | None = None, device: str = "cpu"):
    """An ONNX Runtime session with all graph optimisations, `threads` intra-op threads (default: torch's)."""
    require_onnx()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ResnetsError("onnxruntime has no CUDA provider here (install onnxruntime-gpu)")
        providers.insert(0, "CUDAExecutionProvider")
    source = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    try:
        return ort.InferenceSession(source, options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        name = "the ONNX model" if isinstance(source, bytes) else source
        raise ResnetsError(f"cannot load {name}: {first_line(exc)}") from None


def session_forward(session, device: torch.device | str = "cpu"):
    """images (N, C, H, W) -> float32 logits on `device`, through an ONNX Runtime session."""

    def forward(images: torch.Tensor) -> torch.Tensor:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(session.run(None, {INPUT_NAME: array})[0]).to(device)

    return forward
