"""Decoded-in-memory datasets: decode a split once into one uint8 (N, H, W, 3) array plus labels.

Small data sets (CIFAR-scale, low-resolution ImageNet subsets) are decoded again every epoch by the
workers; the decode, not the network, then sets the speed. ``--cache`` decodes them once:

* ``ram``: into a tensor in shared memory; DataLoader workers share it (fork or spawn), nothing is written.
* ``disk``: into a memory-mapped file beside the data (``<data>/.resnets-cache/``), or, when that folder
  cannot be written (a read-only data share), into ``$RESNETS_CACHE_DIR`` or ``~/.cache/resnets/decoded``.
  Every process that maps the file (workers, DDP ranks on one machine, later runs) shares the same page
  cache pages, so the decoded set is in memory once per machine.
* ``auto``: ``ram`` for one process and ``disk`` for several ranks when the estimated size fits the budget,
  else no cache; it says what it chose.
* ``off``: decode every epoch, as before.

Images of different sizes are stored top-left in a canvas of the largest height and width, with their own
(height, width) beside them (readers take the valid part). The file is keyed by the list of files with
their sizes and modification times: a change in the data (an image added, replaced, removed) gives another
key and the cache is rebuilt; the old file is removed. A file is written to a temporary name, synced and
renamed (``weights.io.atomic_write``), so a reader never sees half a file; a file whose header, key or
length does not check out (truncated, stale, foreign) is rebuilt. Concurrent builders (DDP ranks, two
runs) serialise on an ``flock`` beside the file: the first decodes, the others then map its result.

Unreadable images are handled as when decoding on the fly: skipped and named (the cache marks them
invalid, the dataset raises for them, the collate drops them), or with ``strict`` the build stops at the
first one naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ResnetsError
from .datasets import ImageDataset

CACHE_MODES = ("auto", "ram", "disk", "off")
CACHE_DIR_ENV = "RESNETS_CACHE_DIR"
MAGIC = b"RNCACHE1"
FORMAT_VERSION = 1
_ALIGN = 4096
_ESTIMATE_SAMPLES = 16


@dataclass(frozen=True)
class CacheConfig:
    """What ``--cache`` and ``--cache-budget`` ask for."""

    mode: str = "off"
    budget_gb: float | None = None
    """Largest decoded size to cache; None: half of the memory available when the run starts."""
    cache_dir: str | None = None
    """Where disk caches go when the data folder is read-only; None: $RESNETS_CACHE_DIR or ~/.cache/resnets."""

    def __post_init__(self) -> None:
        if self.mode not in CACHE_MODES:
            raise ResnetsError(f"unknown --cache {self.mode!r}; choose from {', '.join(CACHE_MODES)}")
        if self.budget_gb is not None and not self.budget_gb > 0:
            raise ResnetsError(f"--cache-budget must be a positive number of GB, got {self.budget_gb}")

    def budget_bytes(self) -> int:
        if self.budget_gb is not None:
            return int(self.budget_gb * 1e9)
        return available_memory() // 2


def available_memory() -> int:
    """MemAvailable from /proc/meminfo (Linux); elsewhere the physical memory from sysconf."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


@dataclass
class DecodedImages:
    """A decoded split: images (N, H, W, 3) uint8 (valid part of image i: [:h_i, :w_i]), sizes (N, 2) int32,
    targets (N,) int64, valid (N,) bool; `skipped` names the images that could not be decoded."""

    images: torch.Tensor
    sizes: torch.Tensor
    targets: torch.Tensor
    valid: torch.Tensor
    names: list[str]
    where: str
    """"ram" or the path of the cache file."""

    @property
    def uniform(self) -> bool:
        """Whether every valid image fills the whole canvas (then a batch is one plain gather)."""
        h, w = self.images.shape[1:3]
        ok = self.sizes[self.valid]
        return bool(((ok[:, 0] == h) & (ok[:, 1] == w)).all())

    @property
    def skipped(self) -> list[str]:
        return [self.names[i] for i in torch.nonzero(~self.valid).flatten().tolist()]

    @property
    def nbytes(self) -> int:
        return self.images.numel()

    def image(self, index: int) -> torch.Tensor:
        """uint8 (3, h, w): a view of the stored (h, w, 3) pixels, the layout the decoders return."""
        h, w = (int(v) for v in self.sizes[index])
        return self.images[index, :h, :w].permute(2, 0, 1)


