"""Training and evaluation transforms on uint8 (3, H, W) tensors.

Everything stays uint8 from the decoder to the collate: the crop is done first (the most expensive later ops
then see img_size^2 pixels, not the full image), no per-sample float copy exists, and normalisation happens
once on the whole batch (``loader.BatchPreprocessor``). The ops call ``torchvision.transforms.v2.functional``
directly instead of v2 transform objects: same kernels, less per-call dispatch.

Random draws use Python's ``random`` module (RandomResizedCrop, flip, RandAugment) or torch's global
generator (TrivialAugmentWide); the datasets seed both per sample, see ``datasets.SampleRef``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as F

from ..errors import ResnetsError, unknown
from .preprocess import interpolation_mode, resize_size
from .randaugment import TIMM_FILL, RandAugment, RandAugmentSpec, TFRandAugmentSpec, parse_rand_augment
from .randaugment_tf import TFRandAugment

Transform = Callable[[torch.Tensor], torch.Tensor]
TRAIN_INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "random")
AUTO_AUGMENTS = ("rand-m<M>[-n<N>-mstd<S>-mmax<X>-inc<0|1>-p<P>]", "randtf-m<M>[-n<N>]", "ta_wide", "none")


@dataclass
class TrainAugConfig:
    """Per-sample training augmentation (batch-level mixup/cutmix and random erasing live elsewhere)."""

    img_size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: str = "bilinear"  # "bilinear" | "bicubic" | "random" (timm: bilinear or bicubic per image)
    hflip: float = 0.5
    auto_augment: str | None = None  # "rand-m7-mstd0.5-inc1" (timm), "randtf-m15-n2" (TF), "ta_wide", or None
    fill: tuple[int, ...] = TIMM_FILL  # colour of areas uncovered by RandAugment's geometric ops (not TA)


class Compose:
    """Apply transforms in order (a plain loop: v2.Compose's pytree handling costs more than our ops)."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        for transform in self.transforms:
            img = transform(img)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n  {t!r}," for t in self.transforms)
        return f"Compose({inner}\n)"


def contiguous_chw(img: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of a (3, H, W) uint8 view; numpy's transposing copy is about twice torch's speed."""
    if img.is_contiguous():
        return img
    if img.dtype != torch.uint8:
        return img.contiguous()
    return torch.from_numpy(np.ascontiguousarray(img.numpy()))


def resized_crop(img: torch.Tensor, top: int, left: int, height: int, width: int, size: int,
                 interpolation: str) -> torch.Tensor:
    """Crop then resize to size x size with antialiasing (PIL-like), uint8 in and out.

    For uint8 bilinear/bicubic, torch's antialiased resize has a fast kernel for channels-last input, and
    the decoder already returns that layout (a (3, H, W) view of H x W x 3 memory), so the crop is a cheap
    row copy. The result is made contiguous (3, H, W) for the ops that follow. About half the cost of
    torchvision's resized_crop on the strided view; same kernel, same values.
    """
    if interpolation == "nearest" or img.dtype != torch.uint8:
        return F.resized_crop(img, top, left, height, width, [size, size],
                              interpolation=interpolation_mode(interpolation), antialias=True)
    crop = img[None, :, top:top + height, left:left + width].contiguous(memory_format=torch.channels_last)
    out = torch.nn.functional.interpolate(crop, size=(size, size), mode=interpolation, antialias=True)
    return contiguous_chw(out[0])


class RandomResizedCrop:
    """Crop a random area fraction in `scale` with aspect ratio in `ratio` (log-uniform), resize to size.

    The sampling rule is torchvision's/timm's (10 tries, then a centre crop clamped to the ratio range); the
    resize is antialiased, like PIL's, and runs on the uint8 crop.
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), interpolation: str = "bilinear"):
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ResnetsError(f"crop scale must satisfy 0 < min <= max <= 1, got {tuple(scale)}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ResnetsError(f"crop ratio must satisfy 0 < min <= max, got {tuple(ratio)}")
        if interpolation not in TRAIN_INTERPOLATIONS:
            raise unknown("interpolation", interpolation, TRAIN_INTERPOLATIONS)
        self.size = int(size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.interpolation = interpolation
        self._log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))

    def params(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, crop_height, crop_width) for an image of the given size."""
        area = height * width
        for _ in range(10):
            target_area = area * random.uniform(*self.scale)
            aspect = math.exp(random.uniform(*self._log_ratio))
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                return random.randint(0, height - h), random.randint(0, width - w), h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        top, left, h, w = self.params(*img.shape[-2:])
        name = self.interpolation
        if name == "random":  # timm's default: bilinear or bicubic, chosen per image
            name = random.choice(("bilinear", "bicubic"))
        return resized_crop(img, top, left, h, w, self.size, name)

    def __repr__(self) -> str:
        return (f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio=({self.ratio[0]:.3f}, "
                f"{self.ratio[1]:.3f}), interpolation={self.interpolation})")


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return F.horizontal_flip(img) if random.random() < self.p else img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class CenterCropEval:
    """Resize the shorter side to floor(size / crop_pct), then take the centre size x size (timm's rule)."""

    def __init__(self, img_size: int, crop_pct: float, interpolation: str):
        if not 0 < crop_pct <= 1:
            raise ResnetsError(f"crop_pct must be in (0, 1], got {crop_pct}")
        self.img_size = int(img_size)
        self.crop_pct = float(crop_pct)
        self.resize = resize_size(self.img_size, self.crop_pct)
        self.mode = interpolation_mode(interpolation)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        img = F.resize(img, [self.resize], interpolation=self.mode, antialias=True)
        return contiguous_chw(F.center_crop(img, [self.img_size, self.img_size]))

    def __repr__(self) -> str:
        return (f"CenterCropEval(img_size={self.img_size}, crop_pct={self.crop_pct}, resize={self.resize}, "
                f"interpolation={self.mode.value})")


def parse_auto_augment(spec: str | None) -> RandAugmentSpec | TFRandAugmentSpec | str | None:
    """Check an auto_augment value: None for no policy, "ta_wide", or a parsed RandAugment spec.

    The one parser of these strings: recipe validation calls it, so a value `resnets recipes --set` accepts
    is one the transforms build, and a bad one gets the same one-line error everywhere.
    """
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    spec = spec.strip()
    if spec == "ta_wide":
        return spec
    if spec.startswith("rand"):
        return parse_rand_augment(spec)
    raise ResnetsError(f"unknown auto_augment {spec!r}; choose from {', '.join(AUTO_AUGMENTS)}")


def build_auto_augment(spec: str | None, interpolation: str = "bilinear",
                       fill: Sequence[int] = TIMM_FILL) -> Transform | None:
    """The per-sample policy named by `spec`: timm's or TF's RandAugment, torchvision's TrivialAugmentWide.

    `interpolation` and `fill` apply to timm's RandAugment; TF's always samples NEAREST and fills with 128.
    """
    parsed = parse_auto_augment(spec)
    if parsed is None:
        return None
    if isinstance(parsed, TFRandAugmentSpec):
        return TFRandAugment(parsed)
    if isinstance(parsed, RandAugmentSpec):
        return RandAugment(parsed, interpolation=interpolation, fill=fill)
    # ta_wide: torchvision's own op (its recipe's choice), on uint8 tensors; its affine ops take bilinear/nearest
    # only, and it fills with black as torchvision's reference training does
    mode = T.InterpolationMode.NEAREST if interpolation == "nearest" else T.InterpolationMode.BILINEAR
    return T.TrivialAugmentWide(interpolation=mode)


def build_train_transform(cfg: TrainAugConfig) -> Transform:
    """uint8 (3, H, W) -> uint8 (3, img_size, img_size): random resized crop, flip, RandAugment/TA."""
    steps: list[Transform] = [RandomResizedCrop(cfg.img_size, cfg.scale, cfg.ratio, cfg.interpolation)]
    if cfg.hflip > 0:
        steps.append(RandomHorizontalFlip(cfg.hflip))
    augment = build_auto_augment(cfg.auto_augment, cfg.interpolation, cfg.fill)
    if augment is not None:
        steps.append(augment)
    return Compose(steps)


def build_eval_transform(img_size: int, crop_pct: float = 0.875,
                         interpolation: str = "bilinear") -> Transform:
    """uint8 -> uint8 (3, img_size, img_size): resize by crop fraction, centre crop (normalised per batch)."""
    return CenterCropEval(img_size, crop_pct, interpolation)
