"""Evaluate a weight file on an image folder: the library side of `resnets eval`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data.build import build_dataset
from .data.loader import build_loader
from .data.transforms import build_eval_transform
from .evaluate import label_map, load_label_sets, normaliser, run_accuracy
from .weights.resolve import model_from_weights


@dataclass
class EvalSettings:
    weights: str | None
    """A weight file; None with `pretrained`."""
    data: str
    model: str | None = None
    split: str = "val"
    img_size: int | None = None
    crop_pct: float | None = None
    interpolation: str | None = None
    batch_size: int = 64
    workers: int = 2
    mode: str = "eager"
    precision: str | None = None
    """fp32/bf16/fp16/int8 (None: fp32 for a named mode; for "best", any precision native here)."""
    calib: str | None = None
    """Image folder: int8 calibration and best's check set."""
    allow_int8: bool = False
    int8_val: str | None = None
    real_labels: str | None = None
    strict: bool = False
    device: str = "cpu"
    pretrained: str | None = None
    """A published tag instead of a file (TAG with `model`, or MODEL.TAG): see resnets.weights.hub."""


def _split_dataset(data: str, split: str, transform, strict: bool):
    root = Path(data)
    if root.is_dir() and not (root / split).is_dir() and any(p.is_dir() for p in root.iterdir()):
        return build_dataset(str(root.parent), root.name, transform, strict=strict)  # DIR is the split itself
    return build_dataset(data, split, transform, strict=strict)


def evaluate_folder(settings: EvalSettings, *, verbose: bool = False) -> dict[str, Any]:
    from .inference.best import BestOptions
    from .inference.modes import prepare

    model = model_from_weights(settings.weights, settings.model, pretrained=settings.pretrained)
    config = model.config
    img_size = settings.img_size or config.eval_size
    crop_pct = settings.crop_pct or config.crop_pct
    interpolation = settings.interpolation or config.interpolation
    dataset = _split_dataset(settings.data, settings.split, build_eval_transform(img_size, crop_pct, interpolation),
                             settings.strict)
    mapping = label_map(list(dataset.classes), getattr(model, "class_names", None), config.num_classes)
    label_sets = files = None
    if settings.real_labels:
        files = [dataset.sample_name(i) for i in range(len(dataset))]
        label_sets = load_label_sets(settings.real_labels, files)
    loader = build_loader(dataset, batch_size=settings.batch_size, sampler=list(range(len(dataset))),
                          num_workers=settings.workers)
    best = BestOptions(calib=settings.calib, allow_int8=settings.allow_int8, int8_val=settings.int8_val)
    runner = prepare(model, settings.mode, img_size=img_size, batch_size=settings.batch_size,
                     precision=settings.precision, device=settings.device, verbose=verbose, calib=settings.calib,
                     best=best)
    skipped: list[str] = []
    acc = run_accuracy(runner, loader, config.num_classes, normaliser(config, settings.device),
                       label_sets=label_sets, sample_names=files, label_map=mapping, on_skipped=skipped.extend)
    per_class = {}
    if label_sets is None:  # keyed by the folder's class names, whichever output each maps to
        values = acc.per_class()
        for name, label in zip(dataset.classes, mapping.tolist(), strict=True):
            per_class[name] = values[label]
    return {
        "weights": str(settings.weights) if settings.weights is not None else None,
        "pretrained": settings.pretrained, "data": settings.data, "split": settings.split, "n": acc.n,
        "top1": acc.top(1), "top5": acc.top(5), "per_class": per_class, "img_size": img_size,
        "crop_pct": crop_pct, "interpolation": interpolation, "mode": runner.mode, "backend": runner.backend,
        "precision": runner.precision, "agreement": runner.agreement, "notes": runner.notes,
        "selection": runner.selection.to_dict() if runner.selection is not None else None,
        "real_labels": settings.real_labels, "skipped_images": len(skipped), "skipped_files": skipped[:100],
    }


__all__ = ["EvalSettings", "evaluate_folder"]
