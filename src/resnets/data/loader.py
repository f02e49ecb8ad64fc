"""DataLoader assembly: uint8 batches from worker processes, normalised once on the target device.

Workers decode and augment uint8 images and stack them straight into shared memory (a quarter of the
bytes of float32 to move between processes and to the GPU). ``BatchPreprocessor`` then copies the batch to
the device (non-blocking from pinned memory), converts to float, normalises and optionally applies random
erasing, all as a handful of whole-batch ops. Unreadable images are dropped by the collate and named in
``Batch.skipped``, so the training loop can count and report them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from ..errors import ResnetsError
from .datasets import SampleRef, Skipped


class Batch(NamedTuple):
    """uint8 images (N, 3, H, W), int64 targets (N,), and the names of the samples dropped from it."""

    images: torch.Tensor
    targets: torch.Tensor
    skipped: list[str]

    def pin_memory(self) -> Batch:  # called by DataLoader(pin_memory=True): pin the tensors, keep the names
        return Batch(self.images.pin_memory(), self.targets.pin_memory(), self.skipped)


class NamedSkips(Dataset):
    """Wraps a dataset so unreadable samples reach the collate as ``Skipped(name)`` rather than None."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: int | SampleRef) -> Any:
        if hasattr(self.dataset, "load_sample"):
            return self.dataset.load_sample(item)
        sample = self.dataset[item]
        if sample is None:
            return Skipped(f"sample {item.index if isinstance(item, SampleRef) else item}", "")
        return sample


def collate_batch(samples: Sequence[Any]) -> Batch:
    """Stack uint8 images and labels; drop Skipped/None samples and list their names.

    Inside a worker the images are stacked directly into shared memory, which saves the copy that
    sending an ordinary tensor back to the main process would make.
    """
    skipped = [s.name if isinstance(s, Skipped) else "unknown sample" for s in samples
               if s is None or isinstance(s, Skipped)]
    kept = [s for s in samples if s is not None and not isinstance(s, Skipped)]
    if not kept:
        return Batch(torch.empty(0, 3, 0, 0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), skipped)
    images = [s[0] for s in kept]
    first = images[0]
    shape = (len(images), *first.shape)
    if any(img.shape != first.shape for img in images):
        sizes = sorted({tuple(img.shape) for img in images})
        raise ResnetsError(f"images in one batch differ in size {sizes}: the transform must crop them "
                           "to one size")
    if get_worker_info() is not None:
        out = torch.empty(0, dtype=first.dtype).new_empty(shape).share_memory_()
        torch.stack(images, out=out)
    else:
        out = torch.stack(images)
    targets = torch.tensor([int(s[1]) for s in kept], dtype=torch.int64)
    return Batch(out, targets, skipped)


def build_loader(dataset: Dataset, *, batch_size: int, sampler: Any, num_workers: int,
                 pin_memory: bool = False, drop_last: bool = False, persistent_workers: bool = False,
                 prefetch_factor: int | None = None) -> DataLoader:
    """A DataLoader yielding ``Batch`` tuples; `sampler` yields indices or SampleRefs (our samplers)."""
    if batch_size < 1:
        raise ResnetsError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ResnetsError(f"num_workers must be >= 0, got {num_workers}")
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra["persistent_workers"] = persistent_workers
        if prefetch_factor is not None:
            extra["prefetch_factor"] = prefetch_factor
    return DataLoader(NamedSkips(dataset), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_batch, pin_memory=pin_memory, drop_last=drop_last, **extra)


