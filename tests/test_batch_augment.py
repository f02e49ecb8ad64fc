"""Batched augmentation (data/batch_ops, data/batch_augment) against the per-sample ops it replaces.

Same parameters -> same pixels (within one grey level where the float arithmetic's order differs), and the
parameter distributions against timm's own RandAugment and torchvision's TrivialAugmentWide.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from resnets.data import batch_augment as BA
from resnets.data import batch_ops as K
from resnets.data import randaugment as ra
from resnets.data import randaugment_tf as tfra
from resnets.data.transforms import RandomResizedCrop, TrainAugConfig, resized_crop


def _photo_like(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Smooth colour images with edges (upsampled noise + a bright square), uint8 (N, 3, H, W)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, max(2, height // 4), max(2, width // 4), generator=g) * 255
    x = torch.nn.functional.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    x[:, :, height // 3:height // 2, width // 4:width // 2] = 250
    return x.round().clamp(0, 255).to(torch.uint8)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a.int() - b.int()).abs().max())


def test_seeded_uniforms_depend_only_on_each_sample_seed():
    seeds = [5, 2**62 + 7, 0, 123456789]
    full = BA.seeded_uniforms(seeds, 3, 8)
    assert full.shape == (4, 8) and bool(((full >= 0) & (full < 1)).all())
    for i, seed in enumerate(seeds):
        assert torch.equal(BA.seeded_uniforms([seed], 3, 8)[0], full[i])
    assert not torch.equal(BA.seeded_uniforms(seeds, 4, 8), full)  # streams are independent
    many = BA.seeded_uniforms(np.arange(20000), 1, 2)
    assert abs(float(many.mean()) - 0.5) < 0.01 and abs(float(np.corrcoef(many.T.numpy())[0, 1])) < 0.03


@pytest.mark.parametrize("method", ["taps", "kernel"])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
def test_batched_resized_crop_matches_the_per_sample_resize(mode, method):
    """Variable image sizes in one canvas, upscaling and downscaling crops: within one grey level."""
    canvas = torch.zeros(6, 40, 44, 3, dtype=torch.uint8)
    sizes = torch.tensor([[40, 44], [33, 30], [40, 21], [17, 44], [25, 25], [40, 44]])
    boxes = torch.tensor([[0, 0, 40, 44], [3, 5, 20, 11], [10, 2, 30, 19], [1, 30, 16, 9], [4, 4, 7, 20],
                          [20, 10, 5, 5]])
    images = _photo_like(6, 40, 44)
    refs = []
    for i, ((h, w), (top, left, ch, cw)) in enumerate(zip(sizes.tolist(), boxes.tolist(), strict=True)):
        canvas[i, :h, :w] = images[i, :, :h, :w].permute(1, 2, 0)
        refs.append(resized_crop(canvas[i, :h, :w].permute(2, 0, 1), top, left, ch, cw, 24, mode))
    codes = torch.full((6,), BA.MODES[mode])
    out = K.resized_crop(canvas, boxes, 24, codes, method=method)
    assert out.shape == (6, 3, 24, 24) and out.dtype == torch.uint8
    assert _max_diff(out, torch.stack(refs)) <= 1


class _Draws:
    """Stands in for Python's `random` in the per-sample crop: uniform/randint read our uniforms in order."""

    def __init__(self, u: list[float]):
        self.u = list(u)

    def _next(self) -> float:
        return self.u.pop(0)

    def uniform(self, a, b):
        return a + (b - a) * self._next()

    def randint(self, a, b):
        return a + math.floor(self._next() * (b - a + 1))


