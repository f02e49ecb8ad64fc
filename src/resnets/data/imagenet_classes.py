"""ImageNet-1k class names, in the standard class-index order, for 1000-class weights without stored names.

Taken from torchvision's bundled weight metadata (no download, nothing to keep in sync by hand). The WordNet ids
of the same classes (imagenet_synsets.txt: timm's `timm/data/_info/imagenet_synsets.txt`, the sorted ILSVRC-2012
synsets, whose order is the class index) let a folder named by synset, such as an ImageNet subset, be scored
against 1000-class weights that carry no names of their own.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

NUM_IMAGENET_CLASSES = 1000


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 human-readable ImageNet-1k names ('tench', 'goldfish', ...), index = class id."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES  # private module, but stable since 0.13

    names = tuple(_IMAGENET_CATEGORIES)
    if len(names) != NUM_IMAGENET_CLASSES:  # guard against a torchvision that changes the list
        raise RuntimeError(f"torchvision lists {len(names)} ImageNet classes, expected {NUM_IMAGENET_CLASSES}")
    return names


def class_names_for(num_classes: int, stored: list[str] | None = None) -> list[str]:
    """Names for a classifier's outputs: the stored ones, ImageNet's for 1000 classes, else 'class_<i>'."""
    if stored is not None and len(stored) == num_classes:
        return list(stored)
    if num_classes == NUM_IMAGENET_CLASSES:
        return list(imagenet_class_names())
    return [f"class_{i}" for i in range(num_classes)]


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids ('n01440764', ...), index = class id."""
    wnids = tuple((Path(__file__).with_name("imagenet_synsets.txt")).read_text(encoding="ascii").split())
    if len(wnids) != NUM_IMAGENET_CLASSES:
        raise RuntimeError(f"imagenet_synsets.txt lists {len(wnids)} classes, expected {NUM_IMAGENET_CLASSES}")
    return wnids
