"""Map-style dataset over webdataset-style tar shards (``<key>.jpg|png`` + ``<key>.cls``).

For data sets too large to live as a folder tree: a few hundred big files instead of millions of small
ones. The shards are read with random access rather than streamed, so the same samplers, per-sample seeds
and exact resume work as for folders: each shard's member offsets are indexed once (tarfile walks the
headers, the labels are read then), and a sample is one positional read (``os.pread``) of its bytes.
Shards must be uncompressed .tar files (compressed ones cannot be read by offset).

Class names come from an optional ``classes.txt`` (one name per line, line i = label i) next to the
shards, else they are "0" .. "N-1".
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..errors import ResnetsError
from .datasets import ImageDataset
from .preprocess import decode_bytes

SHARD_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "ppm")
COMPRESSED_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")
_BRACE = re.compile(r"\{([^{}]*)\}")


class _Member(NamedTuple):
    shard: int
    offset: int
    size: int
    name: str


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{000..009}`` (zero padding kept) and ``{a,b}`` groups, as webdataset and the shell do."""
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    body = match.group(1)
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        first, last = numeric.groups()
        width = len(first) if first.startswith("0") else 0
        step = 1 if int(last) >= int(first) else -1
        choices = [str(i).zfill(width) for i in range(int(first), int(last) + step, step)]
    elif "," in body:
        choices = body.split(",")
    else:
        raise ResnetsError(f"bad shard pattern {pattern!r}: expected {{000..009}} or {{a,b}} inside braces")
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [expanded for choice in choices for expanded in expand_braces(head + choice + tail)]


def resolve_shards(spec: str, split: str) -> list[Path] | None:
    """The shard files that `spec` names for `split`, or None when `spec` is not a shard spec."""
    spec = spec.replace("{split}", split)
    if spec.endswith(COMPRESSED_SUFFIXES):
        raise ResnetsError(f"compressed shards cannot be read by offset: {spec}; repack them as plain .tar")
    if _BRACE.search(spec):
        paths = [Path(p) for p in expand_braces(spec)]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more of {len(paths)})" if len(missing) > 1 else ""
            raise ResnetsError(f"shard not found: {missing[0]}{more}")
        return paths
    if any(ch in spec for ch in "*?["):
        paths = sorted(Path(p) for p in glob.glob(spec))
        if not paths:
            raise ResnetsError(f"no shard files match {spec}")
        return paths
    if spec.endswith(".tar"):
        if not Path(spec).is_file():
            raise ResnetsError(f"shard not found: {spec}")
        return [Path(spec)]
    root = Path(spec)
    if root.is_dir():
        inside = sorted((root / split).glob("*.tar")) if (root / split).is_dir() else []
        beside = sorted(root.glob(f"{split}-*.tar"))
        return inside or beside or None
    return None


