"""Building pieces shared by the blocks and the stem: activation, norm, squeeze-excite, drop path, shortcut."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from ..errors import ResnetsError
from .config import ResNetConfig
from .plan import BlockPlan


def make_activation(name: str) -> nn.Module:
    return nn.SiLU(inplace=True) if name == "silu" else nn.ReLU(inplace=True)


def make_norm(channels: int, config: ResNetConfig) -> nn.Module:
    """The config's normalisation over `channels`. All three keep BatchNorm's tensor names (weight, bias and,
    for the BNs, running_mean/var), so one checkpoint loads into any of them (GroupNorm: weight and bias)."""
    if config.norm_layer == "frozen_batchnorm":
        return FrozenBatchNorm2d(channels, eps=config.bn_eps)
    if config.norm_layer == "groupnorm":
        if channels % config.norm_groups:
            raise ResnetsError(f"groupnorm: {channels} channels do not split into {config.norm_groups} groups; "
                               "choose norm_groups that divides every width of the network")
        return nn.GroupNorm(config.norm_groups, channels, eps=config.bn_eps)
    return nn.BatchNorm2d(channels, eps=config.bn_eps, momentum=config.bn_momentum)


NORM_TYPES = (nn.BatchNorm2d, FrozenBatchNorm2d, nn.GroupNorm)


def round_to_divisor(value: float, divisor: int) -> int:
    """Nearest multiple of `divisor`, at least `divisor` (timm's make_divisible with round_limit=0)."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al.): pool -> 1x1 reduce -> act -> 1x1 expand -> sigmoid -> scale.

    Attribute names follow timm's SEModule so timm checkpoints load without renaming.
    """

    def __init__(self, channels: int, ratio: float, divisor: int, act: str) -> None:
        super().__init__()
        reduced = round_to_divisor(channels * ratio, divisor)
        self.fc1 = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = make_activation(act)
        self.fc2 = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.fc2(self.act(self.fc1(scale)))
        return x * scale.sigmoid()


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample with probability `rate` while training."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"rate={self.rate:.3f}"


class SamePadAvgPool2d(nn.Module):
    """2x2 average at stride 1 over the input zero-padded by one row and column at the bottom and right: what
    the D shortcut's pool becomes where dilation replaced its stride (timm's AvgPool2dSame(2, 1), whose
    "SAME" padding is explicit zeros, so border windows divide by 4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, 1)


def _shortcut_pool(plan: BlockPlan) -> nn.Module:
    """The D shortcut's pool: 2x2/2 with partial windows at odd sizes, its dilated form, or nothing."""
    if not plan.downsamples:
        return nn.Identity()
    if plan.stride == 1:
        return SamePadAvgPool2d()
    return nn.AvgPool2d(2, plan.stride, ceil_mode=True, count_include_pad=False)


class PreActShortcut(nn.Module):
    """A pre-activation projection shortcut, named as timm's resnetv2 DownsampleConv / DownsampleAvg:
    `pool` (D form only) then `conv`; no norm, because the next block's norm1 normalises the sum."""

    def __init__(self, in_channels: int, out_channels: int, plan: BlockPlan, config: ResNetConfig) -> None:
        super().__init__()
        avg = config.shortcut == "avg"
        self.pool = _shortcut_pool(plan) if avg else nn.Identity()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=1 if avg else plan.stride,
                              bias=config.residual_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


def make_shortcut(out_channels: int, plan: BlockPlan, config: ResNetConfig) -> nn.Module | None:
    """The shortcut of a block: None for identity, a tensor-free 1x1 max-pool that subsamples where only the
    resolution changes (Keras ResNetV2's strided last block), else a projection.

    The v1 projection's index layout matches timm/torchvision state dicts: conv at .0 and BN at .1 ("conv"), or
    pool at .0, conv at .1, BN at .2 ("avg", the D tweak: average-pool instead of striding the 1x1 conv, so no
    input pixel is skipped). Pre-activation projections are `PreActShortcut`.
    """
    in_channels = plan.in_channels
    if in_channels == out_channels and not plan.project:
        return None if plan.stride == 1 else nn.MaxPool2d(1, plan.stride)
    if config.preact:
        return PreActShortcut(in_channels, out_channels, plan, config)
    if config.shortcut == "avg":
        return nn.Sequential(
            _shortcut_pool(plan), nn.Conv2d(in_channels, out_channels, 1, bias=False), make_norm(out_channels, config)
        )
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=plan.stride, bias=False), make_norm(out_channels, config)
    )