def test_crop_parameters_follow_the_per_sample_rule(monkeypatch):
    """Fed the same uniforms (scale, ratio per try; top, left for the accepted one), the per-sample
    RandomResizedCrop.params and the batched rule give the same boxes, fallback included."""
    import resnets.data.transforms as transforms

    n = 200
    sizes = torch.tensor([[32, 32], [20, 60], [60, 20], [7, 9]] * (n // 4))
    u = BA.seeded_uniforms(np.arange(n), 1, 41)
    u[: n // 2, :40:4] = 0.999  # large first tries: exercises the retries and, for odd shapes, the fallback
    boxes = BA.crop_params(sizes, u, (0.08, 1.0), (3 / 4, 4 / 3))
    crop = RandomResizedCrop(32)
    for i in range(n):
        height, width = sizes[i].tolist()
        sequence: list[float] = []
        for s, r, top_u, left_u in u[i, :40].view(10, 4).tolist():
            sequence += [s, r]
            area = height * width * (0.08 + 0.92 * s)
            aspect = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * r)
            w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < w <= width and 0 < h <= height:
                sequence += [top_u, left_u]
                break
        monkeypatch.setattr(transforms, "random", _Draws(sequence))
        assert tuple(boxes[i].tolist()) == crop.params(height, width), i


# ---------------------------------------------------------------------------------------------- timm ops
def _timm_reference(name: str, img: torch.Tensor, arg: float, mode: str) -> torch.Tensor:
    """The per-sample kernel of ``randaugment`` for op `name` with an explicit argument."""
    base = name.replace("Increasing", "")
    fill = ra.TIMM_FILL
    if base in ("AutoContrast", "Equalize", "Invert"):
        return {"AutoContrast": ra.auto_contrast, "Equalize": ra.equalize, "Invert": ra.invert}[base](img)
    if base == "Posterize":
        return ra.posterize(img, int(arg))
    if base == "Solarize":
        return ra.solarize(img, int(arg))
    if base == "SolarizeAdd":
        return ra.solarize_add(img, int(arg))
    if base in ("Color", "Contrast", "Brightness", "Sharpness"):
        return getattr(ra, base.lower())(img, arg)
    height, width = img.shape[-2:]
    if base == "Rotate":
        return ra.affine(img, ra.rotation_matrix(arg, height, width), mode, fill)
    if base == "ShearX":
        return ra.affine(img, (1.0, arg, 0.0, 0.0, 1.0, 0.0), mode, fill)
    if base == "ShearY":
        return ra.affine(img, (1.0, 0.0, 0.0, arg, 1.0, 0.0), mode, fill)
    axis = "x" if base == "TranslateXRel" else "y"
    return ra.translate(img, arg, axis, mode, fill)


@pytest.mark.parametrize("name", sorted(set(ra.RAND_TRANSFORMS) | set(ra.RAND_INCREASING_TRANSFORMS)))
def test_batched_timm_ops_match_the_per_sample_ops(name):
    n = 6
    images = _photo_like(n, 20, 24, seed=1)
    level = torch.tensor([0.0, 2.5, 5.0, 7.3, 9.0, 10.0], dtype=torch.float64)
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    modes = torch.tensor([0, 1, 0, 1, 2, 0])
    arg = BA.timm_op_argument(name, level, sign, (20, 24))
    out = BA.timm_op(name, images, arg, modes, ra.TIMM_FILL)
    names = {0: "bilinear", 1: "bicubic", 2: "nearest"}
    for i in range(n):
        expected = _timm_reference(name, images[i].contiguous(), float(arg[i]), names[int(modes[i])])
        assert _max_diff(out[i], expected) <= 1, (name, i)


def test_timm_level_to_argument_matches_the_per_sample_mapping():
    random.seed(0)
    for level in (0.0, 3.3, 6.0, 9.5, 10.0):
        lv = torch.tensor([level], dtype=torch.float64)
        assert BA.timm_op_argument("Posterize", lv, lv, (8, 8)).item() == ra._posterize_bits(level)
        assert BA.timm_op_argument("Solarize", lv, lv, (8, 8)).item() == ra._solarize_threshold(level)
        assert BA.timm_op_argument("Color", lv, lv, (8, 8)).item() == pytest.approx(ra._enhance(level))


# ------------------------------------------------------------------------------------------------ TF ops
@pytest.mark.parametrize("name", tfra.TF_RAND_OPS)
def test_batched_tf_ops_match_the_per_sample_ops_exactly(name):
    n = 4
    images = _photo_like(n, 20, 24, seed=2)
    sign = torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
    cy, cx = torch.tensor([0, 5, 19, 10]), torch.tensor([3, 23, 0, 12])
    magnitude = 15.0
    out = BA.tf_op(name, images, magnitude, sign, cy, cx)
    for i in range(n):
        arg = tfra.op_argument(name, magnitude)
        img = images[i].contiguous()
        if name == "Cutout":
            expected = tfra.cutout(img, int(arg), int(cy[i]), int(cx[i]))
        else:
            value = arg * float(sign[i]) if name in tfra.SIGNED_OPS else arg
            expected = tfra._KERNELS[name](img, value)
        assert torch.equal(out[i], expected), (name, i)


# ---------------------------------------------------------------------------------------------- TA ops
@pytest.mark.parametrize("name", BA.TA_OPS)
def test_batched_trivial_augment_ops_match_torchvision(name):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import v2 as T

    ta = T.TrivialAugmentWide(interpolation=InterpolationMode.NEAREST)
    n = 5
    images = _photo_like(n, 20, 24, seed=3)
    table = BA.ta_magnitudes(name)
    if table is None:
        magnitude = torch.zeros(n, dtype=torch.float64)
    else:
        picks = table.double()[torch.tensor([0, 7, 15, 22, 30])]
        signs = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64) if name in BA.TA_SIGNED else 1.0
        magnitude = picks * signs
    out = BA.ta_op(name, images, magnitude, "nearest")
    for i in range(n):
        expected = ta._apply_image_or_video_transform(images[i], name, float(magnitude[i]),
                                                      interpolation=InterpolationMode.NEAREST, fill=ta._fill)
        diff = (out[i].int() - expected.int()).abs()
        assert int(diff.max()) <= 1, (name, i)
        if name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"):
            assert float((diff > 0).float().mean()) < 0.02, (name, i)  # a rounding tie may move a sample


# ---------------------------------------------------------------------------------- distributions vs timm
def test_rand_augment_parameter_distribution_matches_timm():
    """Op frequencies, the apply probability and the magnitude (degrees of Rotate) against timm's own draws."""
    pytest.importorskip("timm")
    from PIL import Image
    from timm.data.auto_augment import rand_augment_transform

    spec = "rand-m9-mstd0.5-inc1"
    timm_ra = rand_augment_transform(spec, {"img_mean": ra.TIMM_FILL})
    seen: dict[str, list[float]] = {}
    for op in timm_ra.ops:
        def record(img, *args, op=op, **kwargs):
            seen.setdefault(op.name, []).append(args[0] if args else 0.0)
            return img
        op.aug_fn = record
    random.seed(0)
    np.random.seed(0)
    image = Image.new("RGB", (4, 4))
    trials = 4000
    for _ in range(trials):
        timm_ra(image)
    ours = BA.rand_augment_params(ra.RandAugmentSpec.parse(spec), len(ra.RAND_INCREASING_TRANSFORMS),
                                  BA.seeded_uniforms(np.arange(trials), 3, 12), "bilinear")
    applied = ours.op[ours.apply]
    total_timm = sum(len(v) for v in seen.values())
    assert abs(total_timm / (2 * trials) - 0.5) < 0.02 and abs(len(applied) / (2 * trials) - 0.5) < 0.02
    for index, name in enumerate(ra.RAND_INCREASING_TRANSFORMS):
        ours_share = float((applied == index).double().mean())
        timm_share = len(seen.get(name, [])) / total_timm
        assert abs(ours_share - timm_share) < 0.015 and abs(ours_share - 1 / 15) < 0.015, name
    timm_deg = np.abs(np.array(seen["Rotate"]))
    rot = ra.RAND_INCREASING_TRANSFORMS.index("Rotate")
    mask = ours.apply & (ours.op == rot)
    our_deg = BA.timm_op_argument("Rotate", ours.level[mask], ours.sign[mask], (4, 4)).abs().numpy()
    assert abs(timm_deg.mean() - our_deg.mean()) < 0.6 and abs(timm_deg.std() - our_deg.std()) < 0.5
    assert abs(float((BA.timm_op_argument("Rotate", ours.level[mask], ours.sign[mask], (4, 4)) < 0)
                     .double().mean()) - 0.5) < 0.06


def test_trivial_augment_parameter_distribution_matches_torchvision():
    params = BA.trivial_augment_params(BA.seeded_uniforms(np.arange(14000), 3, 3))
    shares = torch.bincount(params.op, minlength=len(BA.TA_OPS)).double() / len(params.op)
    assert float((shares - 1 / len(BA.TA_OPS)).abs().max()) < 0.012
    rotate = params.magnitude[params.op == BA.TA_OPS.index("Rotate")]
    assert abs(float((rotate < 0).double().mean()) - 0.5) < 0.05
    assert float(rotate.abs().max()) == 135.0 and abs(float(rotate.abs().mean()) - 67.5) < 4


# ------------------------------------------------------------------------------------------------ pipeline
@pytest.mark.parametrize("policy", [None, "rand-m9-mstd0.5-inc1", "randtf-m15-n2", "ta_wide"])
def test_batch_augment_is_a_function_of_each_sample_seed(policy):
    """A sample's augmentation does not depend on its batch-mates: what makes worker counts and resume moot."""
    aug = BA.BatchAugment(TrainAugConfig(img_size=16, interpolation="random", auto_augment=policy))
    canvas = _photo_like(6, 24, 20, seed=4).permute(0, 2, 3, 1).contiguous()
    sizes = torch.tensor([[24, 20]] * 6)
    seeds = [11, 22, 33, 44, 55, 66]
    full = aug(canvas, sizes, seeds)
    assert full.shape == (6, 3, 16, 16) and full.dtype == torch.uint8
    part = aug(canvas[[4, 1]], sizes[[4, 1]], [seeds[4], seeds[1]])
    assert torch.equal(part, full[[4, 1]])
    assert torch.equal(aug(canvas, sizes, seeds), full)
    assert not torch.equal(aug(canvas, sizes, [s + 1 for s in seeds]), full)
