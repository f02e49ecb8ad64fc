"""RandAugment as the ResNet-RS authors' TensorFlow code computes it (``randtf-m<M>-n<N>``), on uint8 (3, H, W).

Source: tensorflow/tpu ``models/official/efficientnet/autoaugment.py``, which ResNet-RS training calls
(``models/official/resnet/resnet_preprocessing.py`` ``preprocess_for_train`` with ``augment_name:
randaugment``; the released ResNet-RS checkpoints and ``resnet_rs/configs/*.yaml`` are the TF1 ones).
``distort_image_with_randaugment(image, num_layers, magnitude)`` does, for each of ``num_layers`` layers:
pick one op uniformly from ``available_ops`` (with replacement across layers) and apply it, always: the
probability it draws in [0.2, 0.8] reaches only ops with a ``prob`` argument and none of these has one.
The magnitude is ``float(magnitude)`` (no noise) and every op maps it through ``level / _MAX_LEVEL``
(``_MAX_LEVEL = 10.``) with no cap, so m15 is 1.5x the m10 ranges. Empty pixels are filled with 128
(``replace_value = [128] * 3``); translations are absolute pixels (``translate_const=100``), cutout's half
size ``cutout_const=40``. The op list, in TF's order, with ``level_to_arg`` at level L (m10 / m15):

==============  =====================================================  ========================
op              argument                                               m10 / m15
==============  =====================================================  ========================
AutoContrast    none                                                   -
Equalize        none                                                   -
Invert          none                                                   -
Rotate          +-(L/10 * 30) degrees, sign 50/50                      30 / 45 degrees
Posterize       bits = int(L/10 * 4), shift = 8 - bits                 4 / 6 bits kept
Solarize        threshold = int(L/10 * 256), as uint8 (wraps mod 256)  256 -> 0 / 384 -> 128
Color           factor L/10 * 1.8 + 0.1 (never negated)                1.9 / 2.8
Contrast        same factor                                            1.9 / 2.8
Brightness      same factor                                            1.9 / 2.8
Sharpness       same factor                                            1.9 / 2.8
ShearX, ShearY  +-(L/10 * 0.3)                                         0.3 / 0.45
TranslateX, Y   +-(L/10 * 100) pixels                                  100 / 150 px
Cutout          half size int(L/10 * 40) px, centre uniform            40 / 60 px (80 / 120 side)
SolarizeAdd     add int(L/10 * 110) below 128, clipped at 255          110 / 165
==============  =====================================================  ========================

What TF's kernels compute, and what is matched (differences from PIL/timm in brackets):

* Solarize compares the uint8 image with the threshold converted to uint8, which wraps: at m10 (256 -> 0)
  every pixel is inverted, at m15 (384 -> 128) the upper half is [timm: 256 = unchanged]. Posterize's shift
  also becomes a uint8 and TF's bit shifts clamp it to 0..7 (bits 0 -> shift 7). Both reproduced exactly
  (tensorflow 2.21 shows the same wrap and clamp).
* Contrast blends with a flat image of ``sum(histogram) / 256`` = H * W / 256, clipped to 255 and truncated:
  TF divides the pixel count, not the grey sum [PIL: the mean grey level]; at 160 px that is 100, at 224 px
  196, at 256 px and above 255. Reproduced exactly.
* Grey (Color, Contrast): ``tf.image.rgb_to_grayscale``: x / 255 weighted 0.2989, 0.5870, 0.1140 in float32,
  then x 255.5 and truncated [PIL: 0.299/0.587/0.114, rounded].
* Sharpness: 3x3 kernel (1 1 1, 1 5 1, 1 1 1) / 13 over the interior, accumulated in kernel order with one
  float32 rounding per tap (fused multiply-add, as TF's depthwise kernel does) and truncated [PIL: rounded],
  border pixels kept. AutoContrast: ``x * scale + offset`` in float32, truncated.
* Blends (Color, Contrast, Brightness, Sharpness): ``degenerate + factor * (image - degenerate)`` in float32,
  clipped, truncated, as PIL. Equalize: PIL's rule, which TF copies; the kernels are shared with timm's.
* Rotate, Shear, Translate: ``ImageProjectiveTransform`` with NEAREST sampling (``tf.contrib.image``'s
  default) in pixel-index coordinates (rotation about ((W-1)/2, (H-1)/2)), ``std::round`` (half away from
  zero), and the wrap/unwrap alpha channel: an output pixel whose source is outside the image is 128
  [timm: bilinear/bicubic with PIL's corner-based coordinates and the ImageNet-mean fill].

Every op does TF's float32 operations in TF's order, so results are bit-identical: against tensorflow-cpu
2.21 (TF1's functions run on its kernels, ``ImageProjectiveTransformV3`` NEAREST with a constant 0 fill in
place of ``tf.contrib.image``), all 16 ops at levels 0-25 and both signs matched on every pixel of 11 images
(real photos, odd sizes, flat and noise images). What could still differ on another TF build is float32
rounding itself: summed without fused multiply-add, Sharpness's smoothed image differs by 1 grey level on
0.5% of its values (before the blend), and cos/sin one ulp off the correctly rounded value can move a
sampled pixel that lies on a rounding tie.

Not the same as TF2 Model Garden's ``official/vision/ops/augment.py`` RandAugment (not implemented here): it
draws from 17 branches (the 16 ops plus identity, so 1/17 of layers do nothing), its ResNet-RS configs keep
the config default ``translate_const: 10`` (15 px at m15), it resamples through Keras' ``transform`` whose
default ``fill_mode='reflect'`` mirrors content in place of the 128 fill (tensorflow/models#10493), and its
``prob_to_apply`` (None in the ResNet-RS configs) would skip layers.

Randomness (the op, the sign, the cutout centre) comes from Python's ``random`` module, which the datasets
seed per sample, so a sample's augmentation does not depend on the worker that produced it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..errors import ResnetsError
from .randaugment import (
    _LEVELS,
    TFRandAugmentSpec,
    _apply_lut,
    _blend,
    _blend_lut,
    _to_uint8,
    brightness,
    equalize,
    invert,
    parse_rand_augment,
    solarize_add,
)
from .randaugment import posterize as _posterize_bits
from .randaugment import solarize as _solarize_from

MAX_LEVEL = 10.0  # TF _MAX_LEVEL
REPLACE = 128  # TF replace_value: the fill of pixels a geometric op uncovers, and of cutout
TRANSLATE_CONST = 100.0  # distort_image_with_randaugment: HParams(cutout_const=40, translate_const=100)
CUTOUT_CONST = 40.0
TF_RAND_OPS = (  # distort_image_with_randaugment available_ops, in TF's order
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color", "Contrast",
    "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY", "Cutout", "SolarizeAdd",
)
SIGNED_OPS = frozenset({"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"})  # _randomly_negate_tensor
GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale


# ------------------------------------------------------------------------------- level -> argument (TF)
def op_argument(name: str, level: float) -> float | int | None:
    """TF ``level_to_arg`` for op `name` at `level`, before the random sign of the SIGNED_OPS; None: no argument."""
    fraction = level / MAX_LEVEL
    if name in ("AutoContrast", "Equalize", "Invert"):
        return None
    if name == "Rotate":
        return fraction * 30.0
    if name == "Posterize":
        return int(fraction * 4)
    if name == "Solarize":
        return int(fraction * 256)
    if name == "SolarizeAdd":
        return int(fraction * 110)
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return fraction * 1.8 + 0.1
    if name in ("ShearX", "ShearY"):
        return fraction * 0.3
    if name in ("TranslateX", "TranslateY"):
        return fraction * TRANSLATE_CONST
    if name == "Cutout":
        return int(fraction * CUTOUT_CONST)
    raise ResnetsError(f"unknown TF RandAugment op {name!r}; choose from {', '.join(TF_RAND_OPS)}")


# ----------------------------------------------------------------------------------- point / colour ops
def _f32(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float32)


def autocontrast(img: torch.Tensor) -> torch.Tensor:
    """Per channel: ``x * scale + offset`` (scale = 255 / (hi - lo), offset = -lo * scale) in float32, truncated."""
    lo = img.amin(dim=(1, 2)).float().view(-1, 1)
    hi = img.amax(dim=(1, 2)).float().view(-1, 1)
    scale = _f32(255.0) / (hi - lo).clamp(min=1)  # the clamp only guards flat channels, which stay as they are
    offset = lo.neg() * scale
    lut = (_LEVELS.view(1, -1) * scale + offset).clamp_(0, 255).to(torch.uint8)
    return _apply_lut(img, torch.where(hi > lo, lut, _LEVELS.to(torch.uint8).view(1, -1)))


def posterize(img: torch.Tensor, bits: int) -> torch.Tensor:
    """Keep the top bits: TF shifts right then left by ``8 - bits``, as uint8 (wraps), clamped to 0..7."""
    shift = min((8 - int(bits)) % 256, 7)
    return _posterize_bits(img, 8 - shift)


def solarize(img: torch.Tensor, threshold: int) -> torch.Tensor:
    """Invert values >= threshold, the threshold taken as uint8 as TF does (256 -> 0: all; 384 -> 128)."""
    return _solarize_from(img, int(threshold) % 256)


def grey(img: torch.Tensor) -> torch.Tensor:
    """``tf.image.rgb_to_grayscale`` of a uint8 image: uint8 (1, H, W)."""
    x = img.float().mul_(_f32(1.0 / 255.0))  # convert_image_dtype: cast, then x (1 / 255)
    r, g, b = x.unbind(0)
    wr, wg, wb = GREY_WEIGHTS
    level = torch.mul(r, wr).add_(torch.mul(g, wg)).add_(torch.mul(b, wb))  # unfused, r + g then + b
    return level.mul_(255.5).to(torch.uint8).unsqueeze(0)  # back to uint8: x (255 + 0.5), truncated


def color(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with TF's greyscale image."""
    return _blend(grey(img).float(), img, factor)


