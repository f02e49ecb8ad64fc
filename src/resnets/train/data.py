"""The data side of a run: datasets, resumable samplers, loaders and the on-device batch preparation.

Images stay uint8 from decoding to the device; normalisation, random erasing and mixing happen on the
batch. Every augmentation is seeded per sample by the sampler, so the result depends on neither the worker
count nor the batch a sample lands in.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from ..data.batch_augment import BatchAugment
from ..data.build import build_dataset
from ..data.cache import CacheConfig, CachedDataset, cache_dataset
from ..data.datasets import ImageDataset
from ..data.decode import build_decoder, resolve_decode
from ..data.device_loader import DeviceBatches
from ..data.loader import BatchPreprocessor, build_loader
from ..data.samplers import RepeatAugSampler, ShuffleSampler
from ..data.transforms import TrainAugConfig, build_eval_transform, build_train_transform
from ..data.unlabeled import UnlabeledImages, UnlabeledShare, WithUnlabeled, scan_images
from ..errors import ResnetsError
from .distributed import DistContext
from .spec import RunSpec

SEED_STREAMS = {"mix": 17, "erase": 29}
"""Offsets of the per-rank generators for batch mixing and random erasing (seed * 1000 + offset + rank)."""


@dataclass
class TrainData:
    """What the loop iterates over, per rank."""

    train_set: ImageDataset
    val_set: ImageDataset
    classes: list[str]
    sampler: ShuffleSampler | RepeatAugSampler
    train_loader: DataLoader | DeviceBatches
    val_loader: DataLoader
    rank_batch: int
    """Images per micro-batch on this rank."""
    steps_per_epoch: int
    batches_per_epoch: int
    """Micro-batches per epoch (steps x accumulation: no trailing half-accumulated batch)."""
    workers: int
    pipeline: dict = field(default_factory=dict)
    """How the input pipeline was set up (cache, where augmentation and decoding run): recorded in run.json."""
    unlabeled_pool: int = 0
    """Unlabelled images available (--unlabeled), part of train_set after the labelled ones."""
    unlabeled_per_epoch: int = 0

    def describe(self) -> str:
        labeled = len(self.train_set) - self.unlabeled_pool
        extra = ""
        if self.unlabeled_pool:
            extra = f" + {self.unlabeled_per_epoch} of {self.unlabeled_pool} unlabelled per epoch"
        return (f"{len(self.classes)} classes, {labeled} train{extra} / {len(self.val_set)} val images, "
                f"{self.steps_per_epoch} steps/epoch")


def build_train_data(spec: RunSpec, ctx: DistContext, say: Callable[[str], None]) -> TrainData:
    """Datasets, samplers and loaders for `spec` on this rank; one-line errors for anything that cannot work."""
    recipe, options = spec.recipe, spec.options
    aug = TrainAugConfig(img_size=recipe.img_size, scale=tuple(recipe.rrc_scale), ratio=tuple(recipe.rrc_ratio),
                         interpolation=recipe.interpolation, hflip=recipe.hflip, auto_augment=recipe.auto_augment)
    on_device = options.augment_on == "device"
    train_transform = None if on_device else build_train_transform(aug)
    train_set = build_dataset(options.data, "train", train_transform, strict=options.strict)
    classes = list(train_set.classes)
    epoch_len, pool, per_epoch = len(train_set), 0, 0
    if options.unlabeled:  # distillation: unlabelled images join the stream after the labelled ones
        unlabeled = UnlabeledImages(scan_images(options.unlabeled), train_transform, strict=options.strict)
        pool = len(unlabeled)
        per_epoch = pool if options.unlabeled_ratio is None else max(1, round(options.unlabeled_ratio * epoch_len))
        epoch_len += per_epoch
        train_set = WithUnlabeled(train_set, unlabeled)
    val_set = build_dataset(options.data, "val",
                            build_eval_transform(spec.eval_img_size, recipe.eval_crop_pct,
                                                 recipe.resolved_eval_interpolation), strict=options.strict)
    cache = CacheConfig(options.cache, options.cache_budget)
    train_set, train_cache = cache_dataset(train_set, cache, world_size=ctx.world_size, say=say, label=" (train)")
    val_set, val_cache = cache_dataset(val_set, cache, world_size=ctx.world_size, say=say, label=" (val)")
    if list(val_set.classes) != classes:
        raise ResnetsError(f"train and val classes differ: train has {len(classes)} "
                           f"({', '.join(classes[:5])}...), val has {len(val_set.classes)}")

    world = ctx.world_size
    global_batch = spec.global_batch
    if global_batch % (world * recipe.grad_accum):
        raise ResnetsError(f"batch size {global_batch} must divide evenly over {world} process(es) x "
                           f"{recipe.grad_accum} accumulation step(s)")
    rank_batch = global_batch // (world * recipe.grad_accum)
    if epoch_len < rank_batch * world:
        raise ResnetsError(f"the training set has {epoch_len} images, fewer than one batch "
                           f"({rank_batch * world}); lower --batch-size")
    sampler_args = dict(seed=options.seed, num_replicas=world, rank=ctx.rank)
    if recipe.aug_repeats > 1:
        sampler: ShuffleSampler | RepeatAugSampler = RepeatAugSampler(
            epoch_len, num_repeats=recipe.aug_repeats, batch_size=rank_batch, **sampler_args)
        if sampler.chunk is not None:
            say(f"repeated augmentation x{recipe.aug_repeats} over {world} process(es): the copies of an image go "
                f"to consecutive batches, never into one BatchNorm batch")
    else:
        sampler = ShuffleSampler(epoch_len, shuffle=True, drop_last=True, **sampler_args)
    if per_epoch != pool:  # a share of the unlabelled pool per epoch: the sampler's slots take turns over it
        sampler = UnlabeledShare(sampler, labeled=len(train_set) - pool, pool=pool, per_epoch=per_epoch,
                                 seed=options.seed)

    pin = ctx.device.type == "cuda"
    workers = options.workers
    if workers is None:
        workers = 0 if options.data == "digits" else min(4, os.cpu_count() or 1)
    cached = isinstance(train_set, CachedDataset)
    decode = resolve_decode(options.decode, ctx.device, has_files=hasattr(train_set, "load_bytes"), cached=cached,
                            augment_on_device=on_device, say=say)
    train_loader: DataLoader | DeviceBatches
    if on_device:
        train_loader = DeviceBatches(train_set, sampler, rank_batch, BatchAugment(aug), device=ctx.device,
                                     workers=0 if cached else workers, pin_memory=pin,
                                     decode=build_decoder(decode, ctx.device, rank_batch))
    else:
        train_loader = build_loader(train_set, batch_size=rank_batch, sampler=sampler, num_workers=workers,
                                    pin_memory=pin, drop_last=True, persistent_workers=workers > 0)
    train_workers = train_loader.workers if isinstance(train_loader, DeviceBatches) else workers
    pipeline = {"cache": {"train": train_cache.to_dict(), "val": val_cache.to_dict()},
                "augment_on": options.augment_on, "decode": decode, "train_workers": train_workers}
    say(f"input pipeline: augmentation on the {'training device' if on_device else 'loader workers'} "
        f"({ctx.device.type}), decoding {'once into the cache' if cached else 'on the ' + decode.upper()}, "
        f"{train_workers} training loader worker(s)")
    val_indices = list(range(ctx.rank, len(val_set), world))
    val_loader = build_loader(val_set, batch_size=max(rank_batch, 32), sampler=val_indices, num_workers=workers,
                              pin_memory=pin)
    steps_per_epoch = len(sampler) // rank_batch // recipe.grad_accum
    if steps_per_epoch < 1:
        raise ResnetsError("an epoch has no complete optimiser step: lower --batch-size or grad_accum")
    return TrainData(train_set=train_set, val_set=val_set, classes=classes, sampler=sampler,
                     train_loader=train_loader, val_loader=val_loader, rank_batch=rank_batch,
                     steps_per_epoch=steps_per_epoch, batches_per_epoch=steps_per_epoch * recipe.grad_accum,
                     workers=workers, pipeline=pipeline, unlabeled_pool=pool, unlabeled_per_epoch=per_epoch)


def batch_preparers(spec: RunSpec, mean, std, ctx: DistContext, *,
                    channels_last: bool) -> tuple[BatchPreprocessor, BatchPreprocessor, torch.Generator]:
    """(training preparation with random erasing, evaluation preparation, the erasing generator)."""
    erase_generator = torch.Generator().manual_seed(spec.options.seed * 1000 + SEED_STREAMS["erase"] + ctx.rank)
    train = BatchPreprocessor(mean, std, device=ctx.device, channels_last=channels_last,
                              re_prob=spec.recipe.re_prob, re_mode=spec.recipe.re_mode, generator=erase_generator)
    evaluation = BatchPreprocessor(mean, std, device=ctx.device, channels_last=channels_last)
    return train, evaluation, erase_generator