class CachedDataset(ImageDataset):
    """A dataset read from its decoded cache: same classes, labels, names and transform, no decoding."""

    def __init__(self, base: ImageDataset, decoded: DecodedImages):
        super().__init__(base.transform, base.strict)
        self.base = base
        self.decoded = decoded
        self.classes = list(base.classes)
        self.targets = list(base.targets)

    def load_image(self, index: int) -> torch.Tensor:
        if not bool(self.decoded.valid[index]):
            raise ResnetsError(f"cannot decode image {self.sample_name(index)} (skipped while caching)")
        return self.decoded.image(index)

    def sample_name(self, index: int) -> str:
        return self.base.sample_name(index)

    def __repr__(self) -> str:
        return f"CachedDataset({self.base!r}, {self.decoded.where})"


# ------------------------------------------------------------------------------------------- identity
def dataset_key(dataset: ImageDataset) -> str:
    """sha256 of what the decoded content depends on: every sample's name, label and file size and mtime."""
    digest = hashlib.sha256(f"resnets-decoded-v{FORMAT_VERSION}".encode())
    files: dict[str, os.stat_result] = {}
    for index in range(len(dataset)):
        name = dataset.sample_name(index)
        path = name.split(":", 1)[0] if ":" in name and not os.path.exists(name) else name
        if path not in files:
            with contextlib.suppress(OSError):
                files[path] = os.stat(path)
        info = files.get(path)
        stamp = f"{info.st_size}:{info.st_mtime_ns}" if info is not None else "-"
        digest.update(f"{name}\0{dataset.targets[index]}\0{stamp}\n".encode())
    return digest.hexdigest()


def data_root(dataset: ImageDataset) -> Path | None:
    """The folder the split's files live in (the split folder, or the shards' folder); None: built-in data."""
    root = getattr(dataset, "root", None)
    if root is not None:
        return Path(root)
    shards = getattr(dataset, "shards", None)
    if shards:
        return Path(shards[0]).parent
    return None


def cache_path(dataset: ImageDataset, key: str, cache_dir: str | None = None) -> Path:
    """Beside the data if that folder is writable, else in the user's cache folder (read-only data)."""
    root = data_root(dataset)
    if root is None:
        raise ResnetsError("this data set has no files to cache on disk; use --cache ram")
    label = f"{root.parent.name}-{root.name}" if root.parent.name else root.name
    name = f"{label}-{key[:16]}.u8"
    beside = root.parent / ".resnets-cache"
    if cache_dir is None and _writable(beside):
        return beside / name
    base = Path(cache_dir or os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "resnets" / "decoded")
    base = base.expanduser()
    if not _writable(base):
        raise ResnetsError(f"cannot write a decoded cache: neither {beside} nor {base} is writable "
                           f"(set {CACHE_DIR_ENV} or use --cache ram)")
    return base / name


def _writable(folder: Path) -> bool:
    """Whether `folder` can be created and written. A folder without write permission bits counts as
    read-only even for root (who could write it anyway): a data share marked read-only stays untouched."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        mode = existing.stat().st_mode
    except OSError:
        return False
    if not mode & 0o222 or not os.access(existing, os.W_OK):
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


# ------------------------------------------------------------------------------------------- decoding
def _decode_all(dataset: ImageDataset, strict: bool) -> tuple[list[torch.Tensor | None], list[str]]:
    """Every image as uint8 (3, h, w) (None: unreadable); threads, as torchvision's decoders release the GIL."""
    def load(index: int) -> torch.Tensor | None:
        try:
            return dataset.load_image(index)
        except ResnetsError:
            if strict:
                raise
            return None

    names = [dataset.sample_name(i) for i in range(len(dataset))]
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        images = list(pool.map(load, range(len(dataset)), chunksize=64))
    return images, names


