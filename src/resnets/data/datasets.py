"""Image datasets: the shared base class, sample references and image-folder trees.

Tar shards (``shards.py``) and the built-in ``digits`` set (``digits.py``) subclass ``ImageDataset``;
``build.build_dataset`` picks one from a spec.

Every dataset decodes to uint8 (3, H, W) RGB tensors and applies its transform to them. Indexing with a
``SampleRef`` (what our samplers yield) seeds the random generators from the reference's seed just before
the transform, so a sample's augmentation depends only on (run seed, epoch, position), never on which
worker process or batch produced it; that is what makes a resumed run bit-identical.

Unreadable images never stop a run unless asked to: ``load_sample`` returns a ``Skipped`` marker (and
``__getitem__`` returns None), the collate drops it and reports its name; with ``strict=True`` the first one
raises a ResnetsError naming the file.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.utils.data import Dataset, get_worker_info

from ..errors import ResnetsError
from .preprocess import load_image

Transform = Callable[[torch.Tensor], Any]

# Everything PIL or torchvision can open; other files (README, .DS_Store, labels) are ignored.
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm",
})


class SampleRef(NamedTuple):
    """What the samplers yield: a dataset index and the seed of that sample's augmentation."""

    index: int
    seed: int


class Skipped(NamedTuple):
    """Stands in for a sample whose image could not be decoded; carries its name for the report."""

    name: str
    reason: str


class SkippedImages:
    """Collects the names of skipped images across batches and epochs, for the end-of-run report."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, names: Iterable[str]) -> None:
        self.names.extend(names)

    @property
    def count(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def report(self, limit: int = 5) -> str | None:
        """One line such as 'skipped 2 unreadable images: a.jpg, b.jpg' (None when nothing was skipped)."""
        if not self.names:
            return None
        unique = list(dict.fromkeys(self.names))
        more = len(unique) - limit
        shown = ", ".join(unique[:limit]) + (f", ... ({more} more)" if more > 0 else "")
        times = f" ({len(self.names)} times)" if len(self.names) != len(unique) else ""
        noun = "image" if len(unique) == 1 else "images"
        return f"skipped {len(unique)} unreadable {noun}{times}: {shown}"


def _seeded_transform(transform: Transform, image: torch.Tensor, seed: int) -> Any:
    """Run `transform` with torch's and Python's generators seeded from `seed`.

    In the main process (num_workers=0) the training code's generator states are saved and restored, so
    loading data does not change the random stream of dropout, drop-path or mixup.
    """
    in_main_process = get_worker_info() is None
    if in_main_process:
        torch_state, python_state = torch.get_rng_state(), random.getstate()
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    try:
        return transform(image)
    finally:
        if in_main_process:
            torch.set_rng_state(torch_state)
            random.setstate(python_state)


class ImageDataset(Dataset):
    """Base class: subclasses provide `classes`, `targets`, `load_image(index)` and `sample_name(index)`."""

    classes: list[str]
    targets: list[int]

    def __init__(self, transform: Transform | None = None, strict: bool = False):
        self.transform = transform
        self.strict = strict

    def __len__(self) -> int:
        return len(self.targets)

    def load_image(self, index: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample_name(self, index: int) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_sample(self, item: int | SampleRef) -> tuple[Any, int] | Skipped:
        """(transformed image, label), or a Skipped marker for an unreadable image (strict: raise)."""
        index, seed = (item.index, item.seed) if isinstance(item, SampleRef) else (int(item), None)
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample index {index} out of range for a dataset of {len(self)}")
        try:
            image = self.load_image(index)
        except ResnetsError as exc:
            if self.strict:
                raise
            return Skipped(self.sample_name(index), str(exc))
        if self.transform is not None:
            image = self.transform(image) if seed is None else _seeded_transform(self.transform, image, seed)
        return image, self.targets[index]

    def __getitem__(self, item: int | SampleRef) -> tuple[Any, int] | None:
        sample = self.load_sample(item)
        return None if isinstance(sample, Skipped) else sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}(samples={len(self)}, classes={len(self.classes)})"


class FolderDataset(ImageDataset):
    """``<root>/<split>/<class>/<image>`` trees (torchvision ImageFolder layout, classes sorted by name)."""

    def __init__(self, split_dir: str | Path, transform: Transform | None = None, strict: bool = False):
        super().__init__(transform, strict)
        self.root = Path(split_dir)
        self.classes, self.paths, self.targets = scan_folder(self.root)

    def load_image(self, index: int) -> torch.Tensor:
        return load_image(self.paths[index])

    def load_bytes(self, index: int) -> torch.Tensor:
        """The encoded file as uint8 bytes (for decoding on the GPU, ``decode.py``)."""
        from .decode import read_file_bytes

        return read_file_bytes(self.paths[index])

    def sample_name(self, index: int) -> str:
        return self.paths[index]


def _is_image(entry: os.DirEntry) -> bool:
    return (not entry.name.startswith(".") and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS
            and entry.is_file())


def scan_folder(split_dir: Path) -> tuple[list[str], list[str], list[int]]:
    """(class names, image paths, labels) of one split folder; one-line errors for empty folders.

    An empty class folder is an error rather than a skipped class: skipping it would shift the label of
    every later class, and the train and val splits would silently disagree.
    """
    with os.scandir(split_dir) as entries:
        listing = sorted(entries, key=lambda e: e.name)
    class_dirs = [e for e in listing if e.is_dir() and not e.name.startswith(".")]
    if not class_dirs:
        if not listing:
            raise ResnetsError(f"empty dataset: {split_dir} is an empty folder "
                               f"(expected {split_dir}/<class>/<image>)")
        raise ResnetsError(f"no classes in {split_dir}: images must sit in one folder per class "
                           f"({split_dir}/<class>/<image>)")
    paths: list[str] = []
    targets: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        with os.scandir(class_dir.path) as entries:
            images = sorted(e.path for e in entries if _is_image(e))
        if not images:
            raise ResnetsError(f"class folder {class_dir.path} has no images (extensions: "
                               f"{', '.join(sorted(IMAGE_EXTENSIONS))}); remove it or add images")
        paths.extend(images)
        targets.extend([label] * len(images))
    return [d.name for d in class_dirs], paths, targets
