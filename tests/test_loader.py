"""Loader: uint8 batches, skipped-file reporting through the collate, batch normalisation and erasing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2 as T

from resnets.data.build import build_dataset
from resnets.data.datasets import SkippedImages
from resnets.data.loader import Batch, BatchPreprocessor, build_loader, collate_batch
from resnets.data.samplers import ShuffleSampler
from resnets.data.transforms import TrainAugConfig, build_eval_transform, build_train_transform
from resnets.errors import ResnetsError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _folder_with_bad_files(root):
    for label in ("a", "b"):
        (root / "train" / label).mkdir(parents=True)
        for i in range(4):
            pixels = np.random.default_rng(i).integers(0, 256, (12 + i, 14, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "train" / label / f"{i}.png")
    (root / "train" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    (root / "train" / "b" / "empty.png").write_bytes(b"")
    return build_dataset(str(root), "train", build_eval_transform(8, crop_pct=1.0))


@pytest.mark.parametrize("workers", [0, 2])
def test_skipped_files_are_reported_through_the_collate(tmp_path, workers):
    dataset = _folder_with_bad_files(tmp_path)
    loader = build_loader(dataset, batch_size=4, sampler=ShuffleSampler(len(dataset), seed=0),
                          num_workers=workers)
    log = SkippedImages()
    seen = []
    for batch in loader:
        assert isinstance(batch, Batch)
        assert batch.images.dtype == torch.uint8 and batch.images.shape[1:] == (3, 8, 8)
        assert batch.targets.dtype == torch.int64 and len(batch.targets) == len(batch.images)
        log.add(batch.skipped)
        seen.extend(batch.targets.tolist())
    assert len(seen) == 8 and sorted(seen) == [0] * 4 + [1] * 4
    assert log.count == 2 and {name.rsplit("/", 1)[-1] for name in log.names} == {"broken.jpg", "empty.png"}
    assert log.report().startswith("skipped 2 unreadable images: ")


def test_strict_dataset_stops_the_loader_naming_the_file(tmp_path):
    dataset = _folder_with_bad_files(tmp_path)
    dataset.strict = True
    loader = build_loader(dataset, batch_size=10, sampler=ShuffleSampler(len(dataset)), num_workers=0)
    with pytest.raises(ResnetsError, match=r"broken\.jpg|empty\.png"):
        next(iter(loader))


def test_collate_of_only_skipped_samples_is_an_empty_batch():
    batch = collate_batch([None])
    assert batch.images.shape[0] == 0 and batch.targets.shape == (0,) and batch.skipped == ["unknown sample"]
    with pytest.raises(ResnetsError, match="differ in size"):
        small, large = torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(3, 5, 5, dtype=torch.uint8)
        collate_batch([(small, 0), (large, 1)])


def test_real_images_through_the_training_pipeline(shared_data):
    transform = build_train_transform(TrainAugConfig(img_size=48, interpolation="bicubic",
                                                     auto_augment="rand-m6-mstd0.5-inc1"))
    dataset = build_dataset(str(shared_data / "imagenette-mini"), "train", transform)
    sampler = ShuffleSampler(len(dataset), seed=0)
    loader = build_loader(dataset, batch_size=8, sampler=sampler, num_workers=0, drop_last=True)
    batch = next(iter(loader))
    assert batch.images.shape == (8, 3, 48, 48) and batch.skipped == []
    x = BatchPreprocessor(MEAN, STD, device="cpu")(batch.images)
    assert x.dtype == torch.float32 and float(x.min()) > -2.2 and float(x.max()) < 2.7
    assert len(loader) == 100


def test_normalisation_matches_torchvision():
    images = torch.randint(0, 256, (4, 3, 10, 12), dtype=torch.uint8)
    reference = T.Normalize(MEAN, STD)(T.ToDtype(torch.float32, scale=True)(images))
    out = BatchPreprocessor(MEAN, STD, device="cpu")(images)
    assert (out - reference).abs().max() < 1e-6 and out.is_contiguous()
    last = BatchPreprocessor(MEAN, STD, device="cpu", channels_last=True)(images)
    assert last.is_contiguous(memory_format=torch.channels_last) and (last - reference).abs().max() < 1e-6
    assert images.dtype == torch.uint8  # the input is not modified


def test_random_erasing_changes_a_box_of_each_image():
    images = torch.full((6, 3, 32, 32), 128, dtype=torch.uint8)
    plain = BatchPreprocessor(MEAN, STD, device="cpu")(images)
    erase = BatchPreprocessor(MEAN, STD, re_prob=1.0, generator=torch.Generator().manual_seed(0))
    out = erase(images)
    changed = (out != plain).any(dim=1)  # (N, H, W) pixels touched
    for mask in changed:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert 0.02 * 1024 * 0.5 <= mask.sum() <= area <= 1024 / 3 * 1.2  # one box of 2%..33% of the image
    assert 0.5 < float(out[changed.unsqueeze(1).expand_as(out)].std()) < 1.5  # N(0, 1) noise per pixel
    again = BatchPreprocessor(MEAN, STD, re_prob=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again(images), out)
    assert torch.equal(BatchPreprocessor(MEAN, STD, device="cpu", re_prob=0.0)(images), plain)


def test_preprocessor_errors():
    with pytest.raises(ResnetsError, match="expects uint8"):
        BatchPreprocessor(MEAN, STD)(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ResnetsError, match="random erasing mode"):
        BatchPreprocessor(MEAN, STD, re_mode="fancy")
    with pytest.raises(ResnetsError, match="batch_size"):
        build_loader([], batch_size=0, sampler=None, num_workers=0)


def test_random_erasing_rate_and_box_areas_match_timm():
    """The vectorised erasing draws boxes by timm's rule: same apply rate and erased-area distribution."""
    timm_re = pytest.importorskip("timm.data.random_erasing")
    n = 600
    images = torch.full((n, 3, 24, 24), 128, dtype=torch.uint8)
    ours = BatchPreprocessor(MEAN, STD, re_prob=0.4, re_mode="const", generator=torch.Generator().manual_seed(1))
    plain = BatchPreprocessor(MEAN, STD)(images)
    ours_area = ((ours(images) != plain).any(1).flatten(1).double().mean(1))
    torch.manual_seed(0)
    theirs = timm_re.RandomErasing(probability=0.4, mode="const", device="cpu")
    timm_out = theirs(torch.ones(n, 3, 24, 24))
    timm_area = (timm_out == 0).any(1).flatten(1).double().mean(1)
    for area in (ours_area, timm_area):
        assert abs(float((area > 0).double().mean()) - 0.4) < 0.06
    assert abs(float(ours_area[ours_area > 0].mean()) - float(timm_area[timm_area > 0].mean())) < 0.02
