"""``build_dataset``: the one entry point from a data spec ("digits", a folder tree, tar shards) to a dataset.

It sits above the dataset modules so that they never import each other in a circle.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ResnetsError
from .datasets import FolderDataset, ImageDataset, Transform
from .digits import DigitsDataset
from .shards import ShardDataset, resolve_shards


def _describe_folder(path: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir() if not p.name.startswith("."))
    if not names:
        return "it is empty"
    shown = ", ".join(names[:10]) + (f", ... ({len(names) - 10} more)" if len(names) > 10 else "")
    return f"found: {shown}"


def build_dataset(spec: str, split: str, transform: Transform | None, *,
                  strict: bool = False) -> ImageDataset:
    """The dataset named by `spec` for `split` ("train" or "val").

    `spec` is "digits" (built-in), a folder holding ``<split>/<class>/*`` images, or tar shards: a shard
    pattern ("dir/train-{000..009}.tar", a glob, "{split}" is replaced by the split name) or a folder with
    ``<split>/*.tar`` or ``<split>-*.tar``.
    """
    if not split or "/" in split:
        raise ResnetsError(f"bad split name {split!r}; use 'train' or 'val'")
    if spec == "digits":
        return DigitsDataset(split, transform)
    shards = resolve_shards(spec, split)
    if shards is not None:
        return ShardDataset(shards, transform, strict=strict)
    root = Path(spec).expanduser()
    if not root.exists():
        raise ResnetsError(f"data path not found: {root}")
    if not root.is_dir():
        raise ResnetsError(f"data path {root} is not a folder (expected {root}/{split}/<class>/<image>, tar "
                           "shards, or 'digits')")
    split_dir = root / split
    if not split_dir.is_dir():
        raise ResnetsError(f"no '{split}' folder in {root} ({_describe_folder(root)}); expected "
                           f"{root}/{split}/<class>/<image>")
    return FolderDataset(split_dir, transform, strict=strict)
