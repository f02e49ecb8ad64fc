"""Samplers: exact counts across ranks, disjoint shards, determinism, mid-epoch resume, per-sample seeds."""

from __future__ import annotations

import collections

import pytest
import torch

from resnets.data.build import build_dataset
from resnets.data.datasets import SampleRef
from resnets.data.loader import build_loader
from resnets.data.samplers import RepeatAugSampler, ShuffleSampler, sample_seed
from resnets.data.transforms import TrainAugConfig, build_train_transform
from resnets.errors import ResnetsError


def _ranks(cls, n: int, replicas: int, **kw) -> list[list[SampleRef]]:
    return [list(cls(n, num_replicas=replicas, rank=r, **kw)) for r in range(replicas)]


def test_shuffle_sampler_ranks_are_disjoint_and_cover_everything():
    per_rank = _ranks(ShuffleSampler, 12, 3, seed=5)
    indices = [[ref.index for ref in refs] for refs in per_rank]
    assert [len(i) for i in indices] == [4, 4, 4]
    assert sorted(sum(indices, [])) == list(range(12))
    padded = _ranks(ShuffleSampler, 10, 4)  # 10 -> 12 by wrapping: every index at least once
    assert len(ShuffleSampler(10, num_replicas=4)) == 3
    assert set(sum(([r.index for r in refs] for refs in padded), [])) == set(range(10))
    dropped = _ranks(ShuffleSampler, 10, 4, drop_last=True)
    flat = sum(([r.index for r in refs] for refs in dropped), [])
    assert len(flat) == 8 and len(set(flat)) == 8


def test_order_and_seeds_are_deterministic_per_seed_and_epoch():
    a, b = ShuffleSampler(50, seed=1), ShuffleSampler(50, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b) and sorted(r.index for r in a) == list(range(50))
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(ShuffleSampler(50, seed=2)) != list(ShuffleSampler(50, seed=1))
    assert [r.index for r in ShuffleSampler(5, shuffle=False)] == [0, 1, 2, 3, 4]
    seeds = [r.seed for r in a]
    assert len(set(seeds)) == 50 and all(0 <= s < 2**63 for s in seeds)
    assert sample_seed(1, 1, 3) != sample_seed(1, 3, 1)


@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
def test_repeat_sampler_full_epoch_counts_are_exact(replicas):
    n, repeats = 12, 3
    per_rank = _ranks(RepeatAugSampler, n, replicas, num_repeats=repeats, seed=4, full_epoch=True)
    counts = collections.Counter(ref.index for refs in per_rank for ref in refs)
    assert counts == {i: repeats for i in range(n)}
    assert all(len(refs) == n * repeats // replicas for refs in per_rank)
    if replicas == repeats:  # consecutive repeats go to different ranks: each rank sees every image once
        assert all(sorted(r.index for r in refs) == list(range(n)) for refs in per_rank)


def test_repeat_sampler_default_epoch_is_the_selected_part():
    n, repeats, replicas = 12, 3, 2
    per_rank = _ranks(RepeatAugSampler, n, replicas, num_repeats=repeats, seed=0)
    assert [len(refs) for refs in per_rank] == [6, 6]  # ceil(12 / 2): the epoch costs what it would without
    counts = collections.Counter(ref.index for refs in per_rank for ref in refs)
    assert sorted(counts.values()) == [3, 3, 3, 3]  # 4 images, each exactly 3 times
    single = list(RepeatAugSampler(9, num_repeats=3, seed=0))
    assert [r.index for r in single[0:3]] == [single[0].index] * 3  # one rank: repeats are consecutive
    assert len({r.seed for r in single[0:3]}) == 3  # ... each with its own augmentation seed


@pytest.mark.parametrize("sampler", [
    ShuffleSampler(37, seed=3, num_replicas=2, rank=1),
    RepeatAugSampler(37, num_repeats=3, seed=3, num_replicas=2, rank=0),
])
def test_set_start_resumes_the_exact_remaining_sequence(sampler):
    sampler.set_epoch(4)
    full = list(sampler)
    for start in (0, 1, 8, len(full) - 1, len(full)):
        sampler.set_start(start)
        assert list(sampler) == full[start:]
        assert len(sampler) == len(full)  # the epoch length, before skipping
    sampler.set_epoch(5)
    assert sampler.start == 0 and len(list(sampler)) == len(full)
    with pytest.raises(ResnetsError, match="cannot start at sample"):
        sampler.set_start(len(full) + 1)


def test_bad_sampler_arguments():
    with pytest.raises(ResnetsError, match="rank 2 is outside"):
        ShuffleSampler(10, num_replicas=2, rank=2)
    with pytest.raises(ResnetsError, match="empty dataset"):
        RepeatAugSampler(0)
    with pytest.raises(ResnetsError, match="num_repeats"):
        RepeatAugSampler(10, num_repeats=0)


def test_augmentations_do_not_depend_on_worker_count(shared_data):
    transform = build_train_transform(TrainAugConfig(img_size=24, auto_augment="rand-m9-mstd0.5-inc1"))
    dataset = build_dataset(str(shared_data / "cifar10-mini"), "val", transform)
    dataset.paths, dataset.targets = dataset.paths[::50], dataset.targets[::50]  # 40 images
    runs = []
    for workers in (0, 2):
        sampler = RepeatAugSampler(len(dataset), num_repeats=2, seed=11, full_epoch=True)
        sampler.set_epoch(2)
        loader = build_loader(dataset, batch_size=6, sampler=sampler, num_workers=workers)
        runs.append([(b.images, b.targets) for b in loader])
    assert len(runs[0]) == len(runs[1]) == 14
    for (images_a, targets_a), (images_b, targets_b) in zip(*runs, strict=True):
        assert torch.equal(targets_a, targets_b) and torch.equal(images_a, images_b)
    first = runs[0][0][0]
    assert not torch.equal(first[0], first[1])  # the two repeats of an image are augmented differently


@pytest.mark.parametrize("replicas, repeats, batch", [(1, 3, 8), (2, 3, 4), (1, 2, 5), (3, 3, 4)])
def test_repeat_aug_never_puts_copies_into_one_batch(replicas, repeats, batch):
    n = 60
    per_rank = _ranks(RepeatAugSampler, n, replicas, num_repeats=repeats, seed=2, batch_size=batch,
                      full_epoch=True)
    for refs in per_rank:
        for start in range(0, len(refs) - batch + 1, batch):
            chunk = [r.index for r in refs[start:start + batch]]
            assert len(set(chunk)) == len(chunk), (start, chunk)
    counts = collections.Counter(ref.index for refs in per_rank for ref in refs)
    assert min(counts.values()) >= repeats  # every image, each at least num_repeats times (a few pad the last chunk)


def test_repeat_aug_on_one_process_keeps_copies_in_consecutive_batches():
    sampler = RepeatAugSampler(40, num_repeats=3, seed=0, batch_size=4)
    refs = list(sampler)
    assert len(refs) == 40  # the epoch costs what it would without repeats
    first = [r.index for r in refs[:4]]
    assert [r.index for r in refs[4:8]] == first == [r.index for r in refs[8:12]]
    assert len({r.seed for r in refs[:12]}) == 12  # each copy with its own augmentation seed


def test_repeat_aug_refuses_a_batch_larger_than_the_data():
    with pytest.raises(ResnetsError, match="distinct images"):
        RepeatAugSampler(10, num_repeats=3, batch_size=16)
