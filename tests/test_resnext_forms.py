"""The ResNeXt paper's figure 3 (Xie et al., arXiv 1611.05431): three equivalent forms of one block.

(a) C aggregated paths, each 1x1 -> 3x3 -> 1x1 of width d, whose outputs are summed;
(b) early concatenation: the C paths' 3x3 outputs concatenated, then one 1x1;
(c) grouped convolution: 1x1 -> 3x3 with C groups -> 1x1 (our Bottleneck).

Forms (a) and (b) are built here from slices of our block's weights; all three must agree. BN in eval mode is a
per-channel affine map, so BN1/BN2 split per path and BN3 follows the sum (a) or the 1x1 (b).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnets import get_config
from resnets.models.blocks import Bottleneck
from resnets.models.plan import BlockPlan

# (preset, in_channels, planes, stride): a stage-1 block with a projection shortcut and a strided stage-2 block.
CASES = [
    ("resnext50_32x4d", 64, 64, 1),
    ("resnext50_32x4d", 256, 128, 2),
    ("resnext101_64x4d", 256, 64, 1),
    ("resnext101_32x8d", 512, 128, 1),
    ("resnext50d_32x4d", 256, 128, 2),  # D shortcut (avg-pool + 1x1)
]


def _block(preset: str, in_channels: int, planes: int, stride: int) -> Bottleneck:
    torch.manual_seed(0)
    plan = BlockPlan(in_channels, planes, stride, downsamples=stride > 1)
    block = Bottleneck(plan, get_config(preset))
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, nn.BatchNorm2d):  # not the zero-init gamma: every path must contribute
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return block.eval()


def _bn(bn: nn.BatchNorm2d, channels: slice, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean[channels], bn.running_var[channels], bn.weight[channels],
                        bn.bias[channels], training=False, eps=bn.eps)


def _paths(block: Bottleneck, x: torch.Tensor, shift: int = 0) -> list[tuple[slice, torch.Tensor]]:
    """Every path's 1x1 -> BN -> ReLU -> 3x3 -> BN -> ReLU, from slices of the grouped weights.

    `shift` pairs path i's first conv with path i+shift's 3x3 (a deliberately wrong wiring)."""
    cardinality = block.conv2.groups
    d = block.conv2.out_channels // cardinality
    out = []
    for i in range(cardinality):
        own, other = slice(i * d, (i + 1) * d), slice(((i + shift) % cardinality) * d, ((i + shift) % cardinality + 1) * d)
        h = F.relu(_bn(block.bn1, own, F.conv2d(x, block.conv1.weight[own], stride=block.conv1.stride)))
        h = F.conv2d(h, block.conv2.weight[other], stride=block.conv2.stride, padding=1)
        out.append((own, F.relu(_bn(block.bn2, own, h))))
    return out


def _finish(block: Bottleneck, x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    shortcut = x if block.downsample is None else block.downsample(x)
    return F.relu(block.bn3(branch) + shortcut)


def form_a(block: Bottleneck, x: torch.Tensor, shift: int = 0) -> torch.Tensor:
    """Aggregated transformations: sum over paths of each path's own 1x1 expansion."""
    total = sum(F.conv2d(h, block.conv3.weight[:, channels]) for channels, h in _paths(block, x, shift))
    return _finish(block, x, total)


def form_b(block: Bottleneck, x: torch.Tensor) -> torch.Tensor:
    """Early concatenation: concatenate the paths, then one 1x1 conv."""
    concatenated = torch.cat([h for _, h in _paths(block, x)], dim=1)
    return _finish(block, x, F.conv2d(concatenated, block.conv3.weight))


@pytest.mark.parametrize(("preset", "in_channels", "planes", "stride"), CASES)
def test_three_forms_are_identical(preset, in_channels, planes, stride):
    block = _block(preset, in_channels, planes, stride)
    config = get_config(preset)
    assert block.conv2.groups == config.cardinality
    assert block.conv2.out_channels == config.cardinality * planes * config.base_width // 64
    x = torch.randn(2, in_channels, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        c = block(x)
        a, b = form_a(block, x), form_b(block, x)
    assert c.shape == (2, planes * 4, 16 // stride, 16 // stride)
    assert c.abs().max() > 0.1  # a meaningful signal, not a dead block
    torch.testing.assert_close(a, c, rtol=0, atol=1e-5)
    torch.testing.assert_close(b, c, rtol=0, atol=1e-5)


def test_forms_detect_miswired_paths():
    """The comparison can fail: pairing each path with its neighbour's 3x3 changes the output."""
    block = _block("resnext50_32x4d", 64, 64, 1)
    x = torch.randn(2, 64, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (form_a(block, x, shift=1) - block(x)).abs().max() > 1e-2


def test_grouped_conv_has_the_paths_parameters():
    """C paths of d-wide 3x3 convs hold exactly the grouped conv's parameters (C * d * d * 9)."""
    block = _block("resnext50_32x4d", 256, 64, 1)
    cardinality, width = block.conv2.groups, block.conv2.out_channels
    d = width // cardinality
    assert block.conv2.weight.numel() == cardinality * d * d * 9
    dense = nn.Conv2d(width, width, 3, bias=False)
    assert dense.weight.numel() == cardinality * block.conv2.weight.numel()  # grouping saves a factor C
