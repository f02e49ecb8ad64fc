"""The residual blocks. Attribute names follow torchvision/timm so their checkpoints load as is: the v1 blocks
(conv -> norm -> act, act after the add) as timm's resnet.py, the pre-activation ones (norm -> act -> conv, no
act after the add) as timm's resnetv2.py."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ResNetConfig
from .layers import DropPath, SqueezeExcite, make_activation, make_norm, make_shortcut
from .plan import BlockPlan


def _conv3x3(in_channels: int, out_channels: int, stride: int, dilation: int, groups: int = 1,
             bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation,
                     groups=groups, bias=bias)


def _bottleneck_width(plan: BlockPlan, config: ResNetConfig) -> int:
    return math.floor(plan.planes * config.base_width / 64) * config.cardinality


class _ResidualBlock(nn.Module):
    """Shared tail of every block: optional SE, drop path, shortcut."""

    def _init_tail(self, out_channels: int, plan: BlockPlan, config: ResNetConfig) -> None:
        self.se = (SqueezeExcite(out_channels, config.se_ratio, config.se_divisor, config.act)
                   if config.se_ratio > 0 else None)
        self.downsample = make_shortcut(out_channels, plan, config)
        self.drop_path = DropPath(plan.drop_path) if plan.drop_path > 0 else None

    def _branch_tail(self, out: torch.Tensor) -> torch.Tensor:
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return out

    def zero_init_last(self) -> None:
        """Start the block as identity: zero what closes the residual branch."""
        raise NotImplementedError


class _V1Block(_ResidualBlock):
    """conv -> norm -> act on the branch; act(branch + shortcut)."""

    @property
    def last_norm(self) -> nn.Module:
        """The norm that closes the residual branch (zero-initialised when `zero_init_last`)."""
        raise NotImplementedError

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.last_norm.weight)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act_out(self._branch_tail(self.residual(x)) + shortcut)


class BasicBlock(_V1Block):
    """3x3 -> BN -> act -> 3x3 -> BN (ResNet-18/34)."""

    def __init__(self, plan: BlockPlan, config: ResNetConfig) -> None:
        super().__init__()
        planes = plan.planes
        self.conv1 = _conv3x3(plan.in_channels, planes, plan.stride, plan.first_dilation)
        self.bn1 = make_norm(planes, config)
        self.act1 = make_activation(config.act)
        self.conv2 = _conv3x3(planes, planes, 1, plan.dilation)
        self.bn2 = make_norm(planes, config)
        self.act_out = make_activation(config.act)
        self._init_tail(planes, plan, config)

    @property
    def last_norm(self) -> nn.Module:
        return self.bn2

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(x))


class Bottleneck(_V1Block):
    """1x1 reduce -> 3x3 (grouped for ResNeXt) -> 1x1 expand, BN after each (ResNet-26 and deeper)."""

    def __init__(self, plan: BlockPlan, config: ResNetConfig) -> None:
        super().__init__()
        width, out_channels = _bottleneck_width(plan, config), plan.planes * 4
        stride_1x1, stride_3x3 = (plan.stride, 1) if config.stride_in_1x1 else (1, plan.stride)
        self.conv1 = nn.Conv2d(plan.in_channels, width, 1, stride=stride_1x1, bias=False)
        self.bn1 = make_norm(width, config)
        self.act1 = make_activation(config.act)
        self.conv2 = _conv3x3(width, width, stride_3x3, plan.first_dilation, groups=config.cardinality)
        self.bn2 = make_norm(width, config)
        self.act2 = make_activation(config.act)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = make_norm(out_channels, config)
        self.act_out = make_activation(config.act)
        self._init_tail(out_channels, plan, config)

    @property
    def last_norm(self) -> nn.Module:
        return self.bn3

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))


class _PreActBlock(_ResidualBlock):
    """norm1 -> act on the block input ("pre-activation"), the branch convs, and a bare add: the residual
    stream is never normalised or activated, only each branch's view of it. A projection shortcut reads the
    pre-activated input (timm, Keras); a tensor-free subsampling shortcut reads the raw input (Keras)."""

    def _init_preact(self, plan: BlockPlan, config: ResNetConfig) -> None:
        self.norm1 = make_norm(plan.in_channels, config)
        self.act1 = make_activation(config.act)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_preact = self.act1(self.norm1(x))
        if self.downsample is None:
            shortcut = x
        elif isinstance(self.downsample, nn.MaxPool2d):
            shortcut = self.downsample(x)
        else:
            shortcut = self.downsample(x_preact)
        return self._branch_tail(self.residual(x_preact)) + shortcut


class PreActBasicBlock(_PreActBlock):
    """norm1 -> act -> 3x3 -> norm2 -> act -> 3x3 (timm's PreActBasic)."""

    def __init__(self, plan: BlockPlan, config: ResNetConfig) -> None:
        super().__init__()
        planes = plan.planes
        self._init_preact(plan, config)
        self.conv1 = _conv3x3(plan.in_channels, planes, plan.stride, plan.first_dilation)
        self.norm2 = make_norm(planes, config)
        self.act2 = make_activation(config.act)
        self.conv2 = _conv3x3(planes, planes, 1, plan.dilation, bias=config.residual_bias)
        self._init_tail(planes, plan, config)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.weight)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act2(self.norm2(self.conv1(x))))


class PreActBottleneck(_PreActBlock):
    """norm1 -> act -> 1x1 -> norm2 -> act -> 3x3 -> norm3 -> act -> 1x1 (timm's PreActBottleneck, Keras' block2)."""

    def __init__(self, plan: BlockPlan, config: ResNetConfig) -> None:
        super().__init__()
        width, out_channels = _bottleneck_width(plan, config), plan.planes * 4
        stride_1x1, stride_3x3 = (plan.stride, 1) if config.stride_in_1x1 else (1, plan.stride)
        self._init_preact(plan, config)
        self.conv1 = nn.Conv2d(plan.in_channels, width, 1, stride=stride_1x1, bias=False)
        self.norm2 = make_norm(width, config)
        self.act2 = make_activation(config.act)
        self.conv2 = _conv3x3(width, width, stride_3x3, plan.first_dilation, groups=config.cardinality)
        self.norm3 = make_norm(width, config)
        self.act3 = make_activation(config.act)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=config.residual_bias)
        self._init_tail(out_channels, plan, config)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.norm2(self.conv1(x)))
        x = self.act3(self.norm3(self.conv2(x)))
        return self.conv3(x)


BLOCKS: dict[tuple[bool, str], type[_ResidualBlock]] = {
    (False, "basic"): BasicBlock,
    (False, "bottleneck"): Bottleneck,
    (True, "basic"): PreActBasicBlock,
    (True, "bottleneck"): PreActBottleneck,
}
RESIDUAL_BLOCKS = tuple(BLOCKS.values())


def make_block(plan: BlockPlan, config: ResNetConfig) -> _ResidualBlock:
    return BLOCKS[(config.preact, config.block)](plan, config)
