"""RandAugment in timm's configuration, computed on uint8 (3, H, W) tensors.

The RSB and ResNet-RS recipes name their augmentation with timm strings such as ``rand-m7-mstd0.5-inc1``:
timm's op list, its level -> argument mappings, Gaussian noise on the magnitude and the "increasing" op
variants. torchvision's RandAugment has neither the noise nor the increasing ops, so the policy is written
here (ops and ranges follow timm ``timm/data/auto_augment.py``: ``_RAND_TRANSFORMS``,
``_RAND_INCREASING_TRANSFORMS``, ``LEVEL_TO_ARG``). Every op works on the uint8 tensor directly (no PIL round
trip); the colour ops reproduce PIL's formulas (the degenerate image + blend of ``ImageEnhance``, the
histogram rule of ``ImageOps.equalize``), the geometric ops sample with ``grid_sample`` using PIL's affine
convention (output pixel centre -> input coordinates, constant fill).

Randomness comes from Python's ``random`` module, which the datasets seed per sample (see
``datasets.SampleRef``), so an image's augmentation does not depend on the worker that produced it.

``parse_rand_augment`` is the one parser of RandAugment strings, for this timm flavour and for TensorFlow's
(``randtf-m15-n2``, computed in ``randaugment_tf``). timm's old op-weights option ``w<N>`` is rejected: timm
itself no longer has it (timm 1.0 asserts on it), so there is no behaviour left to match.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf

from ..errors import ResnetsError

LEVEL_DENOM = 10.0  # timm: the magnitude M is a level out of 10 (``_LEVEL_DENOM``)
TIMM_FILL = (124, 116, 104)  # timm fills with the ImageNet mean x 255, rounded (``img_mean`` hparam)

RAND_TRANSFORMS = (  # timm _RAND_TRANSFORMS
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
)
RAND_INCREASING_TRANSFORMS = (  # timm _RAND_INCREASING_TRANSFORMS ("inc1")
    "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
    "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing",
    "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
)
GEOMETRIC_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "random")


# ----------------------------------------------------------------------------------------------- spec
# One grammar for every RandAugment string: a flavour, then "-"-separated options, each a name and a number.
# "rand" is timm's RandAugment (this module), "randtf" the TensorFlow one the ResNet-RS authors trained with
# (randaugment_tf.py). Recipe validation and the transforms both parse through `parse_rand_augment`.
_TIMM_KEYS = ("m", "n", "mstd", "mmax", "inc", "p")
_TF_KEYS = ("m", "n")
_TIMM_USAGE = "m<M>, n<N>, mstd<S>, mmax<X>, inc<0|1>, p<P>"
_TF_USAGE = "m<M>, n<N>"


@dataclass(frozen=True)
class RandAugmentSpec:
    """A parsed timm string ``rand-m{M}-n{N}-mstd{S}-mmax{X}-inc{0|1}-p{P}`` (timm's defaults)."""

    magnitude: float = 10.0
    num_ops: int = 2
    magnitude_std: float = 0.0  # inf = uniform in [0, magnitude] (timm: any mstd > 100)
    magnitude_max: float = LEVEL_DENOM
    increasing: bool = False
    prob: float = 0.5

    @classmethod
    def parse(cls, spec: str) -> RandAugmentSpec:
        parsed = parse_rand_augment(spec)
        if not isinstance(parsed, cls):
            raise ResnetsError(f"{spec!r} is TensorFlow's RandAugment, not timm's 'rand-...'")
        return parsed

    def sample_level(self) -> float:
        """The magnitude for one op application: noisy if mstd > 0, clipped to [0, mmax] (timm AugmentOp)."""
        level = self.magnitude
        if self.magnitude_std == math.inf:
            level = random.uniform(0.0, level)
        elif self.magnitude_std > 0:
            level = random.gauss(level, self.magnitude_std)
        return max(0.0, min(level, self.magnitude_max))


@dataclass(frozen=True)
class TFRandAugmentSpec:
    """A parsed ``randtf-m{M}-n{N}``: TF's RandAugment has only a magnitude (uncapped) and a layer count."""

    magnitude: float = 10.0  # TF's default; level / 10 scales each op's range, any level >= 0 is used as is
    num_ops: int = 2


def parse_rand_augment(spec: str) -> RandAugmentSpec | TFRandAugmentSpec:
    """Parse a timm (``rand-...``) or TensorFlow (``randtf-...``) RandAugment string; one-line errors."""
    sections = spec.strip().split("-")
    flavour = sections[0]
    if flavour not in ("rand", "randtf"):
        raise ResnetsError(f"RandAugment spec {spec!r} must start with 'rand' (timm's, e.g. "
                           "'rand-m7-mstd0.5-inc1') or 'randtf' (TensorFlow's, e.g. 'randtf-m15-n2')")
    keys, usage = (_TF_KEYS, _TF_USAGE) if flavour == "randtf" else (_TIMM_KEYS, _TIMM_USAGE)
    values: dict[str, float] = {}
    for section in sections[1:]:
        match = re.fullmatch(r"([a-z]+)(\d+(?:\.\d*)?|\.\d+)", section)
        if match is None:
            raise ResnetsError(f"bad RandAugment option {section!r} in {spec!r}: expected a name and a "
                               f"number ({usage})")
        key, number = match.group(1), float(match.group(2))
        if key not in keys:
            raise ResnetsError(_unknown_option(spec, section, key, flavour))
        if key in values:
            raise ResnetsError(f"RandAugment option {key!r} is given twice in {spec!r}")
        values[key] = number
    num_ops = values.get("n", 2)
    if num_ops != int(num_ops):
        raise ResnetsError(f"RandAugment option n{num_ops:g} in {spec!r} must be a whole number of ops")
    if flavour == "randtf":
        return TFRandAugmentSpec(magnitude=values.get("m", 10.0), num_ops=int(num_ops))
    std = values.get("mstd", 0.0)
    parsed = RandAugmentSpec(
        magnitude=values.get("m", LEVEL_DENOM),
        num_ops=int(num_ops),
        magnitude_std=math.inf if std > 100 else std,
        magnitude_max=values.get("mmax", LEVEL_DENOM),
        increasing=bool(int(values.get("inc", 0))),
        prob=values.get("p", 0.5),
    )
    if not 0.0 <= parsed.prob <= 1.0:
        raise ResnetsError(f"RandAugment probability p{parsed.prob:g} in {spec!r} must be in [0, 1]")
    if values.get("inc", 0) not in (0, 1):
        raise ResnetsError(f"RandAugment option inc in {spec!r} must be inc0 or inc1")
    if parsed.magnitude_max <= 0:
        raise ResnetsError(f"RandAugment option mmax in {spec!r} must be > 0")
    return parsed


def _unknown_option(spec: str, section: str, key: str, flavour: str) -> str:
    if flavour == "randtf":
        if key in _TIMM_KEYS:
            return (f"RandAugment option {section!r} in {spec!r} is timm's, not TensorFlow's: 'randtf' takes "
                    f"{_TF_USAGE} only (no magnitude noise or cap, every chosen op is applied)")
        return f"unknown RandAugment option {key!r} in {spec!r}; valid options for 'randtf': {', '.join(_TF_KEYS)}"
    if key == "w":
        # timm's old op-weights index: timm dropped it (timm 1.0 asserts on it), so there is nothing to match
        return (f"RandAugment option {section!r} in {spec!r} is not supported: timm's op-weights index "
                f"w<N> is gone from timm, which rejects it too; valid options: {', '.join(_TIMM_KEYS)}")
    return f"unknown RandAugment option {key!r} in {spec!r}; valid options: {', '.join(_TIMM_KEYS)}"


# ------------------------------------------------------------------------------------- point / colour ops
# Per-sample tensors are small (3 x 160 x 160 for RSB-A3), so each whole-image pass costs tens of
# microseconds: the ops below are written to make few passes. Point ops are one table lookup, and
# float -> uint8 goes through numpy, whose truncating cast is several times faster than torch's here.
# Ops take and return contiguous (3, H, W) tensors: mixing memory layouts (per-channel broadcasts over
# channels-last data, transposing casts) costs more on a CPU than the ops themselves.
def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Clamp a contiguous float (3, H, W) to [0, 255] and truncate to uint8 (PIL's rule for blends)."""
    return torch.from_numpy(x.clamp_(0, 255).numpy().astype(np.uint8))


def _apply_lut(img: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Map every uint8 value through a table: (256,) for all channels or (C, 256) per channel."""
    src = img.contiguous().numpy()
    tables = lut.to(torch.uint8).numpy()
    if tables.ndim == 1:
        return torch.from_numpy(np.take(tables, src))
    out = np.empty_like(src)
    for channel in range(src.shape[0]):
        np.take(tables[channel], src[channel], out=out[channel])
    return torch.from_numpy(out)


_LEVELS = torch.arange(256, dtype=torch.float32)


def _blend_lut(degenerate: float, factor: float) -> torch.Tensor:
    """Table of PIL's blend of a flat `degenerate` level with every level 0..255."""
    return (_LEVELS - degenerate).mul_(factor).add_(degenerate).clamp_(0, 255).to(torch.uint8)


def _blend(degenerate: torch.Tensor, img: torch.Tensor, factor: float) -> torch.Tensor:
    """PIL ``Image.blend(degenerate, img, factor)``: degenerate + factor * (img - degenerate), truncated."""
    return _to_uint8(torch.sub(img, degenerate).mul_(factor).add_(degenerate))


def _grey(img: torch.Tensor) -> torch.Tensor:
    """PIL's 'L' conversion (ITU-R 601-2 luma, rounded), as float (1, H, W)."""
    r, g, b = img.unbind(0)
    return torch.mul(r, 0.299).add_(g, alpha=0.587).add_(b, alpha=0.114).round_().unsqueeze(0)


def auto_contrast(img: torch.Tensor) -> torch.Tensor:
    """Stretch each channel to 0..255 (PIL ImageOps.autocontrast, cutoff 0); flat channels stay as is."""
    lo, hi = img.amin(dim=(1, 2)).float().view(-1, 1), img.amax(dim=(1, 2)).float().view(-1, 1)
    scale = 255.0 / (hi - lo).clamp(min=1)
    lut = (_LEVELS.view(1, -1) - lo).mul_(scale).clamp_(0, 255)
    lut = torch.where(hi > lo, lut, _LEVELS.view(1, -1))
    return _apply_lut(img, lut.to(torch.uint8))


def equalize(img: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per channel with PIL's rule (step from all but the last occupied bin)."""
    hist = torch.stack([torch.bincount(channel.flatten(), minlength=256) for channel in img])
    last_bin = 255 - (hist.flip(1) > 0).to(torch.int8).argmax(dim=1, keepdim=True)
    step = (hist.sum(1, keepdim=True) - hist.gather(1, last_bin)) // 255
    lut = (hist.cumsum(1) - hist + step // 2) // step.clamp(min=1)
    identity = torch.arange(256).expand_as(lut)
    return _apply_lut(img, torch.where(step == 0, identity, lut.clamp(max=255)))


def invert(img: torch.Tensor) -> torch.Tensor:
    return img.bitwise_not()  # 255 - x for uint8


def posterize(img: torch.Tensor, bits: int) -> torch.Tensor:
    """Keep the `bits` most significant bits (0 bits = black, as PIL before 11 did)."""
    bits = max(0, min(8, int(bits)))
    if bits == 8:
        return img
    return img & ((0xFF << (8 - bits)) & 0xFF)


def solarize(img: torch.Tensor, threshold: int) -> torch.Tensor:
    """Invert every value >= threshold (threshold 256 leaves the image unchanged)."""
    if threshold >= 256:
        return img
    levels = torch.arange(256)
    return _apply_lut(img, torch.where(levels >= threshold, 255 - levels, levels))


def solarize_add(img: torch.Tensor, add: int, threshold: int = 128) -> torch.Tensor:
    """Add `add` (clipped at 255) to every value below threshold (timm solarize_add)."""
    levels = torch.arange(256)
    return _apply_lut(img, torch.where(levels < threshold, (levels + add).clamp(max=255), levels))


def color(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Saturation: blend with the greyscale image (PIL ImageEnhance.Color)."""
    return _blend(_grey(img), img, factor)


def contrast(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with a flat image at the rounded mean grey level (PIL ImageEnhance.Contrast)."""
    mean = int(float(_grey(img).mean()) + 0.5)
    return _apply_lut(img, _blend_lut(float(mean), factor))


def brightness(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with black (PIL ImageEnhance.Brightness)."""
    return _apply_lut(img, _blend_lut(0.0, factor))


def sharpness(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with PIL's SMOOTH-filtered image (3x3 kernel 1..5..1 / 13; the one-pixel border is kept)."""
    if img.shape[-1] < 3 or img.shape[-2] < 3:
        return img
    x = img.float()
    rows = x[:, :-2] + x[:, 1:-1] + x[:, 2:]  # separable 3x3 box sum: cheaper than a conv on one image
    box = rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]
    degenerate = x.clone()
    degenerate[:, 1:-1, 1:-1] = box.add_(x[:, 1:-1, 1:-1], alpha=4.0).div_(13.0).round_()
    return _to_uint8(x.sub_(degenerate).mul_(factor).add_(degenerate))


# ---------------------------------------------------------------------------------------- geometric ops
_COORDS: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}


def _pixel_centres(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates shaped (1, W, 1) and (H, 1, 1), cached per image size."""
    key = (height, width)
    if key not in _COORDS:
        xs = torch.arange(width, dtype=torch.float32).add_(0.5).view(1, width, 1)
        ys = torch.arange(height, dtype=torch.float32).add_(0.5).view(height, 1, 1)
        _COORDS[key] = (xs, ys)
    return _COORDS[key]


def affine(img: torch.Tensor, matrix: Sequence[float], interpolation: str,
           fill: Sequence[int]) -> torch.Tensor:
    """Resample with PIL's ``Image.transform(size, AFFINE, matrix)`` convention.

    ``matrix = (a, b, c, d, e, f)`` maps an output point (x, y) to the input point
    (a x + b y + c, d x + e y + f) in pixel units (pixel centres at +0.5); points that fall outside the
    image take the `fill` colour.
    """
    a, b, c, d, e, f = matrix
    channels, height, width = img.shape
    xs, ys = _pixel_centres(height, width)
    # grid_sample wants input coordinates normalised to [-1, 1] (align_corners=False: -1 = left edge)
    sx, sy = 2.0 / width, 2.0 / height
    grid = torch.add(xs * torch.tensor([a * sx, d * sy]),
                     ys * torch.tensor([b * sx, e * sy]) + torch.tensor([c * sx - 1.0, f * sy - 1.0]))
    fill_value = torch.tensor([float(v) for v in fill][:channels]).view(1, channels, 1, 1)
    shifted = img.unsqueeze(0).float().sub_(fill_value)  # zero padding of (img - fill) = fill outside
    out = nnf.grid_sample(shifted, grid.unsqueeze(0), mode=interpolation, padding_mode="zeros",
                          align_corners=False)
    return _to_uint8(out[0].add_(fill_value[0] + 0.5))  # + 0.5 then truncation = rounding


def _taps(shift: float, interpolation: str) -> list[tuple[int, float]]:
    """(integer offset, weight) pairs that resample a signal at position i + shift, for any i.

    Bicubic uses the same Keys kernel (a = -0.75) as grid_sample, so translate matches rotate and shear.
    """
    if interpolation == "nearest":
        return [(math.floor(shift + 0.5), 1.0)]
    base = math.floor(shift)
    frac = shift - base
    if interpolation == "bilinear":
        return [(base, 1.0 - frac), (base + 1, frac)]

    def keys(t: float, a: float = -0.75) -> float:
        t = abs(t)
        if t <= 1:
            return ((a + 2) * t - (a + 3)) * t * t + 1
        return (((t - 5) * t + 8) * t - 4) * a if t < 2 else 0.0

    return [(base + k, keys(frac - k)) for k in (-1, 0, 1, 2)]


def translate(img: torch.Tensor, shift: float, axis: str, interpolation: str,
              fill: Sequence[int]) -> torch.Tensor:
    """out(x) = in(x + shift) along "x" or "y", `fill` outside: PIL's affine (1, 0, shift, 0, 1, 0) for x.

    A pure translation is separable, so it is a few shifted slices of a filled canvas instead of a 2-D
    grid_sample (several times faster, same result up to rounding).
    """
    channels, height, width = img.shape
    length = width if axis == "x" else height
    taps = [(offset, weight) for offset, weight in _taps(shift, interpolation) if weight != 0.0]
    pad = max(abs(offset) for offset, _ in taps) + 1
    fill_value = torch.tensor([float(v) for v in fill][:channels]).view(channels, 1, 1)
    shape = (channels, height, width + 2 * pad) if axis == "x" else (channels, height + 2 * pad, width)
    canvas = fill_value.expand(shape).clone()
    inner = canvas[:, :, pad:pad + width] if axis == "x" else canvas[:, pad:pad + height]
    inner.copy_(img)
    out: torch.Tensor | None = None
    for offset, weight in taps:
        start = pad + offset
        window = canvas[:, :, start:start + length] if axis == "x" else canvas[:, start:start + length]
        out = window * weight if out is None else out.add_(window, alpha=weight)
    assert out is not None
    return _to_uint8(out.add_(0.5))


def rotation_matrix(degrees: float, height: int, width: int) -> tuple[float, ...]:
    """PIL ``Image.rotate(degrees)`` (counter-clockwise about the centre, same size) as an affine matrix."""
    angle = -math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = width / 2.0, height / 2.0
    return (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)


# ------------------------------------------------------------------------ level -> argument (timm mappings)
def _negate_half(value: float) -> float:
    return -value if random.random() > 0.5 else value


def _enhance(level: float) -> float:  # range [0.1, 1.9]
    return level / LEVEL_DENOM * 1.8 + 0.1


def _enhance_increasing(level: float) -> float:  # 1.0 = unchanged; further from 1 = stronger
    return max(0.1, 1.0 + _negate_half(level / LEVEL_DENOM * 0.9))


def _posterize_bits(level: float) -> int:  # 0..4 bits kept: severity falls with level (TF EfficientNet)
    return int(level / LEVEL_DENOM * 4)


def _solarize_threshold(level: float) -> int:  # 0..256: severity falls with level
    return min(256, int(level / LEVEL_DENOM * 256))


@dataclass(frozen=True)
class _OpContext:
    interpolation: str
    fill: tuple[int, ...]

    def resample(self) -> str:
        if self.interpolation == "random":  # timm's default: bilinear or bicubic per call
            return random.choice(("bilinear", "bicubic"))
        return self.interpolation


OpFn = Callable[[torch.Tensor, float, _OpContext], torch.Tensor]


def _shear(img: torch.Tensor, level: float, ctx: _OpContext, axis: str) -> torch.Tensor:
    factor = _negate_half(level / LEVEL_DENOM * 0.3)
    matrix = (1.0, factor, 0.0, 0.0, 1.0, 0.0) if axis == "x" else (1.0, 0.0, 0.0, factor, 1.0, 0.0)
    return affine(img, matrix, ctx.resample(), ctx.fill)


def _translate(img: torch.Tensor, level: float, ctx: _OpContext, axis: str) -> torch.Tensor:
    fraction = _negate_half(level / LEVEL_DENOM * 0.45)  # timm translate_pct default 0.45
    pixels = fraction * (img.shape[-1] if axis == "x" else img.shape[-2])
    return translate(img, pixels, axis, ctx.resample(), ctx.fill)


def _rotate(img: torch.Tensor, level: float, ctx: _OpContext) -> torch.Tensor:
    degrees = _negate_half(level / LEVEL_DENOM * 30.0)
    return affine(img, rotation_matrix(degrees, *img.shape[-2:]), ctx.resample(), ctx.fill)


OPS: dict[str, OpFn] = {
    "AutoContrast": lambda img, level, ctx: auto_contrast(img),
    "Equalize": lambda img, level, ctx: equalize(img),
    "Invert": lambda img, level, ctx: invert(img),
    "Rotate": _rotate,
    "Posterize": lambda img, level, ctx: posterize(img, _posterize_bits(level)),
    "PosterizeIncreasing": lambda img, level, ctx: posterize(img, 4 - _posterize_bits(level)),
    "Solarize": lambda img, level, ctx: solarize(img, _solarize_threshold(level)),
    "SolarizeIncreasing": lambda img, level, ctx: solarize(img, 256 - _solarize_threshold(level)),
    "SolarizeAdd": lambda img, level, ctx: solarize_add(img, min(128, int(level / LEVEL_DENOM * 110))),
    "Color": lambda img, level, ctx: color(img, _enhance(level)),
    "ColorIncreasing": lambda img, level, ctx: color(img, _enhance_increasing(level)),
    "Contrast": lambda img, level, ctx: contrast(img, _enhance(level)),
    "ContrastIncreasing": lambda img, level, ctx: contrast(img, _enhance_increasing(level)),
    "Brightness": lambda img, level, ctx: brightness(img, _enhance(level)),
    "BrightnessIncreasing": lambda img, level, ctx: brightness(img, _enhance_increasing(level)),
    "Sharpness": lambda img, level, ctx: sharpness(img, _enhance(level)),
    "SharpnessIncreasing": lambda img, level, ctx: sharpness(img, _enhance_increasing(level)),
    "ShearX": lambda img, level, ctx: _shear(img, level, ctx, "x"),
    "ShearY": lambda img, level, ctx: _shear(img, level, ctx, "y"),
    "TranslateXRel": lambda img, level, ctx: _translate(img, level, ctx, "x"),
    "TranslateYRel": lambda img, level, ctx: _translate(img, level, ctx, "y"),
}


# ------------------------------------------------------------------------------------------ transform
class RandAugment:
    """Pick `num_ops` ops (with replacement), apply each with probability `prob` at a noisy magnitude.

    `interpolation` is used by the geometric ops (timm passes the training interpolation; "random" picks
    bilinear or bicubic per op as timm does). `fill` is the colour of areas uncovered by rotate/shear/
    translate (timm: the ImageNet mean).
    """

    def __init__(self, spec: RandAugmentSpec | str, *, interpolation: str = "bilinear",
                 fill: Sequence[int] = TIMM_FILL, ops: Sequence[str] | None = None):
        self.spec = RandAugmentSpec.parse(spec) if isinstance(spec, str) else spec
        if interpolation not in GEOMETRIC_INTERPOLATIONS:
            raise ResnetsError(f"unknown RandAugment interpolation {interpolation!r}; "
                               f"choose from {', '.join(GEOMETRIC_INTERPOLATIONS)}")
        default_ops = RAND_INCREASING_TRANSFORMS if self.spec.increasing else RAND_TRANSFORMS
        self.op_names = tuple(ops) if ops is not None else default_ops
        for name in self.op_names:
            if name not in OPS:
                raise ResnetsError(f"unknown RandAugment op {name!r}; choose from {', '.join(OPS)}")
        self.context = _OpContext(interpolation, tuple(int(v) for v in fill))

    def apply_op(self, name: str, img: torch.Tensor, level: float) -> torch.Tensor:
        """Apply one op at a given level (0..mmax); the random sign/interpolation choices still apply."""
        return OPS[name](img.contiguous(), level, self.context)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        img = img.contiguous()
        for name in random.choices(self.op_names, k=self.spec.num_ops):
            if self.spec.prob < 1.0 and random.random() > self.spec.prob:
                continue
            img = OPS[name](img, self.spec.sample_level(), self.context)
        return img

    def __repr__(self) -> str:
        s = self.spec
        return (f"RandAugment(m={s.magnitude:g}, n={s.num_ops}, mstd={s.magnitude_std:g}, "
                f"mmax={s.magnitude_max:g}, increasing={s.increasing}, p={s.prob:g}, "
                f"interpolation={self.context.interpolation})")
