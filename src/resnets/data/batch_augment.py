"""Training augmentation on whole batches on the training device: the per-sample pipeline of
``transforms.build_train_transform`` (RandomResizedCrop, flip, timm's or TF's RandAugment, TrivialAugmentWide)
with per-sample random parameters, vectorised (the kernels are in ``batch_ops``).

Parameters come from the sampler's per-sample seeds through a counter-based hash (``seeded_uniforms``),
computed on the host with numpy for the whole batch: sample i's crop, flip and ops depend only on its
seed, never on the batch, the worker count or the device, and a run resumed mid-epoch gets the same
parameters for the same positions. Knowing them on the host also means no device -> host sync: the
subset of images an op applies to is an index tensor built on the host.

The distributions are the per-sample ones' (timm's for RandAugment: op chosen uniformly with
replacement, applied with probability p, magnitude ~ N(m, mstd) clipped to [0, mmax], random sign and
interpolation; TF's: always applied at the magnitude; torchvision's TrivialAugmentWide: one of 14 ops,
one of 31 magnitude bins, sign 50/50). The random streams differ from the per-sample path's (Python's
``random``), so a run's augmentations depend on ``--augment-on``, which run.json records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ResnetsError
from . import batch_ops as K
from .randaugment import (
    LEVEL_DENOM,
    RAND_INCREASING_TRANSFORMS,
    RAND_TRANSFORMS,
    TIMM_FILL,
    RandAugmentSpec,
    TFRandAugmentSpec,
)
from .randaugment_tf import TF_RAND_OPS, op_argument
from .transforms import TrainAugConfig, parse_auto_augment

_C1, _C2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)
STREAMS = {"crop": 1, "flip": 2, "augment": 3}
MODES = {"bilinear": 0, "bicubic": 1, "nearest": 2}
TA_OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
          "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")  # torchvision's order
TA_BINS = 31
TA_SIGNED = frozenset(TA_OPS[1:10])


def _mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _C1
    z = (z ^ (z >> np.uint64(27))) * _C2
    return z ^ (z >> np.uint64(31))


def seeded_uniforms(seeds: Sequence[int] | np.ndarray | torch.Tensor, stream: int, count: int) -> torch.Tensor:
    """(N, count) float64 uniforms in [0, 1): draw j of sample i depends only on (seeds[i], stream, j)."""
    if isinstance(seeds, torch.Tensor):
        seeds = seeds.cpu().numpy()
    s = np.asarray(seeds, dtype=np.int64).astype(np.uint64).reshape(-1, 1)
    j = np.arange(count, dtype=np.uint64).reshape(1, -1)
    with np.errstate(over="ignore"):
        key = _mix64(s + np.uint64(stream) * _GOLDEN)
        z = _mix64(key + (j + np.uint64(1)) * _GOLDEN)
    return torch.from_numpy(((z >> np.uint64(11)).astype(np.float64)) * (1.0 / 2**53))


# ------------------------------------------------------------------------------------------ crop / flip
def crop_params(sizes: torch.Tensor, u: torch.Tensor, scale: tuple[float, float],
                ratio: tuple[float, float]) -> torch.Tensor:
    """(N, 4) (top, left, height, width) boxes by ``transforms.RandomResizedCrop.params``' rule (10 tries,
    then a centre crop clamped to the ratio range); u: (N, >= 40) uniforms, sizes: (N, 2) (height, width)."""
    height, width = sizes[:, 0:1].double(), sizes[:, 1:2].double()
    area = height * width
    us = u[:, :40].view(-1, 10, 4)
    target = area * (scale[0] + (scale[1] - scale[0]) * us[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * us[..., 1])
    w = torch.round(torch.sqrt(target * aspect))  # Python's round: half to even, as torch.round
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    top = torch.floor(us[..., 2] * (height - h + 1))
    left = torch.floor(us[..., 3] * (width - w + 1))
    first = ok.double().argmax(dim=1, keepdim=True)
    found = ok.any(dim=1)
    pick = [t.gather(1, first).squeeze(1) for t in (top, left, h, w)]
    in_ratio = (width / height).squeeze(1)
    hh, ww = height.squeeze(1), width.squeeze(1)
    fw = torch.where(in_ratio < ratio[0], ww, torch.where(in_ratio > ratio[1], torch.round(hh * ratio[1]), ww))
    fh = torch.where(in_ratio < ratio[0], torch.round(ww / ratio[0]), hh)
    fallback = [torch.floor((hh - fh) / 2), torch.floor((ww - fw) / 2), fh, fw]
    return torch.stack([torch.where(found, p, f) for p, f in zip(pick, fallback, strict=True)], dim=1).long()


def interpolation_codes(name: str, u: torch.Tensor) -> torch.Tensor:
    """Per-sample resampling code (``MODES``); "random" is bilinear or bicubic with probability 1/2 each."""
    if name == "random":
        return torch.where(u < 0.5, 0, 1).long()
    return torch.full(u.shape, MODES[name], dtype=torch.long)


# --------------------------------------------------------------------------------------- timm RandAugment
@dataclass
class RandAugmentParams:
    """One row per image, one column per op slot: op index, applied, level, sign (-1/+1), resampling code."""

    op: torch.Tensor
    apply: torch.Tensor
    level: torch.Tensor
    sign: torch.Tensor
    mode: torch.Tensor


def rand_augment_params(spec: RandAugmentSpec, num_choices: int, u: torch.Tensor, interpolation: str
                        ) -> RandAugmentParams:
    """timm's draws for `spec.num_ops` slots from u (N, 6 * num_ops)."""
    k = spec.num_ops
    us = u[:, :6 * k].view(-1, k, 6)
    op = torch.floor(us[..., 0] * num_choices).long().clamp(max=num_choices - 1)
    apply = us[..., 1] <= spec.prob if spec.prob < 1.0 else torch.ones_like(op, dtype=torch.bool)
    level = torch.full_like(us[..., 2], spec.magnitude)
    if spec.magnitude_std == math.inf:
        level = us[..., 2] * spec.magnitude
    elif spec.magnitude_std > 0:  # Box-Muller: one N(0, 1) from two uniforms
        normal = torch.sqrt(-2.0 * torch.log1p(-us[..., 2])) * torch.cos(2 * math.pi * us[..., 3])
        level = spec.magnitude + spec.magnitude_std * normal
    level = level.clamp(0.0, spec.magnitude_max)
    sign = torch.where(us[..., 4] > 0.5, -1.0, 1.0).double()
    return RandAugmentParams(op, apply, level, sign, interpolation_codes(interpolation, us[..., 5]))


