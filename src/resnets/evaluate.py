"""The one evaluation loop (training's validation, `resnets eval`, `resnets predict`, the accuracy checks of
`best` and int8), top-k / per-class accuracy and ReaL-style label sets.

`logits_loop` runs a predictor over batches of uint8 images (as the data loader yields them) normalised
by a `BatchPreprocessor`; `run_accuracy` counts hits on top of it. `image_loader` makes such batches from
a list of image files, so predicting on loose files and evaluating a folder preprocess identically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .data.datasets import IMAGE_EXTENSIONS, ImageDataset
from .data.imagenet_classes import NUM_IMAGENET_CLASSES, imagenet_wnids
from .data.loader import BatchPreprocessor, build_loader
from .data.preprocess import load_image
from .data.transforms import build_eval_transform
from .errors import ResnetsError
from .models.config import ResNetConfig


@dataclass
class Accuracy:
    """Running top-1/top-5 counts; `merge` sums counts from other ranks or batches."""

    num_classes: int
    topk: tuple[int, ...] = (1, 5)
    correct: dict[int, int] = field(default_factory=dict)
    n: int = 0
    class_correct: list[int] = field(default_factory=list)
    class_total: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.correct = {k: 0 for k in self.topk}
        self.class_correct = [0] * self.num_classes
        self.class_total = [0] * self.num_classes

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Count hits for integer targets (N,)."""
        k_max = min(max(self.topk), logits.shape[1])
        top = logits.float().topk(k_max, dim=1).indices
        hits = top.eq(targets.view(-1, 1))
        for k in self.topk:
            self.correct[k] += int(hits[:, :k].any(dim=1).sum())
        top1 = hits[:, 0]
        for label, hit in zip(targets.tolist(), top1.tolist(), strict=True):
            self.class_total[label] += 1
            self.class_correct[label] += int(hit)
        self.n += targets.numel()

    def update_label_sets(self, logits: torch.Tensor, label_sets: Sequence[Sequence[int]]) -> None:
        """ReaL rule: a top-k hit counts if any of the image's labels is in the top k; empty sets are left out."""
        k_max = min(max(self.topk), logits.shape[1])
        top = logits.float().topk(k_max, dim=1).indices.tolist()
        for predictions, labels in zip(top, label_sets, strict=True):
            if not labels:
                continue
            allowed = set(labels)
            for k in self.topk:
                self.correct[k] += int(any(p in allowed for p in predictions[:k]))
            self.n += 1

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.n, *self.correct.values(), *self.class_correct, *self.class_total],
                            dtype=torch.float64)

    def load_tensor(self, values: torch.Tensor) -> None:
        vals = [int(v) for v in values.tolist()]
        self.n = vals[0]
        ks = len(self.topk)
        self.correct = dict(zip(self.topk, vals[1:1 + ks], strict=True))
        c = self.num_classes
        self.class_correct = vals[1 + ks:1 + ks + c]
        self.class_total = vals[1 + ks + c:1 + ks + 2 * c]

    def top(self, k: int) -> float:
        return 100.0 * self.correct[k] / self.n if self.n else 0.0

    def per_class(self) -> list[float | None]:
        return [100.0 * c / t if t else None for c, t in zip(self.class_correct, self.class_total, strict=True)]


