"""Deterministic, resumable, DDP-aware samplers that yield ``SampleRef(index, seed)``.

An epoch's order is a pure function of (seed, epoch): every rank computes the same global list and takes
its own slice, so no communication is needed and a restarted process rebuilds the same order. Each
position of that global list also gets its own augmentation seed (a hash of seed, epoch and position), so a
sample's augmentation does not depend on the worker or batch that loads it. ``set_start(n)`` skips the
first n samples of this rank's epoch: a run resumed mid-epoch sees exactly the samples, and the
augmentations, that the interrupted run would have seen next.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from ..errors import ResnetsError
from .datasets import SampleRef

_MASK64 = (1 << 64) - 1


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A well-mixed 63-bit seed from (seed, epoch, position): splitmix64 over the three values."""
    value = 0
    for part in (seed, epoch, position):
        value = (value ^ (part & _MASK64)) * 0x9E3779B97F4A7C15 & _MASK64
        value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
        value = (value ^ (value >> 27)) * 0x94D049BB133111EB & _MASK64
        value ^= value >> 31
    return value >> 1


def _check_replicas(num_replicas: int, rank: int) -> None:
    if num_replicas < 1:
        raise ResnetsError(f"num_replicas must be >= 1, got {num_replicas}")
    if not 0 <= rank < num_replicas:
        raise ResnetsError(f"rank {rank} is outside [0, {num_replicas})")


class _ResumableSampler(Sampler[SampleRef]):
    """Shared epoch/start bookkeeping; subclasses build the global order and their positions in it."""

    def __init__(self, dataset_len: int, *, shuffle: bool, seed: int, num_replicas: int, rank: int):
        if dataset_len < 1:
            raise ResnetsError("cannot sample from an empty dataset")
        _check_replicas(num_replicas, rank)
        self.dataset_len = int(dataset_len)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's order; also resets the start to 0 (call set_start after set_epoch)."""
        self.epoch = int(epoch)
        self.start = 0

    def set_start(self, n: int) -> None:
        """Skip the first n samples of this rank's current epoch (mid-epoch resume)."""
        if not 0 <= n <= len(self):
            raise ResnetsError(f"cannot start at sample {n} of an epoch of {len(self)} samples")
        self.start = int(n)

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.dataset_len)
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        return torch.randperm(self.dataset_len, generator=generator)

    def _positions(self) -> tuple[list[int], list[int]]:  # pragma: no cover - abstract
        """(dataset indices, global positions) of this rank's samples, in order."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[SampleRef]:
        indices, positions = self._positions()
        for index, position in zip(indices[self.start:], positions[self.start:], strict=True):
            yield SampleRef(index, sample_seed(self.seed, self.epoch, position))

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(len={len(self)}, shuffle={self.shuffle}, seed={self.seed}, "
                f"rank={self.rank}/{self.num_replicas}, epoch={self.epoch})")


class ShuffleSampler(_ResumableSampler):
    """DistributedSampler's split: pad (or, with drop_last, cut) to a multiple of num_replicas, take every
    num_replicas-th sample from position `rank`. Ranks are disjoint except for the padding samples."""

    def __init__(self, dataset_len: int, *, shuffle: bool = True, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0, drop_last: bool = False):
        super().__init__(dataset_len, shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank)
        self.drop_last = drop_last
        if drop_last:
            self.num_samples = self.dataset_len // self.num_replicas
            if self.num_samples == 0:
                raise ResnetsError(f"{self.dataset_len} samples cannot feed {self.num_replicas} replicas "
                                   "with drop_last")
        else:
            self.num_samples = math.ceil(self.dataset_len / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __len__(self) -> int:
        return self.num_samples

    def _positions(self) -> tuple[list[int], list[int]]:
        order = self._order().tolist()
        if self.total_size > len(order):  # pad by wrapping around, as DistributedSampler does
            order = (order * math.ceil(self.total_size / len(order)))[:self.total_size]
        positions = list(range(self.rank, self.total_size, self.num_replicas))
        return [order[p] for p in positions], positions


class RepeatAugSampler(_ResumableSampler):
    """Repeated augmentation (DeiT's RASampler, timm's RepeatAugSampler): each image is used `num_repeats`
    times in a row in the global order, and consecutive repeats go to different ranks (different
    augmentations of one image land in one global batch).

    Epoch length: by default each rank yields ceil(dataset_len / num_replicas) samples, the "selected" first
    part of the repeated order, as timm and DeiT do; an epoch then costs the same as without repeats but
    covers about 1/num_repeats of the images, each num_repeats times (epoch counts of the recipes assume
    this). timm by default also rounds the selected part down to a multiple of 256 images, which would
    leave small data sets with empty epochs; that rounding is not done here. With ``full_epoch=True``
    every image appears exactly num_repeats times across all ranks (when dataset_len * num_repeats is a
    multiple of num_replicas; otherwise a few wrap around as padding) and each rank yields
    ceil(dataset_len * num_repeats / num_replicas) samples.

    Copies never share a BatchNorm batch when `batch_size` (per rank) is given: with more repeats than
    ranks (one process, say) consecutive copies would land in one rank's batch, which timm refuses and
    which makes BN statistics see the same image several times. Then the global order is built from
    chunks of one global batch of distinct images (batch_size x num_replicas), each chunk repeated
    num_repeats times: copies of an image go to the same rank in consecutive steps, never into one batch.
    A last short chunk is completed with images from the start of the epoch's order.
    """

    def __init__(self, dataset_len: int, *, num_repeats: int = 3, shuffle: bool = True, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, full_epoch: bool = False, batch_size: int | None = None):
        super().__init__(dataset_len, shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank)
        if num_repeats < 1:
            raise ResnetsError(f"num_repeats must be >= 1, got {num_repeats}")
        self.num_repeats = int(num_repeats)
        self.full_epoch = full_epoch
        self.chunk = None
        """Distinct images per repeated chunk (one global batch), or None: copies stay consecutive."""
        if batch_size is not None and self.num_repeats > self.num_replicas:
            self.chunk = int(batch_size) * self.num_replicas
            if self.chunk > self.dataset_len:
                raise ResnetsError(f"repeated augmentation x{self.num_repeats} over {self.num_replicas} "
                                   f"process(es) needs a global batch of distinct images, but the data set has "
                                   f"{self.dataset_len} images for a batch of {self.chunk}: lower the batch "
                                   "size or set aug_repeats=0")
        repeated = self.dataset_len * self.num_repeats
        if self.chunk is not None:
            repeated = math.ceil(self.dataset_len / self.chunk) * self.chunk * self.num_repeats
        self.padded_size = math.ceil(repeated / self.num_replicas) * self.num_replicas
        if full_epoch:
            self.num_samples = self.padded_size // self.num_replicas
        else:
            self.num_samples = math.ceil(self.dataset_len / self.num_replicas)

    def __len__(self) -> int:
        return self.num_samples

    def _repeated_order(self) -> list[int]:
        order = self._order()
        if self.chunk is None:
            return order.repeat_interleave(self.num_repeats).tolist()
        images = order.tolist()
        short = -len(images) % self.chunk
        images += images[:short]  # complete the last chunk with distinct images from the start
        out: list[int] = []
        for start in range(0, len(images), self.chunk):
            out += images[start:start + self.chunk] * self.num_repeats
        return out

    def _positions(self) -> tuple[list[int], list[int]]:
        order = self._repeated_order()
        if self.padded_size > len(order):
            order += order[:self.padded_size - len(order)]
        positions = list(range(self.rank, self.padded_size, self.num_replicas))[:self.num_samples]
        return [order[p] for p in positions], positions