def timm_op_argument(name: str, level: torch.Tensor, sign: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """timm's level -> argument for op `name` (``randaugment``'s mappings), per image (float64)."""
    f = level / LEVEL_DENOM
    if name == "Rotate":
        return sign * f * 30.0
    if name in ("ShearX", "ShearY"):
        return sign * f * 0.3
    if name == "TranslateXRel":
        return sign * f * 0.45 * size[1]
    if name == "TranslateYRel":
        return sign * f * 0.45 * size[0]
    if name == "Posterize":
        return torch.floor(f * 4)
    if name == "PosterizeIncreasing":
        return 4 - torch.floor(f * 4)
    if name == "Solarize":
        return torch.floor(f * 256).clamp(max=256)
    if name == "SolarizeIncreasing":
        return 256 - torch.floor(f * 256).clamp(max=256)
    if name == "SolarizeAdd":
        return torch.floor(f * 110).clamp(max=128)
    if name.endswith("Increasing"):
        return (1.0 + sign * f * 0.9).clamp(min=0.1)
    return f * 1.8 + 0.1  # Color, Contrast, Brightness, Sharpness


def timm_op(name: str, images: torch.Tensor, arg: torch.Tensor, modes: torch.Tensor,
            fill: tuple[int, ...]) -> torch.Tensor:
    """Apply timm op `name` to a sub-batch with per-image arguments (on the images' device)."""
    base = name.replace("Increasing", "")
    if base in ("AutoContrast", "Equalize", "Invert"):
        return {"AutoContrast": K.auto_contrast, "Equalize": K.equalize, "Invert": K.invert}[base](images)
    arg = arg.to(images.device)
    if base == "Posterize":
        return K.posterize(images, arg)
    if base == "Solarize":
        return K.solarize(images, arg)
    if base == "SolarizeAdd":
        return K.solarize_add(images, arg)
    if base in ("Color", "Contrast", "Brightness", "Sharpness"):
        return getattr(K, base.lower())(images, arg)
    height, width = images.shape[-2:]
    zeros, ones = torch.zeros_like(arg), torch.ones_like(arg)
    if base == "Rotate":
        matrices = K.rotation_matrices(arg, height, width)
    elif base == "ShearX":
        matrices = torch.stack([ones, arg, zeros, zeros, ones, zeros], dim=1)
    elif base == "ShearY":
        matrices = torch.stack([ones, zeros, zeros, arg, ones, zeros], dim=1)
    elif base == "TranslateXRel":
        matrices = torch.stack([ones, zeros, arg, zeros, ones, zeros], dim=1)
    elif base == "TranslateYRel":
        matrices = torch.stack([ones, zeros, zeros, zeros, ones, arg], dim=1)
    else:
        raise ResnetsError(f"unknown RandAugment op {name!r}")
    out = torch.empty_like(images)
    for code, mode in ((0, "bilinear"), (1, "bicubic"), (2, "nearest")):
        rows = torch.nonzero(modes == code).flatten()
        if len(rows):
            rows_d = rows.to(images.device)
            out[rows_d] = K.affine(images[rows_d], matrices[rows_d], mode, fill)
    return out


def _apply_by_op(images: torch.Tensor, op: torch.Tensor, active: torch.Tensor, names: Sequence[str], fn) -> torch.Tensor:
    """For each op index, gather the images (host-known indices) that take it, apply `fn`, scatter back."""
    device = images.device
    out: torch.Tensor | None = None
    for index, name in enumerate(names):
        rows = torch.nonzero(active & (op == index)).flatten()
        if not len(rows):
            continue
        rows_d = rows.to(device, non_blocking=True)
        result = fn(name, images.index_select(0, rows_d), rows)
        if out is None:
            out = images.clone()  # inputs are read from `images`, results written to `out`: one copy per slot
        out.index_copy_(0, rows_d, result)
    return images if out is None else out


def apply_rand_augment(images: torch.Tensor, params: RandAugmentParams, names: Sequence[str],
                       fill: tuple[int, ...] = TIMM_FILL) -> torch.Tensor:
    size = tuple(images.shape[-2:])
    for slot in range(params.op.shape[1]):
        def fn(name, sub, rows, slot=slot):
            arg = timm_op_argument(name, params.level[rows, slot], params.sign[rows, slot], size)
            return timm_op(name, sub, arg, params.mode[rows, slot], fill)

        images = _apply_by_op(images, params.op[:, slot], params.apply[:, slot], names, fn)
    return images


# ----------------------------------------------------------------------------------------- TF RandAugment
@dataclass
class TFRandAugmentParams:
    op: torch.Tensor
    sign: torch.Tensor
    centre_y: torch.Tensor
    centre_x: torch.Tensor


def tf_rand_augment_params(spec: TFRandAugmentSpec, u: torch.Tensor, size: tuple[int, int]) -> TFRandAugmentParams:
    k = spec.num_ops
    us = u[:, :4 * k].view(-1, k, 4)
    op = torch.floor(us[..., 0] * len(TF_RAND_OPS)).long().clamp(max=len(TF_RAND_OPS) - 1)
    sign = torch.where(us[..., 1] < 0.5, -1.0, 1.0).double()  # TF _randomly_negate_tensor: negate w.p. 1/2
    cy = torch.floor(us[..., 2] * size[0]).long()
    cx = torch.floor(us[..., 3] * size[1]).long()
    return TFRandAugmentParams(op, sign, cy, cx)


def tf_op(name: str, images: torch.Tensor, magnitude: float, sign: torch.Tensor, cy: torch.Tensor,
          cx: torch.Tensor) -> torch.Tensor:
    from .randaugment_tf import rotation_matrix

    arg = op_argument(name, magnitude)
    fixed = {"AutoContrast": lambda: K.tf_autocontrast(images), "Equalize": lambda: K.equalize(images),
             "Invert": lambda: K.invert(images), "Posterize": lambda: K.tf_posterize(images, arg),
             "Solarize": lambda: K.tf_solarize(images, arg), "Color": lambda: K.tf_color(images, arg),
             "Contrast": lambda: K.tf_contrast(images, arg), "Brightness": lambda: K.tf_brightness(images, arg),
             "Sharpness": lambda: K.tf_sharpness(images, arg),
             "SolarizeAdd": lambda: K.solarize_add(images, torch.full((len(images),), arg, device=images.device)),
             "Cutout": lambda: K.tf_cutout(images, int(arg), cy.to(images.device), cx.to(images.device))}
    if name in fixed:
        return fixed[name]()
    height, width = images.shape[-2:]
    out = torch.empty_like(images)
    for s in (-1.0, 1.0):  # one matrix per sign: the magnitude is the same for every image
        rows = torch.nonzero(sign == s).flatten()
        if not len(rows):
            continue
        value = s * arg
        matrix = {"Rotate": lambda v=value: rotation_matrix(v, height, width),
                  "ShearX": lambda v=value: (1.0, v, 0.0, 0.0, 1.0, 0.0),
                  "ShearY": lambda v=value: (1.0, 0.0, 0.0, v, 1.0, 0.0),
                  "TranslateX": lambda v=value: (1.0, 0.0, v, 0.0, 1.0, 0.0),
                  "TranslateY": lambda v=value: (1.0, 0.0, 0.0, 0.0, 1.0, v)}[name]()
        rows_d = rows.to(images.device)
        out[rows_d] = K.tf_projective(images[rows_d], matrix)
    return out


def apply_tf_rand_augment(images: torch.Tensor, params: TFRandAugmentParams, magnitude: float,
                          names: Sequence[str] = TF_RAND_OPS) -> torch.Tensor:
    for slot in range(params.op.shape[1]):
        def fn(name, sub, rows, slot=slot):
            return tf_op(name, sub, magnitude, params.sign[rows, slot], params.centre_y[rows, slot],
                         params.centre_x[rows, slot])

        every = torch.ones_like(params.op[:, slot], dtype=torch.bool)
        images = _apply_by_op(images, params.op[:, slot], every, names, fn)
    return images


# --------------------------------------------------------------------------------------- TrivialAugmentWide
@dataclass
class TrivialAugmentParams:
    op: torch.Tensor
    magnitude: torch.Tensor
    """Signed magnitude (float64), as torchvision passes it to the op."""


def ta_magnitudes(name: str) -> torch.Tensor | None:
    """torchvision's TrivialAugmentWide magnitude bins for op `name` (None: no magnitude)."""
    if name in ("ShearX", "ShearY", "Brightness", "Color", "Contrast", "Sharpness"):
        return torch.linspace(0.0, 0.99, TA_BINS)
    if name in ("TranslateX", "TranslateY"):
        return torch.linspace(0.0, 32.0, TA_BINS)
    if name == "Rotate":
        return torch.linspace(0.0, 135.0, TA_BINS)
    if name == "Posterize":
        return (8 - (torch.arange(TA_BINS) / ((TA_BINS - 1) / 6))).round().int()
    if name == "Solarize":
        return torch.linspace(1.0, 0.0, TA_BINS)
    return None


def trivial_augment_params(u: torch.Tensor) -> TrivialAugmentParams:
    op = torch.floor(u[:, 0] * len(TA_OPS)).long().clamp(max=len(TA_OPS) - 1)
    bins = torch.floor(u[:, 1] * TA_BINS).long().clamp(max=TA_BINS - 1)
    magnitude = torch.zeros(len(op), dtype=torch.float64)
    for index, name in enumerate(TA_OPS):
        table = ta_magnitudes(name)
        rows = op == index
        if table is None or not bool(rows.any()):
            continue
        value = table.double()[bins[rows]]
        if name in TA_SIGNED:
            value = torch.where(u[rows, 2] <= 0.5, -value, value)
        magnitude[rows] = value
    return TrivialAugmentParams(op, magnitude)


def ta_op(name: str, images: torch.Tensor, magnitude: torch.Tensor, mode: str) -> torch.Tensor:
    """torchvision's TrivialAugmentWide op `name` per image (fill 0, as its default)."""
    m = magnitude.to(images.device)
    if name == "Identity":
        return images
    if name in ("Brightness", "Color", "Contrast", "Sharpness"):
        fn = {"Brightness": K.tv_brightness, "Color": K.tv_saturation, "Contrast": K.tv_contrast,
              "Sharpness": K.tv_sharpness}[name]
        return fn(images, 1.0 + m)
    if name == "Posterize":
        return K.tv_posterize(images, m.long())
    if name == "Solarize":
        return K.tv_solarize(images, 255.0 * m)
    if name == "AutoContrast":
        return K.tv_autocontrast(images)
    if name == "Equalize":
        return K.tv_equalize(images)
    height, width = images.shape[-2:]
    n = len(images)
    zeros = torch.zeros(n, dtype=torch.float64)
    mag = magnitude.double()
    if name in ("ShearX", "ShearY"):
        degrees = torch.rad2deg(torch.atan(mag))
        shear = torch.stack([degrees, zeros] if name == "ShearX" else [zeros, degrees], dim=1)
        matrices = K.tv_inverse_affine(zeros, torch.zeros(n, 2, dtype=torch.float64), shear,
                                       (-width * 0.5, -height * 0.5))
    elif name in ("TranslateX", "TranslateY"):
        shift = torch.trunc(mag)  # torchvision passes int(magnitude)
        translate = torch.stack([shift, zeros] if name == "TranslateX" else [zeros, shift], dim=1)
        matrices = K.tv_inverse_affine(zeros, translate, torch.zeros(n, 2, dtype=torch.float64), (0.0, 0.0))
    elif name == "Rotate":
        matrices = K.tv_inverse_affine(-mag, torch.zeros(n, 2, dtype=torch.float64),
                                       torch.zeros(n, 2, dtype=torch.float64), (0.0, 0.0))
    else:
        raise ResnetsError(f"unknown TrivialAugmentWide op {name!r}")
    return K.tv_affine(images, matrices.to(images.device), mode)


def apply_trivial_augment(images: torch.Tensor, params: TrivialAugmentParams, mode: str = "bilinear") -> torch.Tensor:
    every = torch.ones_like(params.op, dtype=torch.bool)
    return _apply_by_op(images, params.op, every, TA_OPS,
                        lambda name, sub, rows: ta_op(name, sub, params.magnitude[rows], mode))


# --------------------------------------------------------------------------------------------- pipeline
class BatchAugment:
    """uint8 (N, H, W, 3) canvases (+ their valid sizes) -> augmented uint8 (N, 3, S, S) on the same device.

    The batched equivalent of ``build_train_transform(cfg)``; `__call__(images, sizes, seeds)` with the
    sampler's per-sample seeds.
    """

    def __init__(self, cfg: TrainAugConfig):
        self.cfg = cfg
        if not 0 < cfg.scale[0] <= cfg.scale[1] <= 1 or not 0 < cfg.ratio[0] <= cfg.ratio[1]:
            raise ResnetsError(f"bad crop scale {cfg.scale} or ratio {cfg.ratio}")
        if cfg.interpolation not in ("bilinear", "bicubic", "nearest", "random"):
            raise ResnetsError(f"unknown interpolation {cfg.interpolation!r}")
        self.policy = parse_auto_augment(cfg.auto_augment)
        if isinstance(self.policy, RandAugmentSpec):
            self.op_names = RAND_INCREASING_TRANSFORMS if self.policy.increasing else RAND_TRANSFORMS
        self.fill = tuple(int(v) for v in cfg.fill)

    def crop(self, images: torch.Tensor, sizes: torch.Tensor, seeds) -> torch.Tensor:
        u = seeded_uniforms(seeds, STREAMS["crop"], 41)
        boxes = crop_params(sizes.cpu(), u, self.cfg.scale, self.cfg.ratio)
        modes = interpolation_codes(self.cfg.interpolation, u[:, 40])
        device = images.device
        return K.resized_crop(images, boxes.to(device), self.cfg.img_size, modes.to(device))

    def __call__(self, images: torch.Tensor, sizes: torch.Tensor, seeds) -> torch.Tensor:
        x = self.crop(images, sizes, seeds)
        if self.cfg.hflip > 0:
            flip = seeded_uniforms(seeds, STREAMS["flip"], 1)[:, 0] < self.cfg.hflip
            x = K.hflip(x, flip.to(x.device))
        return self.apply_policy(x, seeds)

    def apply_policy(self, x: torch.Tensor, seeds) -> torch.Tensor:
        """The RandAugment / TrivialAugmentWide part on cropped uint8 (N, 3, S, S) images."""
        policy = self.policy
        if policy is None:
            return x
        size = (self.cfg.img_size, self.cfg.img_size)
        if isinstance(policy, RandAugmentSpec):
            u = seeded_uniforms(seeds, STREAMS["augment"], 6 * policy.num_ops)
            params = rand_augment_params(policy, len(self.op_names), u, self.cfg.interpolation)
            return apply_rand_augment(x, params, self.op_names, self.fill)
        if isinstance(policy, TFRandAugmentSpec):
            u = seeded_uniforms(seeds, STREAMS["augment"], 4 * policy.num_ops)
            return apply_tf_rand_augment(x, tf_rand_augment_params(policy, u, size), policy.magnitude)
        u = seeded_uniforms(seeds, STREAMS["augment"], 3)
        mode = "nearest" if self.cfg.interpolation == "nearest" else "bilinear"
        return apply_trivial_augment(x, trivial_augment_params(u), mode)

