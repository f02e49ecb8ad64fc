"""int8 by ONNX Runtime's post-training static quantisation, and what int8 (either backend) costs in accuracy.

onnxruntime.quantization: QDQ format, per-channel int8 weights, uint8 activations, MinMax ranges from
calibration batches (images preprocessed exactly like evaluation). OpenVINO's int8 (NNCF) is in
openvino_backend.py. int8 changes the model's outputs: `compare_int8` reports the share of images whose
top-1 class is unchanged from fp32 eager and, on a folder whose class folders are named like the model's
classes, the top-1 before and after.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ResnetsError
from ..models.resnet import ResNet
from .onnx_backend import INPUT_NAME, first_line, onnx_missing


def quantize_onnx_int8(graph: bytes, calibration: list[np.ndarray]) -> bytes:
    """The int8 QDQ version of an fp32 ONNX graph, its ranges calibrated on `calibration` batches."""
    missing = onnx_missing()
    if missing:
        raise ResnetsError(f"int8 with ONNX Runtime needs onnxruntime: {missing}")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(calibration)

        def get_next(self) -> dict | None:
            array = next(self._items, None)
            return None if array is None else {INPUT_NAME: array}

    with tempfile.TemporaryDirectory(prefix="resnets-int8-") as tmp:
        fp32, prepared, out = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        fp32.write_bytes(graph)
        try:
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        except Exception as exc:  # onnxruntime raises its own types
            raise ResnetsError(f"ONNX Runtime could not quantise this model: {first_line(exc)}") from None
        return out.read_bytes()


@dataclass
class Int8Accuracy:
    images: int
    agreement: float
    """Share (%) of images whose int8 top-1 class equals the fp32 top-1 class."""
    folder: str = ""
    top1_fp32: float | None = None
    top1_int8: float | None = None
    """Top-1 against the folder labels, when the class folders are named like the model's classes."""

    @property
    def top1_change(self) -> float | None:
        return None if self.top1_int8 is None or self.top1_fp32 is None else self.top1_int8 - self.top1_fp32

    def summary(self) -> str:
        text = f"top-1 agrees with fp32 on {self.agreement:.1f}% of {self.images} images of {self.folder}"
        if self.top1_change is not None:
            text += f"; top-1 {self.top1_fp32:.2f}% -> {self.top1_int8:.2f}% ({self.top1_change:+.2f})"
        return text


def compare_int8(model: ResNet, int8, val_dir: str | Path, *, img_size: int, limit: int = 500,
                 batch_size: int = 16) -> Int8Accuracy:
    """fp32 eager vs `int8` (a callable on normalised batches) on up to `limit` images of `val_dir`; class
    folders named like the model's classes give labels."""
    import torch

    from ..evaluate import image_files, image_loader, logits_loop, normaliser
    from .modes import prepare

    fp32 = prepare(model, "eager", img_size=img_size, batch_size=batch_size, verbose=False)
    names = getattr(model, "class_names", None) or []
    index = {name: i for i, name in enumerate(names)}
    files = image_files(val_dir, limit)
    targets = [index.get(p.parent.name, -1) for p in files]
    labelled = all(t >= 0 for t in targets)
    loader = image_loader(files, model.config, img_size=img_size, batch_size=batch_size, targets=targets)
    prepare_batch = normaliser(model.config)
    same = correct_fp32 = correct_int8 = count = 0

    def both(images: torch.Tensor) -> torch.Tensor:
        return torch.stack([fp32(images), int8(images)])

    for logits, batch in logits_loop(both, loader, prepare_batch):
        if not len(batch.targets):
            continue
        top_fp32, top_int8 = logits[0].argmax(1), logits[1].argmax(1)
        same += int((top_fp32 == top_int8).sum())
        correct_fp32 += int((top_fp32 == batch.targets).sum())
        correct_int8 += int((top_int8 == batch.targets).sum())
        count += len(batch.targets)
    if count == 0:
        raise ResnetsError(f"no readable image in {val_dir}")
    result = Int8Accuracy(count, 100 * same / count, str(val_dir))
    if labelled:
        result.top1_fp32, result.top1_int8 = 100 * correct_fp32 / count, 100 * correct_int8 / count
    return result
