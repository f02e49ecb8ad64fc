"""Batched image kernels: the per-sample ops of ``transforms``, ``randaugment``, ``randaugment_tf`` and
torchvision's TrivialAugmentWide, on whole uint8 batches (N, 3, H, W) with one parameter per image.

Each kernel does the per-sample op's arithmetic in the same order, vectorised over the batch, so with the
same parameters it gives the same pixels (within one grey level where a float sum's order differs). They
run on whatever device the batch is on; parameters are small tensors (N,) or (N, k).

Why not kornia (0.9, evaluated for this): its augmentations do draw per-sample parameters for a batch,
but none of its ops is the one our recipes name. Its RandomResizedCrop warps with bilinear sampling and no
antialiasing (a 224 -> 160 crop differs from PIL/torchvision's antialiased resize by up to ~40 grey levels
at edges), its RandAugment/TrivialAugment have their own op lists and magnitude ranges (no timm magnitude
noise, no "increasing" ops, no TF variants) and work on float images in [0, 1], so the PIL truncation rules
timm's ops follow are lost. Matching timm/TF/torchvision would mean re-implementing every op around it;
what kornia would contribute (grid sampling, LUTs) is a few torch calls. So the kernels are written here
on torch ops, and the tests compare them pixel by pixel with the per-sample ops.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf

from .randaugment_tf import GREY_WEIGHTS, REPLACE


def _levels(device: torch.device) -> torch.Tensor:
    return torch.arange(256, dtype=torch.float32, device=device)


def _col(values: torch.Tensor, ndim: int = 4) -> torch.Tensor:
    """(N,) -> (N, 1, 1, 1) for broadcasting over images."""
    return values.view(-1, *([1] * (ndim - 1)))


def to_uint8_trunc(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 255] and truncate (PIL's blend rule, numpy's astype)."""
    return x.clamp_(0, 255).to(torch.uint8)


def apply_luts(images: torch.Tensor, luts: torch.Tensor) -> torch.Tensor:
    """Map each image through its table: luts (N, 256) for all channels or (N, C, 256) per channel."""
    n, c = images.shape[:2]
    if luts.ndim == 2:
        luts = luts[:, None, :].expand(n, c, 256)
    flat = images.reshape(n, c, -1).long()
    return torch.gather(luts.to(torch.uint8), 2, flat).view_as(images)


# ------------------------------------------------------------------------------------------ resize / crop
def _triangle(t: torch.Tensor) -> torch.Tensor:
    return (1.0 - t.abs()).clamp_(min=0)