def estimate_bytes(dataset: ImageDataset) -> int:
    """The decoded size from a few images spread over the set (their largest height and width x N)."""
    n = len(dataset)
    step = max(1, n // _ESTIMATE_SAMPLES)
    height = width = 0
    for index in range(0, n, step):
        with contextlib.suppress(ResnetsError):
            image = dataset.load_image(index)
            height, width = max(height, image.shape[-2]), max(width, image.shape[-1])
    return n * max(height, 1) * max(width, 1) * 3


def _pack(images: list[torch.Tensor | None], out: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    height, width = _canvas(images)
    if out is None:
        out = np.zeros((len(images), height, width, 3), dtype=np.uint8)
    sizes = np.zeros((len(images), 2), dtype=np.int32)
    valid = np.zeros(len(images), dtype=np.bool_)
    for i, image in enumerate(images):
        if image is None:
            continue
        h, w = image.shape[-2:]
        out[i, :h, :w] = image.permute(1, 2, 0).numpy()
        sizes[i] = (h, w)
        valid[i] = True
    return out, sizes, valid


def _canvas(images: list[torch.Tensor | None]) -> tuple[int, int]:
    height = max((im.shape[-2] for im in images if im is not None), default=1)
    width = max((im.shape[-1] for im in images if im is not None), default=1)
    return height, width


# ------------------------------------------------------------------------------------------- file format
# MAGIC, uint32 header length, JSON header (key, shapes), padding to 4 KiB; then images, sizes, targets,
# valid, each starting on a 4 KiB boundary. The header records the total length: a short file is rejected.
def _layout(n: int, height: int, width: int, header_len: int) -> tuple[dict[str, int], int]:
    offsets, position = {}, _round_up(len(MAGIC) + 4 + header_len)
    for name, nbytes in (("images", n * height * width * 3), ("sizes", n * 8), ("targets", n * 8),
                         ("valid", n)):
        offsets[name] = position
        position = _round_up(position + nbytes)
    return offsets, position


def _round_up(value: int) -> int:
    return (value + _ALIGN - 1) // _ALIGN * _ALIGN


def _header(key: str, n: int, height: int, width: int) -> bytes:
    # the total length depends on the header length only through its rounding: fix it with a padded field
    base = {"format": "resnets-decoded", "version": FORMAT_VERSION, "key": key, "n": n, "height": height,
            "width": width, "total": 0}
    probe = json.dumps(base).encode() + b" " * 24
    _, total = _layout(n, height, width, len(probe))
    text = json.dumps({**base, "total": total}).encode()
    return text + b" " * (len(probe) - len(text))


def write_cache_file(path: Path, key: str, images: list[torch.Tensor | None], targets: list[int]) -> None:
    """Write the decoded split to `path` atomically (temporary file, fsync, rename)."""
    from ..weights.io import atomic_write

    n = len(images)
    height, width = _canvas(images)
    header = _header(key, n, height, width)
    offsets, total = _layout(n, height, width, len(header))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(MAGIC + struct.pack("<I", len(header)) + header)
            handle.truncate(total)
        mapped = np.memmap(tmp, dtype=np.uint8, mode="r+", offset=offsets["images"], shape=(n, height, width, 3))
        _, sizes, valid = _pack(images, out=mapped)
        mapped.flush()
        del mapped
        with open(tmp, "r+b") as handle:
            for name, array in (("sizes", sizes.astype("<i4")), ("targets", np.asarray(targets, dtype="<i8")),
                                ("valid", valid)):
                handle.seek(offsets[name])
                handle.write(array.tobytes())

    atomic_write(path, write)


def read_cache_file(path: Path, key: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(images, sizes, targets, valid) mapped from `path`, or None when the file is missing, foreign, stale
    (another key) or truncated."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(MAGIC) + 4)
            if len(start) < len(MAGIC) + 4 or start[:len(MAGIC)] != MAGIC:
                return None
            (length,) = struct.unpack("<I", start[len(MAGIC):])
            header = json.loads(handle.read(length).decode())
        size = path.stat().st_size
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or header.get("version") != FORMAT_VERSION or header.get("key") != key:
        return None
    n, height, width = int(header["n"]), int(header["height"]), int(header["width"])
    offsets, total = _layout(n, height, width, length)
    if header.get("total") != total or size != total:
        return None
    with warnings.catch_warnings():  # a read-only mapping: torch warns that it is not writable; nothing writes it
        warnings.simplefilter("ignore", UserWarning)
        images = torch.from_numpy(np.memmap(path, dtype=np.uint8, mode="r", offset=offsets["images"],
                                            shape=(n, height, width, 3)))
        sizes = torch.from_numpy(np.fromfile(path, dtype="<i4", count=n * 2, offset=offsets["sizes"]).reshape(n, 2))
        targets = torch.from_numpy(np.fromfile(path, dtype="<i8", count=n, offset=offsets["targets"]))
        valid = torch.from_numpy(np.fromfile(path, dtype=np.bool_, count=n, offset=offsets["valid"]))
    return images, sizes, targets, valid


@contextlib.contextmanager
def _build_lock(path: Path):
    """An exclusive flock on `<path>.lock`: one process decodes, the others wait and then map its file."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove_stale(path: Path) -> None:
    """Remove caches of the same split made for other contents (the key is the name's last part)."""
    prefix = path.name.rsplit("-", 1)[0] + "-"
    for other in path.parent.glob(prefix + "*.u8"):
        if other != path and len(other.name) == len(path.name):
            with contextlib.suppress(OSError):
                other.unlink()
                Path(f"{other}.lock").unlink(missing_ok=True)


class CacheTooLarge(ResnetsError):
    """The decoded canvas (every image padded to the largest one) is larger than the estimate and the budget."""


def _check_canvas(images: list[torch.Tensor | None], decision: CacheDecision) -> None:
    height, width = _canvas(images)
    nbytes = len(images) * height * width * 3
    if decision.budget and nbytes > decision.budget:
        raise CacheTooLarge(f"{nbytes / 1e9:.2f} GB decoded once every image is padded to the largest "
                            f"({height}x{width}): over the budget of {decision.budget / 1e9:.2f} GB")


# ------------------------------------------------------------------------------------------- entry point
@dataclass
class CacheDecision:
    """What was chosen and why: printed at the start and recorded in run.json."""

    mode: str
    """"ram", "disk" or "off": what the run uses."""
    requested: str
    reason: str
    path: str | None = None
    nbytes: int = 0
    budget: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "requested": self.requested, "reason": self.reason, "path": self.path,
                "bytes": self.nbytes}


def _readable(nbytes: int | float) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"


def decide_cache(dataset: ImageDataset, config: CacheConfig, *, world_size: int = 1) -> CacheDecision:
    """Choose ram / disk / off for `dataset` by `config` and its estimated decoded size against the budget."""
    if config.mode == "off":
        return CacheDecision("off", "off", "--cache off")
    estimate, budget = estimate_bytes(dataset), config.budget_bytes()
    sizes = f"~{_readable(estimate)} decoded, budget {_readable(budget)}"
    if estimate > budget:
        return CacheDecision("off", config.mode, f"{sizes}: does not fit, decoding every epoch instead "
                                                 "(raise --cache-budget to cache it)", nbytes=estimate, budget=budget)
    if config.mode != "auto":
        if config.mode == "disk" and data_root(dataset) is None:
            return CacheDecision("ram", "disk", f"{sizes}; built-in data has no files, kept in RAM", nbytes=estimate,
                                 budget=budget)
        return CacheDecision(config.mode, config.mode, sizes, nbytes=estimate, budget=budget)
    if world_size > 1 and data_root(dataset) is not None:
        return CacheDecision("disk", "auto", f"{sizes}; {world_size} processes share one memory-mapped file",
                             nbytes=estimate, budget=budget)
    return CacheDecision("ram", "auto", f"{sizes}; one process, kept in RAM", nbytes=estimate, budget=budget)


def build_decoded(dataset: ImageDataset, decision: CacheDecision, *, strict: bool = False,
                  cache_dir: str | None = None, say: Callable[[str], None] | None = None) -> DecodedImages:
    """Decode `dataset` into memory (ram) or map/build its cache file (disk), as `decision` says."""
    targets = list(dataset.targets)
    if decision.mode == "ram":
        images, names = _decode_all(dataset, strict)
        _check_canvas(images, decision)
        packed, sizes, valid = _pack(images)
        tensor = torch.from_numpy(packed).share_memory_()
        return DecodedImages(tensor, torch.from_numpy(sizes), torch.tensor(targets, dtype=torch.int64),
                             torch.from_numpy(valid), names, "ram")
    if decision.mode != "disk":
        raise ResnetsError(f"cannot build a decoded cache for mode {decision.mode!r}")
    key = dataset_key(dataset)
    path = cache_path(dataset, key, cache_dir)
    decision.path = str(path)
    root = data_root(dataset)
    if root is not None and cache_dir is None and path.parent != root.parent / ".resnets-cache":
        decision.reason += f"; {root.parent} is read-only, so the cache goes to {path.parent}"
    names = [dataset.sample_name(i) for i in range(len(dataset))]
    mapped = read_cache_file(path, key)
    if mapped is None:
        with _build_lock(path):
            mapped = read_cache_file(path, key)  # another process may have built it while we waited
            if mapped is None:
                if path.exists() and say is not None:
                    say(f"cache {path} is stale or incomplete: rebuilding it")
                images, _ = _decode_all(dataset, strict)
                _check_canvas(images, decision)
                write_cache_file(path, key, images, targets)
                _remove_stale(path)
                mapped = read_cache_file(path, key)
        if mapped is None:
            raise ResnetsError(f"the decoded cache {path} could not be read back after writing it")
    images_t, sizes_t, targets_t, valid_t = mapped
    if strict and not bool(valid_t.all()):
        first = names[int(torch.nonzero(~valid_t)[0])]
        raise ResnetsError(f"cannot decode image {first} (recorded as unreadable in the cache {path})")
    return DecodedImages(images_t, sizes_t, targets_t, valid_t, names, str(path))


def cache_dataset(dataset: ImageDataset, config: CacheConfig, *, world_size: int = 1,
                  say: Callable[[str], None] | None = None, label: str = "") -> tuple[ImageDataset, CacheDecision]:
    """`dataset` served from a decoded cache when `config` allows it (else unchanged), and the decision."""
    decision = decide_cache(dataset, config, world_size=world_size)
    if decision.mode == "off":
        if say is not None and config.mode != "off":
            say(f"cache{label}: off ({decision.reason})")
        return dataset, decision
    try:
        decoded = build_decoded(dataset, decision, strict=dataset.strict, cache_dir=config.cache_dir, say=say)
    except CacheTooLarge as exc:
        decision.mode, decision.reason = "off", f"{exc}; decoding every epoch instead"
        if say is not None:
            say(f"cache{label}: off ({decision.reason})")
        return dataset, decision
    decision.nbytes = decoded.nbytes
    if say is not None:
        where = "RAM" if decision.mode == "ram" else decision.path
        skipped = decoded.skipped
        note = f"; {len(skipped)} unreadable image(s) skipped" if skipped else ""
        say(f"cache{label}: {decision.mode} ({decision.reason}) -> {len(decoded.valid)} images, "
            f"{decoded.nbytes / 1e6:.1f} MB in {where}{note}")
    return CachedDataset(dataset, decoded), decision
