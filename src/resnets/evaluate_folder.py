"""Evaluate a weight file on an image folder: the library side of `resnets eval`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data.build import build_dataset
from .data.loader import BatchPreprocessor, build_loader
from .data.transforms import build_eval_transform
from .errors import ResnetsError
from .evaluate import Accuracy, load_label_sets
from .weights.resolve import model_from_weights


@dataclass
class EvalSettings:
    weights: str
    data: str
    model: str | None = None
    split: str = "val"
    img_size: int | None = None
    crop_pct: float | None = None
    interpolation: str | None = None
    batch_size: int = 64
    workers: int = 2
    mode: str = "eager"
    real_labels: str | None = None
    strict: bool = False
    device: str = "cpu"




def _split_dataset(data: str, split: str, transform, strict: bool):
    root = Path(data)
    if root.is_dir() and not (root / split).is_dir() and any(p.is_dir() for p in root.iterdir()):
        return build_dataset(str(root.parent), root.name, transform, strict=strict)  # DIR is the split itself
    return build_dataset(data, split, transform, strict=strict)


def _label_map(dataset_classes: list[str], model_classes: list[str] | None, num_outputs: int) -> torch.Tensor:
    """Dataset label -> model output index (by class name when the weights carry names)."""
    if model_classes:
        index = {name: i for i, name in enumerate(model_classes)}
        unknown = [c for c in dataset_classes if c not in index]
        if unknown:
            raise ResnetsError(f"{len(unknown)} data class(es) are not among the model's classes: "
                               f"{', '.join(unknown[:6])}")
        return torch.tensor([index[c] for c in dataset_classes])
    if len(dataset_classes) != num_outputs:
        raise ResnetsError(f"the data has {len(dataset_classes)} classes but the model has {num_outputs} outputs "
                           "and its weights carry no class names")
    return torch.arange(num_outputs)


def evaluate_folder(settings: EvalSettings, *, verbose: bool = False) -> dict[str, Any]:
    from .inference.modes import prepare

    model = model_from_weights(settings.weights, settings.model)
    config = model.config
    img_size = settings.img_size or config.eval_size
    crop_pct = settings.crop_pct or config.crop_pct
    interpolation = settings.interpolation or config.interpolation
    dataset = _split_dataset(settings.data, settings.split, build_eval_transform(img_size, crop_pct, interpolation),
                             settings.strict)
    label_map = _label_map(list(dataset.classes), getattr(model, "class_names", None), config.num_classes)
    label_sets = files = None
    if settings.real_labels:
        files = [dataset.sample_name(i) for i in range(len(dataset))]
        label_sets = load_label_sets(settings.real_labels, files)
    loader = build_loader(dataset, batch_size=settings.batch_size, sampler=list(range(len(dataset))),
                          num_workers=settings.workers)
    runner = prepare(model, settings.mode, img_size=img_size, batch_size=settings.batch_size,
                     device=settings.device, verbose=verbose)
    normalise = BatchPreprocessor(config.mean, config.std, device=torch.device(settings.device))
    acc = Accuracy(config.num_classes)
    skipped: list[str] = []
    start = 0  # batches are consecutive chunks of the sequential sampler
    with torch.inference_mode():
        for batch in loader:
            skipped.extend(batch.skipped)
            logits = runner(normalise(batch.images)).float().cpu()
            if label_sets is not None and files is not None:
                chunk = range(start, min(start + settings.batch_size, len(files)))
                gone = set(batch.skipped)
                kept = [i for i in chunk if files[i] not in gone]
                acc.update_label_sets(logits, [label_sets[i] for i in kept])
            else:
                acc.update(logits, label_map[batch.targets])
            start += settings.batch_size
    names = list(getattr(model, "class_names", None) or dataset.classes)
    per_class = {}
    if label_sets is None:
        values = acc.per_class()
        for label in label_map.tolist():
            per_class[names[label] if label < len(names) else str(label)] = values[label]
    return {
        "weights": str(settings.weights), "data": settings.data, "split": settings.split, "n": acc.n,
        "top1": acc.top(1), "top5": acc.top(5), "per_class": per_class, "img_size": img_size,
        "crop_pct": crop_pct, "interpolation": interpolation, "mode": runner.mode,
        "real_labels": settings.real_labels, "skipped_images": len(skipped), "skipped_files": skipped[:100],
    }