def _keys_cubic(t: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """PIL's/torch's antialiasing bicubic kernel (Keys, a = -0.5)."""
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = (((t - 5) * t + 8) * t - 4) * a
    return torch.where(t < 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def resize_taps(start: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int,
                mode: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and weights, both (N, out, K), that resize the span [start, start + length) of each
    row to out_size: out[i] = sum_k in[index[i, k]] * weight[i, k].

    torch's antialiased resize (``_compute_indices_min_size_weights_aa``, which follows PIL): centre
    scale * (i + 0.5), support = (1 bilinear | 2 bicubic) * max(scale, 1), a window of whole pixels from
    trunc(centre - support + 0.5), weights normalised to sum 1. mode: 0 bilinear, 1 bicubic, 2 nearest
    (torch's floor(i * scale) rule). K is the widest window in the batch; taps past a window weigh 0.
    """
    device = start.device
    mode = mode.long().view(-1, 1, 1)
    length = length.float().view(-1, 1, 1)
    start = start.float().view(-1, 1, 1)
    scale = length / out_size
    stretch = scale.clamp(min=1.0)
    support = torch.where(mode == 1, 2.0, 1.0) * stretch
    widest = int(math.ceil(float((2 * support).max()))) + 2 if mode.device.type == "cpu" else None
    if widest is None:  # on a GPU: the bound from the host-known sizes would need a sync; take the batch's worst
        widest = int(math.ceil(4 * max(1.0, float(in_size) / out_size))) + 2
    i = torch.arange(out_size, dtype=torch.float32, device=device).view(1, -1, 1)
    k = torch.arange(widest, dtype=torch.float32, device=device).view(1, 1, -1)
    centre = scale * (i + 0.5)
    lo = torch.trunc(centre - support + 0.5).clamp_(min=0)
    hi = torch.minimum(torch.trunc(centre + support + 0.5), length)
    j = lo + k  # (N, out, K) positions in the span
    offset = (j - centre + 0.5) / stretch
    weight = torch.where(mode == 1, _keys_cubic(offset), _triangle(offset)) * (j < hi)
    weight = weight / weight.sum(-1, keepdim=True).clamp_(min=1e-12)
    nearest = torch.minimum(torch.floor(i * scale), length - 1).expand_as(j)
    is_nearest = (mode == 2).expand_as(j)
    j = torch.where(is_nearest, nearest, j)
    weight = torch.where(is_nearest, (k == 0).float().expand_as(j), weight)
    index = (start + j).clamp_(0, in_size - 1).long()
    return index, weight


_MODE_NAMES = ("bilinear", "bicubic", "nearest")


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int, mode: torch.Tensor,
                 method: str = "auto") -> torch.Tensor:
    """Crop boxes (N, 4) = (top, left, height, width) of uint8 (N, H, W, 3) images and resize each to size^2.

    Returns uint8 (N, 3, size, size). Two methods, same pixels within one grey level:

    * "taps" (the GPU's): two separable passes like torch's uint8 antialiased kernel (horizontal, rounded
      to uint8, then vertical), each a sum over the K taps of a window: one gather and multiply-add per tap
      for the whole batch, no host sync.
    * "kernel" (the CPU's): torch's own antialiased uint8 kernel (``transforms.resized_crop``), called once
      per image. Measured on the 2-core Xeon (benchmarks/kornia_check.py, 32 photos 224 -> 160): 48 ms per
      batch against 860 ms for the taps, whose gathers a CPU does element by element, while the kernel
      reads only each window's pixels with integer weights. Crop sizes differ per image, so no single CPU
      call covers the batch; the per-image calls cost ~20 us each next to milliseconds of pixel work.

    "auto" picks "taps" on CUDA and "kernel" elsewhere.
    """
    if method == "auto":
        method = "taps" if images.device.type == "cuda" else "kernel"
    if method == "kernel":
        from .transforms import resized_crop as crop_one

        views = images.permute(0, 3, 1, 2)  # (N, 3, H, W) views of the HWC canvases, as the decoders give
        codes = mode.tolist()
        return torch.stack([crop_one(views[i], *boxes[i].tolist(), size, _MODE_NAMES[codes[i]])
                            for i in range(len(views))]) if len(views) else torch.empty(
            0, images.shape[-1], size, size, dtype=torch.uint8, device=images.device)
    n, height, width, channels = images.shape
    x = images.float()
    index, weight = resize_taps(boxes[:, 1], boxes[:, 3], width, size, mode)
    rows = torch.zeros(n, height, size, channels, device=images.device)
    for tap in range(index.shape[-1]):
        source = index[:, :, tap].view(n, 1, size, 1).expand(n, height, size, channels)
        rows.addcmul_(x.gather(2, source), weight[:, :, tap].view(n, 1, size, 1))
    rows.add_(0.5).floor_().clamp_(0, 255)
    index, weight = resize_taps(boxes[:, 0], boxes[:, 2], height, size, mode)
    out = torch.zeros(n, size, size, channels, device=images.device)
    for tap in range(index.shape[-1]):
        source = index[:, :, tap].view(n, size, 1, 1).expand(n, size, size, channels)
        out.addcmul_(rows.gather(1, source), weight[:, :, tap].view(n, size, 1, 1))
    return out.add_(0.5).floor_().clamp_(0, 255).to(torch.uint8).permute(0, 3, 1, 2).contiguous()


def hflip(images: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    return torch.where(_col(flip.bool()), images.flip(-1), images)


# ----------------------------------------------------------------------------- timm / PIL colour ops
def auto_contrast(images: torch.Tensor) -> torch.Tensor:
    lo = images.amin(dim=(2, 3)).float().unsqueeze(-1)
    hi = images.amax(dim=(2, 3)).float().unsqueeze(-1)
    levels = _levels(images.device).view(1, 1, -1)
    scale = 255.0 / (hi - lo).clamp(min=1)
    lut = (levels - lo).mul_(scale).clamp_(0, 255)
    lut = torch.where(hi > lo, lut, levels.expand_as(lut))
    return apply_luts(images, lut.to(torch.uint8))


def equalize(images: torch.Tensor) -> torch.Tensor:
    """PIL's ImageOps.equalize per image and channel (the rule ``randaugment.equalize`` implements)."""
    n, c = images.shape[:2]
    flat = images.reshape(n, c, -1).long()
    hist = torch.zeros(n, c, 256, dtype=torch.int64, device=images.device)
    hist.scatter_add_(2, flat, torch.ones_like(flat))
    last_bin = 255 - (hist.flip(2) > 0).to(torch.int8).argmax(dim=2, keepdim=True)
    step = (hist.sum(2, keepdim=True) - hist.gather(2, last_bin)) // 255
    lut = (hist.cumsum(2) - hist + step // 2) // step.clamp(min=1)
    identity = torch.arange(256, device=images.device).expand_as(lut)
    return apply_luts(images, torch.where(step == 0, identity, lut.clamp(max=255)))


def invert(images: torch.Tensor) -> torch.Tensor:
    return images.bitwise_not()


def posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the `bits` (N,) most significant bits of each image (0 bits: black)."""
    bits = bits.long().clamp(0, 8)
    mask = ((0xFF << (8 - bits)) & 0xFF).to(torch.uint8)
    return images & _col(mask)


def solarize(images: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    levels = torch.arange(256, device=images.device).view(1, -1)
    lut = torch.where(levels >= threshold.long().view(-1, 1), 255 - levels, levels)
    return apply_luts(images, lut)


def solarize_add(images: torch.Tensor, add: torch.Tensor, threshold: int = 128) -> torch.Tensor:
    levels = torch.arange(256, device=images.device).view(1, -1)
    lut = torch.where(levels < threshold, (levels + add.long().view(-1, 1)).clamp(max=255), levels)
    return apply_luts(images, lut)


def _blend_lut(degenerate: torch.Tensor, factor: torch.Tensor, device: torch.device) -> torch.Tensor:
    levels = _levels(device).view(1, -1)
    d, f = degenerate.float().view(-1, 1), factor.float().view(-1, 1)
    return (levels - d).mul_(f).add_(d).clamp_(0, 255).to(torch.uint8)


def _grey(images: torch.Tensor) -> torch.Tensor:
    """PIL 'L' (0.299, 0.587, 0.114, rounded) as float (N, 1, H, W)."""
    r, g, b = images.float().unbind(1)
    return torch.mul(r, 0.299).add_(g, alpha=0.587).add_(b, alpha=0.114).round_().unsqueeze(1)


def _blend(degenerate: torch.Tensor, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return to_uint8_trunc(torch.sub(images.float(), degenerate).mul_(_col(factor.float())).add_(degenerate))


def color(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(_grey(images), images, factor)


def contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = torch.floor(_grey(images).mean(dim=(1, 2, 3)) + 0.5)
    return apply_luts(images, _blend_lut(mean, factor, images.device))


def brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return apply_luts(images, _blend_lut(torch.zeros_like(factor), factor, images.device))


def sharpness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with PIL's SMOOTH image (3x3 1..5..1 / 13, rounded; the border kept)."""
    if images.shape[-1] < 3 or images.shape[-2] < 3:
        return images
    x = images.float()
    rows = x[:, :, :-2] + x[:, :, 1:-1] + x[:, :, 2:]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    degenerate = x.clone()
    degenerate[:, :, 1:-1, 1:-1] = box.add_(x[:, :, 1:-1, 1:-1], alpha=4.0).div_(13.0).round_()
    return to_uint8_trunc(x.sub_(degenerate).mul_(_col(factor.float())).add_(degenerate))


# ------------------------------------------------------------------------------- timm geometric ops
def affine(images: torch.Tensor, matrices: torch.Tensor, mode: str, fill: tuple[int, ...]) -> torch.Tensor:
    """PIL's affine convention per image: matrices (N, 6) map output (x, y) to input (a x + b y + c, d x + e y + f)
    in pixel units, pixel centres at +0.5; outside: `fill`. Rounded to uint8 (``randaugment.affine``)."""
    n, channels, height, width = images.shape
    device = images.device
    m = matrices.float()
    xs = torch.arange(width, dtype=torch.float32, device=device).add_(0.5).view(1, 1, width, 1)
    ys = torch.arange(height, dtype=torch.float32, device=device).add_(0.5).view(1, height, 1, 1)
    sx, sy = 2.0 / width, 2.0 / height
    kx = torch.stack([m[:, 0] * sx, m[:, 3] * sy], dim=1).view(n, 1, 1, 2)
    ky = torch.stack([m[:, 1] * sx, m[:, 4] * sy], dim=1).view(n, 1, 1, 2)
    k0 = torch.stack([m[:, 2] * sx - 1.0, m[:, 5] * sy - 1.0], dim=1).view(n, 1, 1, 2)
    grid = torch.add(xs * kx, ys * ky + k0)
    fill_value = torch.tensor([float(v) for v in fill][:channels], device=device).view(1, channels, 1, 1)
    shifted = images.float().sub_(fill_value)
    out = nnf.grid_sample(shifted, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return to_uint8_trunc(out.add_(fill_value + 0.5))


def rotation_matrices(degrees: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """PIL ``rotate`` (counter-clockwise about the centre) as (N, 6) affine matrices (``randaugment``)."""
    angle = -torch.deg2rad(degrees.double())
    cos, sin = torch.cos(angle), torch.sin(angle)
    cx, cy = width / 2.0, height / 2.0
    return torch.stack([cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy], dim=1)


# --------------------------------------------------------------------------------------- TF flavour
def tf_autocontrast(images: torch.Tensor) -> torch.Tensor:
    lo = images.amin(dim=(2, 3)).float().unsqueeze(-1)
    hi = images.amax(dim=(2, 3)).float().unsqueeze(-1)
    scale = torch.tensor(255.0, dtype=torch.float32, device=images.device) / (hi - lo).clamp(min=1)
    offset = lo.neg() * scale
    levels = _levels(images.device).view(1, 1, -1)
    lut = (levels * scale + offset).clamp_(0, 255).to(torch.uint8)
    return apply_luts(images, torch.where(hi > lo, lut, levels.to(torch.uint8).expand_as(lut)))


def tf_posterize(images: torch.Tensor, bits: int) -> torch.Tensor:
    shift = min((8 - int(bits)) % 256, 7)
    return images & ((0xFF << shift) & 0xFF)


def tf_solarize(images: torch.Tensor, threshold: int) -> torch.Tensor:
    t = int(threshold) % 256
    return torch.where(images >= t, 255 - images, images)


def tf_grey(images: torch.Tensor) -> torch.Tensor:
    x = images.float().mul_(torch.tensor(1.0 / 255.0, dtype=torch.float32))
    r, g, b = x.unbind(1)
    wr, wg, wb = GREY_WEIGHTS
    level = torch.mul(r, wr).add_(torch.mul(g, wg)).add_(torch.mul(b, wb))
    return level.mul_(255.5).to(torch.uint8).unsqueeze(1)


def tf_color(images: torch.Tensor, factor: float) -> torch.Tensor:
    return to_uint8_trunc(torch.sub(images.float(), tf_grey(images).float()).mul_(factor).add_(tf_grey(images).float()))


def tf_contrast(images: torch.Tensor, factor: float) -> torch.Tensor:
    height, width = images.shape[-2:]
    level = float(int(min(255.0, max(0.0, float(height * width) / 256.0))))
    lut = (_levels(images.device) - level).mul_(factor).add_(level).clamp_(0, 255).to(torch.uint8)
    return lut[images.long()]


def tf_brightness(images: torch.Tensor, factor: float) -> torch.Tensor:
    lut = _levels(images.device).mul_(factor).clamp_(0, 255).to(torch.uint8)
    return lut[images.long()]


def tf_sharpness(images: torch.Tensor, factor: float) -> torch.Tensor:
    """``randaugment_tf.sharpness`` on a batch: nine taps in kernel order, float32 rounding after each."""
    n, channels, height, width = images.shape
    if height < 3 or width < 3:
        return images
    x = images.double()
    f32 = torch.tensor
    centre = float(f32(5.0, dtype=torch.float32) / 13.0)
    edge = float(f32(1.0, dtype=torch.float32) / 13.0)
    smooth = torch.zeros(n, channels, height - 2, width - 2, dtype=torch.float64, device=images.device)
    for dy in range(3):
        for dx in range(3):
            weight = centre if (dy, dx) == (1, 1) else edge
            smooth = smooth.add_(x[:, :, dy:dy + height - 2, dx:dx + width - 2], alpha=weight).float().double()
    degenerate = images.float()
    degenerate[:, :, 1:-1, 1:-1] = smooth.float().clamp_(0, 255).trunc_()
    return to_uint8_trunc(images.float().sub_(degenerate).mul_(factor).add_(degenerate))


def tf_cutout(images: torch.Tensor, half_size: int, centre_y: torch.Tensor, centre_x: torch.Tensor) -> torch.Tensor:
    height, width = images.shape[-2:]
    ys = torch.arange(height, device=images.device).view(1, height, 1)
    xs = torch.arange(width, device=images.device).view(1, 1, width)
    cy, cx = centre_y.long().view(-1, 1, 1), centre_x.long().view(-1, 1, 1)
    inside = (ys >= cy - half_size) & (ys < cy + half_size) & (xs >= cx - half_size) & (xs < cx + half_size)
    return images.masked_fill(inside.unsqueeze(1), REPLACE)


def _round_half_away(coords: torch.Tensor) -> torch.Tensor:
    rounded, whole = torch.round(coords), torch.trunc(coords)
    tie = (coords - whole).abs_() == 0.5
    return torch.where(tie, whole + torch.sign(coords), rounded)


def tf_projective(images: torch.Tensor, matrix: tuple) -> torch.Tensor:
    """``randaugment_tf.projective_nearest`` with one matrix for the whole (sub)batch."""
    n, channels, height, width = images.shape
    device = images.device
    mixes_x, mixes_y = float(matrix[1]) != 0, float(matrix[3]) != 0  # decided on the host: no device sync
    a, b, c, d, e, f = (torch.as_tensor(v, dtype=torch.float32).to(device) for v in matrix)
    xs = torch.arange(width, dtype=torch.float32, device=device).view(1, width)
    ys = torch.arange(height, dtype=torch.float32, device=device).view(height, 1)
    source_x = _round_half_away(xs * a + ys * b + c if mixes_x else xs * a + c)
    source_y = _round_half_away(xs * d + ys * e + f if mixes_y else ys * e + f)
    inside = ((source_x >= 0) & (source_x < width) & (source_y >= 0) & (source_y < height)).expand(height, width)
    flat = (source_y.clamp(0, height - 1).long() * width + source_x.clamp(0, width - 1).long()).expand(height, width)
    out = images.reshape(n, channels, -1).index_select(2, flat.reshape(-1)).view(n, channels, height, width)
    return out.masked_fill(~inside, REPLACE)


# ------------------------------------------------------------------ torchvision TrivialAugmentWide ops
def tv_blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend``: ratio * image + (1 - ratio) * other, clamped, truncated to uint8."""
    r = _col(ratio.float())
    return (r * images.float() + (1.0 - r) * other).clamp_(0, 255).to(torch.uint8)


def tv_grey(images: torch.Tensor) -> torch.Tensor:
    """torchvision's ``rgb_to_grayscale`` of uint8 images: 0.2989 r + 0.587 g + 0.114 b, truncated, float."""
    r, g, b = images.float().unbind(1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).trunc_().unsqueeze(1)


def tv_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return tv_blend(images, torch.zeros((), device=images.device), factor)


def tv_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return tv_blend(images, tv_grey(images), factor)


def tv_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = tv_grey(images).mean(dim=(1, 2, 3), keepdim=True)
    return tv_blend(images, mean, factor)


def tv_sharpness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_sharpness: interior x + (1 - f) (smooth - x), smooth rounded; the border kept."""
    n, channels, height, width = images.shape
    if height <= 2 or width <= 2:
        return images
    a, b = 1.0 / 13.0, 5.0 / 13.0
    kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], device=images.device).expand(channels, 1, 3, 3)
    out = images.float()
    smooth = nnf.conv2d(out, kernel, groups=channels).round_()
    view = out[..., 1:-1, 1:-1]
    view.add_(smooth.sub_(view).mul_(_col(1.0 - factor.float())))
    return out.clamp_(0, 255).to(torch.uint8)


def tv_inverse_affine(angle: torch.Tensor, translate: torch.Tensor, shear: torch.Tensor,
                      centre: tuple[float, float]) -> torch.Tensor:
    """torchvision's ``_get_inverse_affine_matrix`` (scale 1) for (N,) angles, (N, 2) translations and (N, 2)
    shears (degrees) about `centre` (relative to the image centre): (N, 6) float64."""
    rot = torch.deg2rad(angle.double())
    sx, sy = torch.deg2rad(shear.double()).unbind(1)
    cx, cy = centre
    tx, ty = translate.double().unbind(1)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = m0 * (-cx - tx) + m1 * (-cy - ty) + cx
    m5 = m3 * (-cx - tx) + m4 * (-cy - ty) + cy
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=1)


def tv_affine(images: torch.Tensor, matrices: torch.Tensor, mode: str) -> torch.Tensor:
    """torchvision's tensor affine (``_affine_grid`` + ``_apply_grid_transform``, fill 0) per image."""
    n, channels, height, width = images.shape
    device = images.device
    theta = matrices.float().view(n, 2, 3)
    xs = torch.linspace(-width * 0.5 + 0.5, width * 0.5 - 0.5, steps=width, device=device)
    ys = torch.linspace(-height * 0.5 + 0.5, height * 0.5 - 0.5, steps=height, device=device).unsqueeze(-1)
    base = torch.empty(1, height, width, 3, device=device)
    base[..., 0].copy_(xs)
    base[..., 1].copy_(ys)
    base[..., 2].fill_(1)
    rescaled = theta.transpose(1, 2) / torch.tensor([0.5 * width, 0.5 * height], device=device)
    grid = base.view(1, height * width, 3).expand(n, -1, -1).bmm(rescaled).view(n, height, width, 2)
    out = nnf.grid_sample(images.float(), grid, mode=mode, padding_mode="zeros", align_corners=False)
    if mode != "nearest":
        out = out.round_()
    return out.clamp_(0, 255).to(torch.uint8)


def tv_posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    bits = bits.long().clamp(0, 8)
    mask = ((((1 << bits) - 1) << (8 - bits)) & 0xFF).to(torch.uint8)
    return images & _col(mask)


def tv_solarize(images: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    return torch.where(images.float() >= _col(threshold.float()), 255 - images, images)


def tv_autocontrast(images: torch.Tensor) -> torch.Tensor:
    x = images.float()
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    equal = hi == lo
    inv_scale = torch.where(equal, torch.ones_like(hi), (hi - lo) * (1.0 / 255.0))
    lo = torch.where(equal, torch.zeros_like(lo), lo)
    return (x - lo).div_(inv_scale).clamp_(0, 255).to(torch.uint8)


def tv_equalize(images: torch.Tensor) -> torch.Tensor:
    """torchvision's own equalize (v2 functional), which accepts batches as they are."""
    from torchvision.transforms.v2 import functional as F

    return F.equalize(images)