def contrast(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with a flat image at TF's "mean": the pixel count / 256, clipped to 255 (not the mean grey)."""
    height, width = img.shape[-2:]
    level = int(min(255.0, max(0.0, float(height * width) / 256.0)))
    return _apply_lut(img, _blend_lut(float(level), factor))


def sharpness(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with TF's smoothed image: 3x3 (1 1 1, 1 5 1, 1 1 1) / 13 in float32, truncated; border kept.

    TF's depthwise convolution accumulates the nine taps in kernel order with fused multiply-adds (float32
    rounding once per tap); each step is computed exactly in float64 and rounded to float32 to match.
    """
    channels, height, width = img.shape
    if height < 3 or width < 3:
        return img
    x = img.double()
    centre, edge = float(_f32(5.0) / 13.0), float(_f32(1.0) / 13.0)
    smooth = torch.zeros(channels, height - 2, width - 2, dtype=torch.float64)
    for dy in range(3):  # kernel rows, then columns
        for dx in range(3):
            weight = centre if (dy, dx) == (1, 1) else edge
            # float32 x float32 products of uint8 values and the sum with a float32 are exact in float64
            smooth = smooth.add_(x[:, dy:dy + height - 2, dx:dx + width - 2], alpha=weight).float().double()
    degenerate = img.float()
    degenerate[:, 1:-1, 1:-1] = smooth.float().clamp_(0, 255).trunc_()
    return _to_uint8(img.float().sub_(degenerate).mul_(factor).add_(degenerate))


def cutout(img: torch.Tensor, half_size: int, centre_y: int, centre_x: int) -> torch.Tensor:
    """Fill rows [cy - s, cy + s) x columns [cx - s, cx + s), clipped to the image, with 128."""
    height, width = img.shape[-2:]
    top, bottom = max(0, centre_y - half_size), min(height, centre_y + half_size)
    left, right = max(0, centre_x - half_size), min(width, centre_x + half_size)
    if top >= bottom or left >= right:
        return img
    out = img.clone()
    out[:, top:bottom, left:right] = REPLACE
    return out


# --------------------------------------------------------------------------------------- geometric ops
_INDEX_GRIDS: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}


def _index_grids(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Output pixel indices as float32, shaped (1, W) and (H, 1), cached per size."""
    key = (height, width)
    if key not in _INDEX_GRIDS:
        _INDEX_GRIDS[key] = (torch.arange(width, dtype=torch.float32).view(1, width),
                             torch.arange(height, dtype=torch.float32).view(height, 1))
    return _INDEX_GRIDS[key]


def _round_half_away(coords: torch.Tensor) -> torch.Tensor:
    """``std::round`` (ties away from zero) of float32 values, exactly: round half to even, then fix the ties."""
    rounded, whole = torch.round(coords), torch.trunc(coords)
    tie = (coords - whole).abs_() == 0.5  # exact in float32
    return torch.where(tie, whole + torch.sign(coords), rounded)


def projective_nearest(img: torch.Tensor, matrix: Sequence[float | torch.Tensor]) -> torch.Tensor:
    """TF's ``ImageProjectiveTransform`` (NEAREST) + unwrap: out(x, y) = in(a x + b y + c, d x + e y + f).

    Coordinates are pixel indices, computed in float32 in TF's order ((a x + b y) + c), rounded half away
    from zero; output pixels whose source is outside the image are 128. Only affine matrices occur here.
    A coordinate that does not depend on the other axis (b = 0 or d = 0: shears, translations) is computed
    once per row or column: adding b y = 0 does not change a float32 sum.
    """
    a, b, c, d, e, f = (torch.as_tensor(v, dtype=torch.float32) for v in matrix)
    channels, height, width = img.shape
    xs, ys = _index_grids(height, width)
    source_x = _round_half_away(xs * a + ys * b + c if b != 0 else xs * a + c)  # (H, W) or (1, W)
    source_y = _round_half_away(xs * d + ys * e + f if d != 0 else ys * e + f)  # (H, W) or (H, 1)
    inside = (source_x >= 0) & (source_x < width) & (source_y >= 0) & (source_y < height)
    flat = source_y.clamp(0, height - 1).long() * width + source_x.clamp(0, width - 1).long()
    flat = flat.expand(height, width).reshape(-1)
    gathered = np.take(img.contiguous().view(channels, -1).numpy(), flat.numpy(), axis=1)
    out = torch.from_numpy(gathered).view(channels, height, width)
    if not bool(inside.all()):
        out.masked_fill_(~inside.expand(height, width), REPLACE)
    return out


def rotation_matrix(degrees: float, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """``tf.contrib.image.rotate``'s transform (``angles_to_projective_transforms``), in float32.

    cos and sin are the float32 roundings of the exact values, as TF's kernels give them (torch's float32
    sin is one ulp off at some angles, e.g. 60 degrees, which moves a few sampled pixels).
    """
    radians = float(_f32(degrees) * _f32(math.pi / 180.0))
    cos, sin = _f32(math.cos(radians)), _f32(math.sin(radians))
    w1, h1 = _f32(width - 1), _f32(height - 1)
    x_offset = (w1 - (cos * w1 - sin * h1)) / 2.0
    y_offset = (h1 - (sin * w1 + cos * h1)) / 2.0
    return (cos, -sin, x_offset, sin, cos, y_offset)


def rotate(img: torch.Tensor, degrees: float) -> torch.Tensor:
    return projective_nearest(img, rotation_matrix(degrees, *img.shape[-2:]))


def shear_x(img: torch.Tensor, level: float) -> torch.Tensor:
    return projective_nearest(img, (1.0, level, 0.0, 0.0, 1.0, 0.0))


def shear_y(img: torch.Tensor, level: float) -> torch.Tensor:
    return projective_nearest(img, (1.0, 0.0, 0.0, level, 1.0, 0.0))


def translate_x(img: torch.Tensor, pixels: float) -> torch.Tensor:
    """out(x) = in(x + pixels): ``contrib_image.translate(image, [-pixels, 0])``."""
    return projective_nearest(img, (1.0, 0.0, pixels, 0.0, 1.0, 0.0))


def translate_y(img: torch.Tensor, pixels: float) -> torch.Tensor:
    return projective_nearest(img, (1.0, 0.0, 0.0, 0.0, 1.0, pixels))


# ------------------------------------------------------------------------------------------ transform
def _negate_half(value: float) -> float:
    """TF ``_randomly_negate_tensor``: keep the sign with probability 0.5."""
    return -value if random.random() < 0.5 else value


def _cutout_random(img: torch.Tensor, half_size: int) -> torch.Tensor:
    height, width = img.shape[-2:]
    return cutout(img, half_size, random.randrange(height), random.randrange(width))


_KERNELS: dict[str, Callable[[torch.Tensor, float | int | None], torch.Tensor]] = {
    "AutoContrast": lambda img, arg: autocontrast(img),
    "Equalize": lambda img, arg: equalize(img),
    "Invert": lambda img, arg: invert(img),
    "Rotate": lambda img, arg: rotate(img, arg),
    "Posterize": lambda img, arg: posterize(img, arg),
    "Solarize": lambda img, arg: solarize(img, arg),
    "Color": lambda img, arg: color(img, arg),
    "Contrast": lambda img, arg: contrast(img, arg),
    "Brightness": lambda img, arg: brightness(img, arg),
    "Sharpness": lambda img, arg: sharpness(img, arg),
    "ShearX": lambda img, arg: shear_x(img, arg),
    "ShearY": lambda img, arg: shear_y(img, arg),
    "TranslateX": lambda img, arg: translate_x(img, arg),
    "TranslateY": lambda img, arg: translate_y(img, arg),
    "Cutout": lambda img, arg: _cutout_random(img, arg),
    "SolarizeAdd": lambda img, arg: solarize_add(img, arg, 128),
}


class TFRandAugment:
    """Each of `num_ops` layers picks one of TF's 16 ops uniformly and always applies it at the magnitude.

    TF's choices are fixed: NEAREST resampling and a 128 fill for the geometric ops, whatever the training
    interpolation. `ops` restricts the op list (tests); the default is TF's.
    """

    def __init__(self, spec: TFRandAugmentSpec | str, ops: Sequence[str] | None = None):
        parsed = parse_rand_augment(spec) if isinstance(spec, str) else spec
        if not isinstance(parsed, TFRandAugmentSpec):
            raise ResnetsError(f"{spec!r} is timm's RandAugment; TensorFlow's is 'randtf-m<M>-n<N>'")
        self.spec = parsed
        self.op_names = tuple(ops) if ops is not None else TF_RAND_OPS
        for name in self.op_names:
            if name not in _KERNELS:
                raise ResnetsError(f"unknown TF RandAugment op {name!r}; choose from {', '.join(TF_RAND_OPS)}")

    def apply_op(self, name: str, img: torch.Tensor, level: float) -> torch.Tensor:
        """Apply one op at `level`; the sign of the geometric ops and the cutout centre are still drawn."""
        argument = op_argument(name, level)
        if name in SIGNED_OPS:
            argument = _negate_half(argument)
        return _KERNELS[name](img.contiguous(), argument)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        img = img.contiguous()
        for _ in range(self.spec.num_ops):
            img = self.apply_op(random.choice(self.op_names), img, self.spec.magnitude)
        return img

    def __repr__(self) -> str:
        return f"TFRandAugment(m={self.spec.magnitude:g}, n={self.spec.num_ops}, ops={len(self.op_names)})"
