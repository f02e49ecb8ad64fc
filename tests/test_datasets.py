"""Datasets: image folders (formats, bad files, layout errors), tar shards, digits, per-sample seeding."""

from __future__ import annotations

import random
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.data.build import build_dataset
from resnets.data.datasets import SampleRef, Skipped, SkippedImages
from resnets.data.digits import stratified_split
from resnets.data.shards import expand_braces, write_shards
from resnets.data.transforms import TrainAugConfig, build_train_transform
from resnets.errors import ResnetsError


def _pixels(seed: int, size: tuple[int, int] = (20, 24)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _jpeg_bytes(seed: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(_pixels(seed)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_folder(root: Path, *, with_bad: bool = True) -> Path:
    """train/cat: RGB PNG, greyscale JPEG, palette PNG, RGBA PNG; train/dog: JPEGs (+ corrupt, truncated)."""
    cat, dog = root / "train" / "cat", root / "train" / "dog"
    cat.mkdir(parents=True)
    dog.mkdir(parents=True)
    Image.fromarray(_pixels(0)).save(cat / "rgb.png")
    Image.fromarray(_pixels(1)[..., 0]).save(cat / "grey.jpg")
    Image.fromarray(_pixels(2)).convert("P").save(cat / "palette.png")
    Image.fromarray(np.dstack([_pixels(3), _pixels(4)[..., :1]])).save(cat / "rgba.png")
    (cat / "notes.txt").write_text("not an image, ignored")
    (cat / ".hidden.jpg").write_bytes(b"ignored too")
    (dog / "a.jpg").write_bytes(_jpeg_bytes(5))
    Image.fromarray(_pixels(6)).save(dog / "b.JPEG")
    if with_bad:
        (dog / "corrupt.jpg").write_bytes(b"this is not a JPEG")
        (dog / "truncated.jpg").write_bytes(_jpeg_bytes(7)[:300])
    return root


def test_folder_formats_convert_to_rgb_and_classes_sort(tmp_path):
    ds = build_dataset(str(make_folder(tmp_path, with_bad=False)), "train", None)
    assert ds.classes == ["cat", "dog"]
    assert len(ds) == 6 and ds.targets == [0, 0, 0, 0, 1, 1]
    names = [Path(ds.sample_name(i)).name for i in range(len(ds))]
    assert names == ["grey.jpg", "palette.png", "rgb.png", "rgba.png", "a.jpg", "b.JPEG"]
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.dtype == torch.uint8 and image.shape == (3, 20, 24) and label == ds.targets[i]
    grey, _ = ds[0]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # greyscale replicated
    rgb, _ = ds[2]
    assert torch.equal(rgb, torch.from_numpy(_pixels(0)).permute(2, 0, 1))  # PNG decodes losslessly
    rgba, _ = ds[3]
    assert torch.equal(rgba, torch.from_numpy(_pixels(3)).permute(2, 0, 1))  # alpha dropped


def test_corrupt_and_truncated_are_skipped_with_names(tmp_path):
    ds = build_dataset(str(make_folder(tmp_path)), "train", None)
    assert len(ds) == 8
    results = {Path(ds.sample_name(i)).name: ds.load_sample(i) for i in range(len(ds))}
    bad = {name for name, sample in results.items() if isinstance(sample, Skipped)}
    assert bad == {"corrupt.jpg", "truncated.jpg"}
    assert "truncated" in results["truncated.jpg"].reason
    assert ds[ds.targets.index(1) + 2] is None  # __getitem__ gives None for a skipped sample
    log = SkippedImages()
    log.add(s.name for s in results.values() if isinstance(s, Skipped))
    assert log.count == 2 and "skipped 2 unreadable images" in log.report()


def test_strict_raises_naming_the_file(tmp_path):
    ds = build_dataset(str(make_folder(tmp_path)), "train", None, strict=True)
    corrupt = next(i for i in range(len(ds)) if ds.sample_name(i).endswith("corrupt.jpg"))
    with pytest.raises(ResnetsError, match=r"corrupt\.jpg"):
        ds[corrupt]


def test_layout_errors(tmp_path):
    with pytest.raises(ResnetsError, match="data path not found"):
        build_dataset(str(tmp_path / "missing"), "train", None)
    (tmp_path / "train").mkdir()
    (tmp_path / "extra").mkdir()
    with pytest.raises(ResnetsError, match=r"no 'val' folder .*found: extra/, train/"):
        build_dataset(str(tmp_path), "val", None)
    with pytest.raises(ResnetsError, match="empty dataset"):
        build_dataset(str(tmp_path), "train", None)
    Image.fromarray(_pixels(0)).save(tmp_path / "train" / "loose.png")
    with pytest.raises(ResnetsError, match="no classes"):
        build_dataset(str(tmp_path), "train", None)
    (tmp_path / "train" / "cat").mkdir()
    Image.fromarray(_pixels(0)).save(tmp_path / "train" / "cat" / "x.png")
    (tmp_path / "train" / "empty_class").mkdir()
    (tmp_path / "train" / "empty_class" / "readme.txt").write_text("no images here")
    with pytest.raises(ResnetsError, match=r"class folder .*empty_class has no images"):
        build_dataset(str(tmp_path), "train", None)


def test_real_imagenette_folder(shared_data):
    ds = build_dataset(str(shared_data / "imagenette-mini"), "val", None)
    assert len(ds) == 300 and len(ds.classes) == 10 and ds.classes[0] == "n01440764"
    image, label = ds[len(ds) - 1]
    assert image.shape == (3, 224, 224) and image.dtype == torch.uint8 and label == 9


def test_sample_ref_seeds_the_augmentation(shared_data):
    transform = build_train_transform(TrainAugConfig(img_size=64, auto_augment="rand-m9-mstd0.5-inc1"))
    ds = build_dataset(str(shared_data / "cifar10-mini"), "train", transform)
    first, _ = ds[SampleRef(5, seed=1234)]
    again, _ = ds[SampleRef(5, seed=1234)]
    other = [ds[SampleRef(5, seed=s)][0] for s in range(4)]
    assert first.shape == (3, 64, 64) and torch.equal(first, again)
    assert any(not torch.equal(first, o) for o in other)


def test_seeded_loading_leaves_the_callers_generators_alone(tmp_path):
    ds = build_dataset(str(make_folder(tmp_path, with_bad=False)), "train",
                       build_train_transform(TrainAugConfig(img_size=16)))
    torch.manual_seed(7)
    random.seed(7)
    expected = (torch.rand(3), random.random())
    torch.manual_seed(7)
    random.seed(7)
    ds[SampleRef(0, seed=99)]
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]


# --------------------------------------------------------------------------------------------- shards
def _folder_samples(ds) -> list[tuple[bytes, int, str]]:
    pairs = zip(ds.paths, ds.targets, strict=True)
    return [(Path(p).read_bytes(), label, Path(p).suffix.lstrip(".").lower()) for p, label in pairs]


def test_shards_round_trip_every_spec_form(tmp_path):
    folder = build_dataset(str(make_folder(tmp_path / "folder", with_bad=False)), "train", None)
    samples = _folder_samples(folder)
    write_shards(samples, str(tmp_path / "shards" / "train-%03d.tar"), per_shard=4, classes=folder.classes)
    (tmp_path / "bysplit" / "train").mkdir(parents=True)
    write_shards(samples, str(tmp_path / "bysplit" / "train" / "part-%02d.tar"), per_shard=5)
    specs = [
        str(tmp_path / "shards" / "train-{000..001}.tar"),
        str(tmp_path / "shards" / "{split}-{000..001}.tar"),
        str(tmp_path / "shards" / "train-*.tar"),
        str(tmp_path / "shards"),  # <spec>/<split>-*.tar
        str(tmp_path / "bysplit"),  # <spec>/<split>/*.tar
    ]
    for spec in specs:
        ds = build_dataset(spec, "train", None)
        assert len(ds) == len(folder) and ds.targets == folder.targets, spec
        for i in range(len(ds)):
            assert torch.equal(ds[i][0], folder[i][0]), (spec, i)
    assert build_dataset(specs[0], "train", None).classes == ["cat", "dog"]  # from classes.txt
    assert build_dataset(specs[4], "train", None).classes == ["0", "1"]  # no classes.txt


def test_shards_skip_corrupt_members_and_work_in_workers(tmp_path):
    samples = [(_jpeg_bytes(i), i % 3, "jpg") for i in range(5)] + [(b"garbage", 1, "jpg")]
    write_shards(samples, str(tmp_path / "train-%d.tar"), per_shard=3)
    ds = build_dataset(str(tmp_path / "train-{0..1}.tar"), "train", None)
    assert len(ds) == 6 and ds.classes == ["0", "1", "2"]
    skipped = ds.load_sample(5)
    assert isinstance(skipped, Skipped) and skipped.name.endswith("train-1.tar:00000005.jpg")
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    decoded = [sample for sample in loader]
    assert sum(s is None for s in decoded) == 1
    assert all(torch.equal(decoded[i][0], ds[i][0]) for i in range(5))


def test_shard_errors(tmp_path):
    with pytest.raises(ResnetsError, match="shard not found"):
        build_dataset(str(tmp_path / "train-{000..002}.tar"), "train", None)
    with pytest.raises(ResnetsError, match="no shard files match"):
        build_dataset(str(tmp_path / "*.tar"), "train", None)
    with pytest.raises(ResnetsError, match="compressed shards"):
        build_dataset(str(tmp_path / "train.tar.gz"), "train", None)
    no_label = tmp_path / "nolabel.tar"
    with tarfile.open(no_label, "w") as tar:
        tar.add(_write(tmp_path / "x.jpg", _jpeg_bytes(0)), arcname="x.jpg")
    with pytest.raises(ResnetsError, match=r"'x' .* no x\.cls label"):
        build_dataset(str(no_label), "train", None)
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    with pytest.raises(ResnetsError, match="empty dataset"):
        build_dataset(str(empty), "train", None)
    write_shards([(_jpeg_bytes(0), 4, "jpg")], str(tmp_path / "c" / "s-%d.tar"), classes=["a", "b"])
    with pytest.raises(ResnetsError, match="label 4 .* outside the 2 classes"):
        build_dataset(str(tmp_path / "c" / "s-0.tar"), "train", None)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_expand_braces():
    assert expand_braces("a-{08..11}.tar") == ["a-08.tar", "a-09.tar", "a-10.tar", "a-11.tar"]
    assert expand_braces("{x,y}/{1..2}") == ["x/1", "x/2", "y/1", "y/2"]
    with pytest.raises(ResnetsError, match="bad shard pattern"):
        expand_braces("a-{oops}.tar")


# --------------------------------------------------------------------------------------------- digits
def test_digits_split_is_stratified_and_deterministic():
    train, val = build_dataset("digits", "train", None), build_dataset("digits", "val", None)
    assert (len(train), len(val)) == (1438, 359)
    train_idx, val_idx = stratified_split(np.arange(1797) % 10, 0.2, seed=0)
    assert len(set(train_idx) | set(val_idx)) == 1797 and not set(train_idx) & set(val_idx)
    assert train.classes == [str(i) for i in range(10)]
    assert sorted(set(val.targets)) == list(range(10))
    assert all(35 <= val.targets.count(c) <= 37 for c in range(10))
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8 and 0 <= label <= 9
    assert torch.equal(image[0], image[2]) and int(image.max()) > 128
    again = build_dataset("digits", "train", None)
    assert again.targets == train.targets and torch.equal(again[100][0], train[100][0])
    with pytest.raises(ResnetsError, match="splits 'train' and 'val'"):
        build_dataset("digits", "test", None)