def logits_loop(predict: Callable[[torch.Tensor], torch.Tensor], batches: Iterable,
                prepare: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[tuple[torch.Tensor, Sequence]]:
    """(float32 CPU logits, batch) for every batch of (uint8 images, targets[, skipped names]).

    A batch with no images (all unreadable) is yielded with empty logits, so callers still see its skips.
    """
    with torch.inference_mode():
        for batch in batches:
            images = batch[0]
            if len(images) == 0:
                yield torch.empty(0, 0), batch
                continue
            yield predict(prepare(images)).float().cpu(), batch


def run_accuracy(predict: Callable[[torch.Tensor], torch.Tensor], batches: Iterable, num_classes: int,
                 prepare: Callable[[torch.Tensor], torch.Tensor], *,
                 label_sets: Sequence[Sequence[int]] | None = None,
                 on_skipped: Callable[[list[str]], None] | None = None,
                 label_map: torch.Tensor | None = None,
                 sample_names: Sequence[str] | None = None) -> Accuracy:
    """Accuracy of `predict` over batches of (uint8 images, targets[, skipped names]); `prepare` normalises.

    `label_map` maps dataset labels to model outputs (when the classes are matched by name). With
    `label_sets` (one per sample, in dataset order) batches must come in dataset order and targets are
    ignored; `sample_names` (in the same order) lets unreadable samples be skipped without shifting the
    label sets of the rest.
    """
    acc = Accuracy(num_classes)
    cursor = 0  # position in dataset order of the batch's first sample
    for logits, batch in logits_loop(predict, batches, prepare):
        targets = batch[1]
        skipped = list(batch[2]) if len(batch) > 2 else []
        if on_skipped is not None and len(batch) > 2:
            on_skipped(batch[2])
        if label_sets is not None:
            span = len(targets) + (len(skipped) if sample_names is not None else 0)
            positions = range(cursor, cursor + span)
            if sample_names is not None and skipped:
                gone = set(skipped)
                positions = [i for i in positions if sample_names[i] not in gone]
            if len(targets):
                acc.update_label_sets(logits, [label_sets[i] for i in positions])
            cursor += span
        elif len(targets):
            targets = targets.cpu()
            acc.update(logits, label_map[targets] if label_map is not None else targets)
    return acc


def label_map(dataset_classes: Sequence[str], model_classes: Sequence[str] | None, num_outputs: int) -> torch.Tensor:
    """Dataset label -> model output index: by class name when the weights carry names; by WordNet id for
    1000-class weights without names and folders named by ImageNet synsets (a subset such as Imagenette); else
    one to one."""
    if not model_classes and num_outputs == NUM_IMAGENET_CLASSES and len(dataset_classes) < num_outputs:
        wnids = imagenet_wnids()
        if set(dataset_classes) <= set(wnids):
            model_classes = wnids
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


class ImageFiles(ImageDataset):
    """Any list of image files as a dataset (label = `targets[i]`, default 0): `predict`'s loose files, the
    calibration and check images of `best` and int8."""

    def __init__(self, paths: Sequence[str | Path], transform=None, targets: Sequence[int] | None = None):
        super().__init__(transform, strict=False)
        self.paths = [str(p) for p in paths]
        self.targets = list(targets) if targets is not None else [0] * len(self.paths)
        self.classes = []

    def load_image(self, index: int) -> torch.Tensor:
        return load_image(self.paths[index])

    def sample_name(self, index: int) -> str:
        return self.paths[index]


def image_files(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Image files under `folder` (any depth), sorted; spread evenly over the folder when `limit` cuts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ResnetsError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not p.name.startswith("."))
    if not files:
        raise ResnetsError(f"no image files under {folder}")
    if limit is not None and len(files) > limit:
        step = len(files) / limit  # evenly spaced: every class folder contributes
        files = [files[int(i * step)] for i in range(limit)]
    return files


def image_loader(paths: Sequence[str | Path], config: ResNetConfig, *, img_size: int | None = None,
                 batch_size: int = 16, workers: int = 0, targets: Sequence[int] | None = None,
                 crop_pct: float | None = None, interpolation: str | None = None):
    """Batches (uint8 images, targets, skipped names) of `paths`, in order, preprocessed as `resnets eval` does."""
    transform = build_eval_transform(img_size or config.eval_size, crop_pct or config.crop_pct,
                                     interpolation or config.interpolation)
    dataset = ImageFiles(paths, transform, targets)
    return build_loader(dataset, batch_size=batch_size, sampler=list(range(len(dataset))), num_workers=workers)


def normaliser(config: ResNetConfig, device: str | torch.device = "cpu") -> BatchPreprocessor:
    """uint8 batches -> the model's normalised float input (its mean/std) on `device`."""
    return BatchPreprocessor(config.mean, config.std, device=torch.device(device))


def file_batches(paths: Sequence[str | Path], config: ResNetConfig, *, img_size: int,
                 batch_size: int = 16) -> Iterator[torch.Tensor]:
    """Normalised float batches of the readable images among `paths` (calibration and check sets)."""
    prepare = normaliser(config)
    for batch in image_loader(paths, config, img_size=img_size, batch_size=batch_size):
        if len(batch.images):
            yield prepare(batch.images)


def load_label_sets(path: str | Path, filenames: Sequence[str]) -> list[list[int]]:
    """ReaL-style labels: a JSON list of label lists in the order of the sorted file names (timm's format for
    ImageNet val), or a dict {"class/file" or "file": [labels]}. One list per file (empty = left out)."""
    path = Path(path)
    if not path.is_file():
        raise ResnetsError(f"label file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResnetsError(f"label file {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        def lookup(name: str):  # "class/file.jpg" first (file names may repeat across classes), then "file.jpg"
            p = Path(name)
            return data.get(f"{p.parent.name}/{p.name}", data.get(p.name))

        sets = [lookup(name) for name in filenames]
        missing = [name for name, labels in zip(filenames, sets, strict=True) if labels is None]
        if missing:
            raise ResnetsError(f"label file {path} has no labels for {len(missing)} image(s), e.g. {missing[0]}")
    elif isinstance(data, list):
        if len(data) != len(filenames):
            raise ResnetsError(f"label file {path} has {len(data)} entries but the data set has {len(filenames)} "
                               "images")
        order = sorted(range(len(filenames)), key=lambda i: Path(filenames[i]).name)
        sets = [[]] * len(filenames)
        for rank, index in enumerate(order):
            sets[index] = data[rank]
    else:
        raise ResnetsError(f"label file {path} must hold a JSON list or object")
    for labels in sets:
        if not isinstance(labels, list) or not all(isinstance(x, int) for x in labels):
            raise ResnetsError(f"label file {path}: every entry must be a list of integer class indices")
    return sets