class BatchPreprocessor:
    """uint8 (N, 3, H, W) -> normalised float32 on `device`, optional random erasing, optional channels_last.

    `mean`/`std` are on the 0..1 scale (ImageNet: (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225)). Random
    erasing follows timm's RandomErasing, mode "pixel": with probability `re_prob` per image, one box of
    2%..1/3 of the area with aspect ratio in [0.3, 1/0.3] is replaced by N(0, 1) noise in the normalised
    space ("rand": one random colour per box, "const": zeros). All draws come from `generator`.
    """

    ERASE_MODES = ("pixel", "rand", "const")

    def __init__(self, mean: Sequence[float], std: Sequence[float], *, device: str | torch.device = "cpu",
                 channels_last: bool = False, re_prob: float = 0.0, re_mode: str = "pixel",
                 generator: torch.Generator | None = None, re_min_area: float = 0.02,
                 re_max_area: float = 1 / 3, re_min_aspect: float = 0.3):
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ResnetsError(f"mean {tuple(mean)} and std {tuple(std)} must give one positive std "
                               "per channel")
        if not 0.0 <= re_prob <= 1.0:
            raise ResnetsError(f"random erasing probability must be in [0, 1], got {re_prob}")
        if re_mode not in self.ERASE_MODES:
            raise ResnetsError(f"unknown random erasing mode {re_mode!r}; "
                               f"choose from {', '.join(self.ERASE_MODES)}")
        self.device = torch.device(device)
        self.channels_last = channels_last
        shape = (1, len(mean), 1, 1)
        # (x / 255 - mean) / std == (x - 255 mean) * (1 / (255 std)): one subtract and one multiply per pixel
        mean64, std64 = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
        self.offset = (255.0 * mean64).view(shape).float().to(self.device)
        self.scale = (1.0 / (255.0 * std64)).view(shape).float().to(self.device)
        self.re_prob = float(re_prob)
        self.re_mode = re_mode
        self.generator = generator if generator is not None else torch.Generator()
        self.re_area = (float(re_min_area), float(re_max_area))
        self.re_log_aspect = (math.log(re_min_aspect), math.log(1.0 / re_min_aspect))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ResnetsError(f"BatchPreprocessor expects uint8 (N, C, H, W), got {images.dtype} "
                               f"{tuple(images.shape)}")
        images = images.to(self.device, non_blocking=True)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        x = images.to(dtype=torch.float32, memory_format=memory_format)
        x.sub_(self.offset).mul_(self.scale)
        if self.re_prob > 0:
            self.erase(x)
        return x

    def erase(self, x: torch.Tensor) -> torch.Tensor:
        """Random erasing in place on a normalised batch; returns it. Vectorised: every image's draws (apply,
        10 tries of area and aspect, position) are one (N, 41) tensor from `generator` on the host, timm's rule
        picks the first box that fits, and one masked write fills all boxes (no host sync on a GPU)."""
        n, channels, height, width = x.shape
        u = torch.rand((n, 41), generator=self.generator, dtype=torch.float64)
        tries = u[:, 1:].view(n, 10, 4)
        target = height * width * (self.re_area[0] + (self.re_area[1] - self.re_area[0]) * tries[..., 0])
        aspect = torch.exp(self.re_log_aspect[0] + (self.re_log_aspect[1] - self.re_log_aspect[0]) * tries[..., 1])
        h = torch.round(torch.sqrt(target * aspect))
        w = torch.round(torch.sqrt(target / aspect))
        fits = (w < width) & (h < height)
        first = fits.double().argmax(dim=1, keepdim=True)
        erased = fits.any(dim=1) & (u[:, 0] < self.re_prob)
        top = torch.floor(tries[..., 2] * (height - h + 1)).gather(1, first)
        left = torch.floor(tries[..., 3] * (width - w + 1)).gather(1, first)
        h, w = h.gather(1, first), w.gather(1, first)
        box = torch.cat([top, left, h, w], dim=1).to(torch.int64)
        box[~erased, 2:] = 0  # an empty box: the image is left as it is
        box = box.to(x.device, non_blocking=True)
        ys = torch.arange(height, device=x.device).view(1, height, 1)
        xs = torch.arange(width, device=x.device).view(1, 1, width)
        t, lft, bh, bw = (box[:, k].view(n, 1, 1) for k in range(4))
        mask = ((ys >= t) & (ys < t + bh) & (xs >= lft) & (xs < lft + bw)).unsqueeze(1)
        noise_gen = torch.Generator(device=x.device)  # one device generator per batch, seeded from ours
        noise_gen.manual_seed(int(torch.randint(0, 2**62, (), generator=self.generator)))
        if self.re_mode == "const":
            fill = torch.zeros((), device=x.device, dtype=x.dtype)
        else:
            size = (n, channels, height, width) if self.re_mode == "pixel" else (n, channels, 1, 1)
            fill = torch.randn(size, generator=noise_gen, device=x.device, dtype=x.dtype)
        return x.copy_(torch.where(mask, fill, x))
