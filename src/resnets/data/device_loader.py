"""Batches for augmentation on the training device (``--augment-on device``).

The sampler's references are taken a batch at a time. From a decoded cache (``cache.DecodedImages``) a
batch is one gather of uint8 canvases in the main process: no worker processes competing with the
training threads for the cores, no per-sample Python work. Without a cache, worker processes decode the
images (CPU) or only read their bytes (``--decode gpu``: JPEGs are decoded on the GPU in the main process,
``decode.py``), and the collate pads them into one canvas. Either way ``BatchAugment`` then crops, flips and
augments the whole batch on the device with the per-sample seeds, and the loop normalises it as usual
(``loader.BatchPreprocessor``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ResnetsError
from .batch_augment import BatchAugment
from .cache import CachedDataset
from .datasets import ImageDataset, SampleRef, Skipped
from .loader import Batch


class _Raw(Dataset):
    """(uint8 (3, h, w) image or its encoded bytes, label, seed) per SampleRef; Skipped for unreadable ones."""

    def __init__(self, dataset: ImageDataset, encoded: bool):
        self.dataset = dataset
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, ref: SampleRef) -> Any:
        try:
            load = self.dataset.load_bytes if self.encoded else self.dataset.load_image  # type: ignore[attr-defined]
            data = load(ref.index)
        except ResnetsError as exc:
            if self.dataset.strict:
                raise
            return Skipped(self.dataset.sample_name(ref.index), str(exc))
        return data, self.dataset.targets[ref.index], ref.seed, self.dataset.sample_name(ref.index)


def pad_into_canvas(images: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (3, h, w) images -> (N, H, W, 3) canvas (top-left aligned) and their (N, 2) sizes."""
    height = max(int(im.shape[-2]) for im in images)
    width = max(int(im.shape[-1]) for im in images)
    canvas = torch.zeros(len(images), height, width, 3, dtype=torch.uint8, device=images[0].device)
    for i, image in enumerate(images):  # one copy per image: the decoders give images of their own sizes
        canvas[i, :image.shape[-2], :image.shape[-1]] = image.permute(1, 2, 0)
    sizes = torch.tensor([[int(im.shape[-2]), int(im.shape[-1])] for im in images], dtype=torch.int64)
    return canvas, sizes


def _collate_raw(samples: Sequence[Any]) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor, list[str], list[str]]:
    kept = [s for s in samples if not isinstance(s, Skipped)]
    skipped = [s.name for s in samples if isinstance(s, Skipped)]
    targets = torch.tensor([s[1] for s in kept], dtype=torch.int64)
    seeds = torch.tensor([s[2] for s in kept], dtype=torch.int64)
    names = [s[3] for s in kept]
    if kept and isinstance(kept[0][0], torch.Tensor) and kept[0][0].ndim == 3:
        canvas, sizes = pad_into_canvas([s[0] for s in kept])
        return canvas, sizes, targets, seeds, skipped, names
    return [s[0] for s in kept], torch.empty(0), targets, seeds, skipped, names


class DeviceBatches:
    """One epoch of augmented uint8 (N, 3, S, S) batches on `device`, as ``Batch`` tuples (the engine's type).

    `decode` (bytes list, names) -> uint8 (3, h, w) images on the device is used when the workers deliver
    encoded bytes (GPU decoding); None: the workers (or the cache) deliver pixels.
    """

    def __init__(self, dataset: ImageDataset, sampler: Any, batch_size: int, augment: BatchAugment, *,
                 device: torch.device, workers: int = 0, pin_memory: bool = False,
                 decode: Callable[[list[torch.Tensor], list[str]], list[torch.Tensor | None]] | None = None):
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.augment = augment
        self.device = torch.device(device)
        self.pin_memory = pin_memory
        self.decode = decode
        self.decoded = dataset.decoded if isinstance(dataset, CachedDataset) else None
        self.loader: DataLoader | None = None
        if self.decoded is None:
            self.loader = DataLoader(_Raw(dataset, encoded=decode is not None), batch_size=self.batch_size,
                                     sampler=sampler, num_workers=workers, collate_fn=_collate_raw,
                                     drop_last=True, persistent_workers=workers > 0, pin_memory=False)

    @property
    def workers(self) -> int:
        return self.loader.num_workers if self.loader is not None else 0

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and tensor.device.type == "cpu":
            if self.pin_memory:
                tensor = tensor.pin_memory()
            return tensor.to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _from_cache(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]]:
        decoded = self.decoded
        assert decoded is not None
        refs = list(iter(self.sampler))
        for start in range(0, len(refs) - self.batch_size + 1, self.batch_size):
            chunk = refs[start:start + self.batch_size]
            index = torch.tensor([r.index for r in chunk], dtype=torch.int64)
            valid = decoded.valid[index]
            skipped = [self.dataset.sample_name(int(i)) for i in index[~valid]]
            index = index[valid]
            seeds = torch.tensor([r.seed for r, ok in zip(chunk, valid.tolist(), strict=True) if ok], dtype=torch.int64)
            yield decoded.images[index], decoded.sizes[index], decoded.targets[index], seeds, skipped

    def _from_workers(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]]:
        assert self.loader is not None
        for pixels, sizes, targets, seeds, skipped, names in self.loader:
            if self.decode is not None:
                images = self.decode(pixels, names)
                bad = [name for name, image in zip(names, images, strict=True) if image is None]
                if bad:
                    keep = [i for i, image in enumerate(images) if image is not None]
                    skipped = skipped + bad
                    targets, seeds = targets[keep], seeds[keep]
                    images = [images[i] for i in keep]
                if not images:
                    yield torch.empty(0, 0, 0, 3, dtype=torch.uint8), torch.empty(0, 2), targets, seeds, skipped
                    continue
                canvas, sizes = pad_into_canvas(images)
                yield canvas, sizes, targets, seeds, skipped
            else:
                yield pixels, sizes, targets, seeds, skipped

    def __iter__(self) -> Iterator[Batch]:
        source = self._from_cache() if self.decoded is not None else self._from_workers()
        size = self.augment.cfg.img_size
        for canvas, sizes, targets, seeds, skipped in source:
            if len(targets) == 0:
                yield Batch(torch.empty(0, 3, size, size, dtype=torch.uint8, device=self.device), targets, skipped)
                continue
            images = self.augment(self._to_device(canvas), sizes, seeds)
            yield Batch(images, targets, skipped)
