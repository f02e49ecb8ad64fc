"""Training/eval transforms and the timm-configuration RandAugment on uint8 tensors."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from resnets.data import randaugment as ra
from resnets.data.preprocess import eval_transform, load_image
from resnets.data.transforms import (
    RandomResizedCrop,
    TrainAugConfig,
    build_eval_transform,
    build_train_transform,
)
from resnets.errors import ResnetsError


@pytest.fixture(scope="module")
def photo(shared_data) -> torch.Tensor:
    """A real 224x224 JPEG from imagenette-mini, as decoded (a channels-last view)."""
    return load_image(sorted((shared_data / "imagenette-mini" / "train" / "n03888257").iterdir())[0])


def _pil(img: torch.Tensor) -> Image.Image:
    return Image.fromarray(img.permute(1, 2, 0).contiguous().numpy())


def _tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


@pytest.mark.parametrize("cfg", [
    TrainAugConfig(img_size=96),
    TrainAugConfig(img_size=96, interpolation="bicubic", auto_augment="rand-m7-mstd0.5-inc1"),
    TrainAugConfig(img_size=80, interpolation="random", auto_augment="rand-m9-n3-mstd101-mmax15"),
    TrainAugConfig(img_size=64, auto_augment="ta_wide", hflip=0.0, scale=(0.5, 1.0)),
])
def test_train_transform_outputs_uint8_crops(photo, cfg):
    transform = build_train_transform(cfg)
    random.seed(0)
    torch.manual_seed(0)
    outputs = [transform(photo) for _ in range(8)]
    for out in outputs:
        assert out.dtype == torch.uint8 and out.shape == (3, cfg.img_size, cfg.img_size)
    assert len({out.float().sum().item() for out in outputs}) > 1  # random crops differ


def test_train_transform_is_reproducible_from_seeds(photo):
    transform = build_train_transform(TrainAugConfig(img_size=64, auto_augment="rand-m9-mstd0.5-inc1"))
    results = []
    for _ in range(2):
        random.seed(3)
        torch.manual_seed(3)
        results.append(transform(photo))
    assert torch.equal(results[0], results[1])


def test_random_resized_crop_respects_scale_and_ratio():
    crop = RandomResizedCrop(32, scale=(0.25, 0.5), ratio=(0.5, 2.0))
    random.seed(1)
    for _ in range(200):
        top, left, h, w = crop.params(300, 400)
        assert 0 <= top <= 300 - h and 0 <= left <= 400 - w
        assert 0.2 <= h * w / 120000 <= 0.55 and 0.45 <= w / h <= 2.2
    # a very wide image cannot fit the ratio range: centre crop clamped to the widest allowed ratio
    narrow = RandomResizedCrop(32, scale=(0.99, 1.0), ratio=(1.0, 1.0))
    assert narrow.params(10, 100) == (0, 45, 10, 10)
    with pytest.raises(ResnetsError, match="crop scale"):
        RandomResizedCrop(32, scale=(0.5, 0.1))
    with pytest.raises(ResnetsError, match="unknown interpolation"):
        RandomResizedCrop(32, interpolation="bicubik")


def test_eval_transform_matches_preprocess_eval(photo):
    ours = build_eval_transform(160, crop_pct=0.95, interpolation="bicubic")(photo)
    assert ours.dtype == torch.uint8 and ours.shape == (3, 160, 160)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    reference = eval_transform(160, 0.95, "bicubic", mean, std)(photo)
    normalised = (ours.float() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(normalised, reference, atol=1e-5)
    with pytest.raises(ResnetsError, match="crop_pct"):
        build_eval_transform(160, crop_pct=1.5)


def test_unknown_auto_augment_is_an_error():
    with pytest.raises(ResnetsError, match="unknown auto_augment 'augmix-m5'"):
        build_train_transform(TrainAugConfig(auto_augment="augmix-m5"))
    assert build_train_transform(TrainAugConfig(auto_augment="none")) is not None


# ------------------------------------------------------------------------------------------ RandAugment
def test_spec_parsing():
    spec = ra.RandAugmentSpec.parse("rand-m7-mstd0.5-inc1")
    assert spec == ra.RandAugmentSpec(magnitude=7, num_ops=2, magnitude_std=0.5, magnitude_max=10,
                                      increasing=True, prob=0.5)
    spec = ra.RandAugmentSpec.parse("rand-m9-n3-mstd101-mmax15-p0.7")
    assert (spec.num_ops, spec.magnitude_std, spec.magnitude_max, spec.prob, spec.increasing) == (
        3, math.inf, 15, 0.7, False)
    assert ra.RandAugmentSpec.parse("rand") == ra.RandAugmentSpec()


@pytest.mark.parametrize("bad, message", [
    ("rand-m7-q3", "unknown RandAugment option 'q'"),
    ("rnd-m7", "must start with 'rand'"),
    ("rand-mx", "bad RandAugment option 'mx'"),
    ("rand-m7-p2", r"probability p2 .* \[0, 1\]"),
    ("rand-m7-inc2", "inc0 or inc1"),
    ("randtf-m9", "TensorFlow's RandAugment, not timm's"),
    ("rand-m7-w2", "op-weights index w<N> is gone from timm"),
])
def test_bad_specs(bad, message):
    with pytest.raises(ResnetsError, match=message):
        ra.RandAugment(bad)


def test_increasing_spec_selects_timm_increasing_ops():
    assert ra.RandAugment("rand-m7-inc1").op_names == ra.RAND_INCREASING_TRANSFORMS
    assert ra.RandAugment("rand-m7").op_names == ra.RAND_TRANSFORMS
    assert "PosterizeIncreasing" in ra.RAND_INCREASING_TRANSFORMS and len(ra.RAND_TRANSFORMS) == 15


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest", "random"])
def test_every_op_runs_on_uint8(photo, interpolation):
    aug = ra.RandAugment("rand-m5", interpolation=interpolation)
    small = photo[:, :60, :70]  # a strided view, as crops of decoded images are
    random.seed(0)
    for name in ra.OPS:
        for level in (0.0, 5.0, 10.0, 15.0):
            out = aug.apply_op(name, small, level)
            assert out.dtype == torch.uint8 and out.shape == small.shape, (name, level)
    assert torch.equal(aug.apply_op("Invert", aug.apply_op("Invert", small, 0), 0), small)


def test_magnitude_noise_is_gaussian_and_clipped():
    random.seed(0)
    noisy = ra.RandAugmentSpec.parse("rand-m7-mstd0.5")
    levels = [noisy.sample_level() for _ in range(4000)]
    assert abs(statistics.mean(levels) - 7) < 0.05 and abs(statistics.stdev(levels) - 0.5) < 0.05
    clipped = [ra.RandAugmentSpec.parse("rand-m10-mstd2").sample_level() for _ in range(2000)]
    assert max(clipped) == 10.0 and min(clipped) >= 0 and sum(v == 10.0 for v in clipped) > 800
    assert {ra.RandAugmentSpec.parse("rand-m7").sample_level() for _ in range(50)} == {7}
    uniform = [ra.RandAugmentSpec.parse("rand-m8-mstd200").sample_level() for _ in range(2000)]
    assert 0 <= min(uniform) < 0.5 and 7.5 < max(uniform) <= 8 and abs(statistics.mean(uniform) - 4) < 0.3


def test_ops_apply_with_probability_half(photo):
    aug = ra.RandAugment("rand-m9-n1", ops=["Invert"])
    small = photo[:, :32, :32]
    random.seed(0)
    changed = sum(not torch.equal(aug(small), small) for _ in range(1000))
    assert 430 < changed < 570


def test_colour_ops_match_pil(photo):
    """The colour ops reproduce PIL's formulas exactly, as timm applies them."""
    img = photo[:, 40:140, 30:150].contiguous()
    low = (img.float() * 0.5 + 40).to(torch.uint8)
    pil, pil_low = _pil(img), _pil(low)
    for factor in (0.1, 0.6, 1.4, 1.9):
        assert torch.equal(ra.color(img, factor), _tensor(ImageEnhance.Color(pil).enhance(factor)))
        assert torch.equal(ra.contrast(img, factor), _tensor(ImageEnhance.Contrast(pil).enhance(factor)))
        assert torch.equal(ra.brightness(img, factor), _tensor(ImageEnhance.Brightness(pil).enhance(factor)))
        assert torch.equal(ra.sharpness(img, factor), _tensor(ImageEnhance.Sharpness(pil).enhance(factor)))
    for source, image in ((img, pil), (low, pil_low)):
        assert torch.equal(ra.equalize(source), _tensor(ImageOps.equalize(image)))
        assert torch.equal(ra.auto_contrast(source), _tensor(ImageOps.autocontrast(image)))
    for threshold in (0, 100, 256):
        assert torch.equal(ra.solarize(img, threshold), _tensor(ImageOps.solarize(pil, threshold)))
    for bits in (1, 4):
        assert torch.equal(ra.posterize(img, bits), _tensor(ImageOps.posterize(pil, bits)))


def test_geometric_ops_follow_pil_conventions(photo):
    img = photo[:, :96, :96].contiguous()
    pil, fill = _pil(img), (124, 116, 104)

    def pil_affine(matrix):
        return pil.transform(pil.size, Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=fill)

    cases = [
        (ra.affine(img, ra.rotation_matrix(20, 96, 96), "bilinear", fill),
         pil.rotate(20, resample=Image.BILINEAR, fillcolor=fill)),
        (ra.affine(img, (1, 0.25, 0, 0, 1, 0), "bilinear", fill), pil_affine((1, 0.25, 0, 0, 1, 0))),
        (ra.translate(img, 12.4, "x", "bilinear", fill), pil_affine((1, 0, 12.4, 0, 1, 0))),
    ]
    for ours, theirs in cases:
        diff = (ours.int() - _tensor(theirs).int()).abs().float()
        assert diff.mean() < 1.5  # same geometry; only the blending at the fill border differs
    shifted = ra.translate(img, -10, "y", "bicubic", fill)
    assert torch.equal(shifted[:, 10:], img[:, :-10])  # whole-pixel shifts are exact
    assert (shifted[:, :10] == torch.tensor(fill, dtype=torch.uint8).view(3, 1, 1)).all()
