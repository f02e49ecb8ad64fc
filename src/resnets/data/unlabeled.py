"""Unlabelled images for distillation: folders of images (flat or nested, any sub-folder names), mixed
into the labelled training set as one stream, as PaddleClas' SSLD mixes its mined images into one list.

An unlabelled sample carries the label `UNLABELED` (-1): the collate keeps it like any other, the training
step gives it no label loss (only the teacher's term), and the loop counts it. `WithUnlabeled` joins the
two datasets (labelled indices first); `UnlabeledShare` wraps the run's sampler when only a share of the
unlabelled pool is used per epoch: each epoch takes the next slice of a seeded stream of permutations of
the pool, so every unlabelled image is used once before any is used twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Sampler

from ..errors import ResnetsError
from .datasets import IMAGE_EXTENSIONS, ImageDataset, SampleRef, Skipped, Transform
from .preprocess import load_image

UNLABELED = -1
"""The label an unlabelled sample carries through the loader."""


def scan_images(folders: Sequence[str | Path]) -> list[str]:
    """Every image file under `folders` (recursively, hidden entries skipped), sorted per folder; one-line
    errors for a missing folder or one without images."""
    paths: list[str] = []
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise ResnetsError(f"--unlabeled {folder}: " + ("not a folder" if root.exists() else "folder not found"))
        found = []
        for directory, subdirs, files in os.walk(root, followlinks=True):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            found.extend(os.path.join(directory, f) for f in files
                         if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
        if not found:
            raise ResnetsError(f"--unlabeled {folder}: no images in it or its sub-folders (extensions: "
                               f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
        paths.extend(sorted(found))
    return paths


class UnlabeledImages(ImageDataset):
    """Image files without labels (every target is UNLABELED)."""

    def __init__(self, paths: Sequence[str], transform: Transform | None = None, strict: bool = False):
        super().__init__(transform, strict)
        self.paths = list(paths)
        self.targets = [UNLABELED] * len(self.paths)
        self.classes = []

    def load_image(self, index: int) -> torch.Tensor:
        return load_image(self.paths[index])

    def sample_name(self, index: int) -> str:
        return self.paths[index]


class WithUnlabeled(ImageDataset):
    """A labelled dataset followed by unlabelled images: indices below len(labeled) are the labelled ones.

    Each part loads (and augments) its own samples, so the labelled set keeps whatever it does to load."""

    def __init__(self, labeled: ImageDataset, unlabeled: UnlabeledImages):
        super().__init__(labeled.transform, labeled.strict)
        self.labeled, self.unlabeled = labeled, unlabeled
        self.classes = list(labeled.classes)
        self.targets = list(labeled.targets) + list(unlabeled.targets)
        self.labeled_count = len(labeled)
        # where the labelled files live: a decoded disk cache (resnets.data.cache) goes beside them
        self.root = getattr(labeled, "root", None)
        self.shards = getattr(labeled, "shards", None)

    def _part(self, index: int) -> tuple[ImageDataset, int]:
        if index < 0:
            index += len(self)
        if index < self.labeled_count:
            return self.labeled, index
        return self.unlabeled, index - self.labeled_count

    def load_image(self, index: int) -> torch.Tensor:
        part, inner = self._part(index)
        return part.load_image(inner)

    def sample_name(self, index: int) -> str:
        part, inner = self._part(index)
        return part.sample_name(inner)

    def load_sample(self, item: int | SampleRef) -> tuple[Any, int] | Skipped:
        index, seed = (item.index, item.seed) if isinstance(item, SampleRef) else (int(item), None)
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample index {index} out of range for a dataset of {len(self)}")
        part, inner = self._part(index)
        return part.load_sample(inner if seed is None else SampleRef(inner, seed))


class UnlabeledShare(Sampler[SampleRef]):
    """`inner` samples over labelled + `per_epoch` slots; slot k of epoch e is unlabelled image
    stream[e * per_epoch + k] of a stream of seeded permutations of the `pool` unlabelled images.

    The epoch order, the DDP split and the augmentation seeds stay the inner sampler's (mid-epoch resume
    included); only which unlabelled image fills a slot changes with the epoch."""

    def __init__(self, inner: Any, *, labeled: int, pool: int, per_epoch: int, seed: int):
        if pool < 1 or per_epoch < 1:
            raise ResnetsError("an unlabelled share needs at least one image in the pool and per epoch")
        self.inner = inner
        self.labeled, self.pool, self.per_epoch, self.seed = int(labeled), int(pool), int(per_epoch), int(seed)
        self.epoch = 0

    def __getattr__(self, name: str) -> Any:  # chunk, num_samples, ... of the wrapped sampler
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.inner.set_epoch(epoch)

    def set_start(self, n: int) -> None:
        self.inner.set_start(n)

    def _permutation(self, cycle: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 7919 + 104729 + cycle)
        return torch.randperm(self.pool, generator=generator)

    def slot_images(self, epoch: int) -> list[int]:
        """Pool indices of the unlabelled slots of `epoch`, in slot order."""
        first = epoch * self.per_epoch
        out: list[int] = []
        cycle, offset = divmod(first, self.pool)
        while len(out) < self.per_epoch:
            take = min(self.pool - offset, self.per_epoch - len(out))
            out.extend(self._permutation(cycle)[offset:offset + take].tolist())
            cycle, offset = cycle + 1, 0
        return out

    def __iter__(self) -> Iterator[SampleRef]:
        slots = self.slot_images(self.epoch)
        for ref in self.inner:
            if ref.index >= self.labeled:
                ref = SampleRef(self.labeled + slots[ref.index - self.labeled], ref.seed)
            yield ref

    def state_dict(self) -> dict[str, int]:
        return self.inner.state_dict()
