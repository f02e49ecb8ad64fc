"""Fold every batch norm into the convolution before it, for inference.

In eval mode a BN is a per-channel affine map, y = (x - mean) / sqrt(var + eps) * gamma + beta, so it
can be absorbed into the preceding conv's weight and bias: one pass over memory less per layer and
fewer kernels to launch.

Why by hand instead of torch.ao / torch.fx fusion: fx must trace the model symbolically, and our
forward checks input shapes with Python `if`s (ResNet._check_input), which a symbolic trace cannot
follow; an fx GraphModule would also lose the ResNet class (forward_features, forward_stages,
feature_info, config). Our module tree has only four places where a conv is followed by its BN, all
known by construction, so a small walk over them keeps the model a ResNet with the same names.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from ..models.resnet import ResNet


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv (with bias) computing bn(conv(x)) with the BN's running statistics.

    The arithmetic is done in float64 so the folded weights round once, not twice.
    """
    if conv.out_channels != bn.num_features:
        raise ValueError(f"cannot fold BN({bn.num_features}) into a conv with {conv.out_channels} outputs")
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
                      padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype)
    weight = conv.weight.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64,
                                                                        device=weight.device)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(bias)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(bias)
    scale = gamma / torch.sqrt(bn.running_var.double() + bn.eps)
    fused.weight.copy_(weight * scale.reshape(-1, 1, 1, 1))
    fused.bias.copy_((bias - bn.running_mean.double()) * scale + beta)
    return fused


def _fuse_sequential(seq: nn.Sequential) -> int:
    """Fold each BN that directly follows a conv inside a Sequential (execution order = index order)."""
    count = 0
    for index in range(1, len(seq)):
        conv, bn = seq[index - 1], seq[index]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            seq[index - 1] = fuse_conv_bn(conv, bn)
            seq[index] = nn.Identity()
            count += 1
    return count


def _fuse_pair(owner: nn.Module, conv_name: str, bn_name: str) -> int:
    conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
    if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, nn.Conv2d):
        setattr(owner, conv_name, fuse_conv_bn(conv, bn))
        setattr(owner, bn_name, nn.Identity())
        return 1
    if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, nn.Sequential) and isinstance(conv[-1], nn.Conv2d):
        conv[-1] = fuse_conv_bn(conv[-1], bn)  # deep stem: model.bn1 follows the stem's last conv
        setattr(owner, bn_name, nn.Identity())
        return 1
    return 0


def fuse_model(model: ResNet, *, inplace: bool = False) -> ResNet:
    """A copy of `model` in eval mode with every BatchNorm folded into its conv (and replaced by Identity).

    Covered: the 7x7 stem conv + bn1, the deep stem's three convs, ResNet-RS's conv "maxpool",
    conv1/bn1 .. conv3/bn3 in every block and both projection-shortcut layouts; in pre-activation networks
    conv1/norm2 and conv2/norm3 (each block's norm1 and the final norm see a residual sum, not one conv's
    output, and stay). The result is still a ResNet (same forward, same attribute names) but is for
    inference only: training it would train convs without normalisation.
    """
    fused = model if inplace else copy.deepcopy(model)
    fused.eval()
    if hasattr(fused, "conv1"):  # v1 stem; a pre-activation stem is a Sequential (folded below)
        _fuse_pair(fused, "conv1", "bn1")
    for module in list(fused.modules()):  # a list: the loop replaces children
        if isinstance(module, nn.Sequential):
            _fuse_sequential(module)
        if isinstance(module, BasicBlock | Bottleneck):
            for index in (1, 2, 3):
                if hasattr(module, f"conv{index}"):
                    _fuse_pair(module, f"conv{index}", f"bn{index}")
        if isinstance(module, PreActBasicBlock | PreActBottleneck):
            # conv_k feeds only norm_(k+1); norm1 (on the block input) and the final norm (on the residual sum)
            # follow no conv of their own and stay.
            for index in (1, 2):
                if hasattr(module, f"norm{index + 1}"):
                    _fuse_pair(module, f"conv{index}", f"norm{index + 1}")
    return fused


def count_batchnorms(model: nn.Module) -> int:
    """BatchNorm layers left in `model` (0 after a complete fuse)."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