def _read_classes(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise ResnetsError(f"{path} lists no class names")
    return names


class ShardDataset(ImageDataset):
    """Random-access view of tar shards; see the module docstring for the layout."""

    def __init__(self, shards: Sequence[str | Path], transform: Callable[[torch.Tensor], Any] | None = None,
                 *, strict: bool = False, classes_file: str | Path | None = None):
        super().__init__(transform, strict)
        self.shards = [str(Path(s)) for s in shards]
        if not self.shards:
            raise ResnetsError("empty dataset: no shard files given")
        self.members: list[_Member] = []
        self.targets: list[int] = []
        for shard_index, shard in enumerate(self.shards):
            self._index_shard(shard_index, shard)
        if not self.members:
            raise ResnetsError(f"empty dataset: no <key>.jpg|png + <key>.cls samples in {len(self.shards)} "
                               f"shard(s) starting with {self.shards[0]}")
        classes_path = Path(classes_file) if classes_file else Path(self.shards[0]).parent / "classes.txt"
        names = _read_classes(classes_path)
        top = max(self.targets)
        if names is None:
            names = [str(i) for i in range(top + 1)]
        elif top >= len(names):
            bad = self.members[self.targets.index(top)].name
            raise ResnetsError(f"label {top} of {bad} is outside the {len(names)} classes of {classes_path}")
        self.classes = names
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()

    def _index_shard(self, shard_index: int, shard: str) -> None:
        """Walk one shard's headers; record each sample's image offset and read its label."""
        images: dict[str, tarfile.TarInfo] = {}
        labels: dict[str, int] = {}
        try:
            with open(shard, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    folder, base = os.path.split(member.name)
                    if "." not in base:
                        continue
                    stem, ext = base.split(".", 1)
                    key = f"{folder}/{stem}" if folder else stem
                    ext = ext.lower()
                    if ext in SHARD_IMAGE_EXTENSIONS:
                        images[key] = member
                    elif ext == "cls":
                        raw.seek(member.offset_data)
                        text = raw.read(member.size).decode("utf-8", "replace").strip()
                        try:
                            labels[key] = int(text)
                        except ValueError:
                            raise ResnetsError(f"label of {shard}:{member.name} is {text[:20]!r}, not an "
                                               "integer class index") from None
                        if labels[key] < 0:
                            raise ResnetsError(f"label of {shard}:{member.name} is negative ({labels[key]})")
        except (tarfile.TarError, OSError) as exc:
            raise ResnetsError(f"cannot read shard {shard}: {exc}") from None
        unlabelled = sorted(images.keys() - labels.keys())
        if unlabelled:
            key = unlabelled[0]
            raise ResnetsError(f"sample {key!r} in {shard} has an image but no {key}.cls label")
        orphans = sorted(labels.keys() - images.keys())
        if orphans:
            raise ResnetsError(f"sample {orphans[0]!r} in {shard} has a label but no image "
                               f"({'|'.join(SHARD_IMAGE_EXTENSIONS)})")
        for key, member in images.items():  # tar order, which is the writer's order
            self.members.append(_Member(shard_index, member.offset_data, member.size, member.name))
            self.targets.append(labels[key])

    def _fd(self, shard: int) -> int:
        if os.getpid() != self._pid:  # a forked worker: never share the parent's descriptors
            self._fds, self._pid = {}, os.getpid()
        if shard not in self._fds:
            try:
                self._fds[shard] = os.open(self.shards[shard], os.O_RDONLY)
            except OSError as exc:
                raise ResnetsError(f"cannot open shard {self.shards[shard]}: {exc.strerror}") from None
        return self._fds[shard]

    def load_image(self, index: int) -> torch.Tensor:
        member = self.members[index]
        data = os.pread(self._fd(member.shard), member.size, member.offset)
        if len(data) != member.size:
            raise ResnetsError(f"cannot decode image {self.sample_name(index)}: shard is truncated")
        return decode_bytes(data, self.sample_name(index))

    def load_bytes(self, index: int) -> torch.Tensor:
        """The encoded member as uint8 bytes (for decoding on the GPU, ``decode.py``)."""
        member = self.members[index]
        data = os.pread(self._fd(member.shard), member.size, member.offset)
        if len(data) != member.size or not data:
            raise ResnetsError(f"cannot decode image {self.sample_name(index)}: shard is truncated")
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)

    def sample_name(self, index: int) -> str:
        member = self.members[index]
        return f"{self.shards[member.shard]}:{member.name}"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fds"] = {}  # descriptors do not survive pickling into a spawned worker
        return state

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            for fd in getattr(self, "_fds", {}).values():
                with contextlib.suppress(OSError):
                    os.close(fd)


def write_shards(samples: Sequence[tuple[bytes, int, str]], pattern: str, per_shard: int = 1000,
                 classes: Sequence[str] | None = None) -> list[Path]:
    """Write (encoded image, label, extension) samples to tar shards named ``pattern % shard_number``.

    A small helper for tests and for packing a folder dataset; keys are the zero-padded sample numbers.
    """
    import io

    paths: list[Path] = []
    for start in range(0, len(samples), per_shard):
        path = Path(pattern % (start // per_shard))
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "w") as tar:
            for number, (data, label, ext) in enumerate(samples[start:start + per_shard], start):
                members = ((f"{number:08d}.{ext}", data), (f"{number:08d}.cls", str(label).encode()))
                for name, payload in members:
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
        paths.append(path)
    if classes is not None and paths:
        (paths[0].parent / "classes.txt").write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")
    return paths
