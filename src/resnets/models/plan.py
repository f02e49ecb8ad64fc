"""Where each block downsamples or dilates: the geometry of the network, decided once from the config.

A dilated stage (output_stride 8 or 16) keeps its input resolution and widens its 3x3 convs instead: a block
whose stride is given up multiplies the running dilation by that stride, and its own first 3x3 conv still uses
the dilation before it (timm's `first_dilation`, torchvision's `previous_dilation`), so every later conv sees the
same receptive field it had at the lower resolution. The rule is applied per block, which is timm's and
torchvision's per-stage rule when the stride sits on a stage's first block, and extends it to Keras' layout
(stride on the last block of a stage).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ResNetConfig

STEM_REDUCTION = 4  # the stride-2 stem conv and the stride-2 pool


@dataclass(frozen=True)
class BlockPlan:
    in_channels: int
    planes: int
    stride: int = 1
    """The stride the block applies: 1 where dilation replaced it."""
    downsamples: bool = False
    """The block's nominal stride is 2 (also where dilation replaced it: its shortcut pools differently)."""
    dilation: int = 1
    """Dilation of the block's 3x3 convs after the first."""
    first_dilation: int = 1
    """Dilation of the block's first 3x3 conv: the dilation in force before this block."""
    project: bool = False
    """A projection shortcut even where shapes match (config.first_block_projection on a stage's first block)."""
    drop_path: float = 0.0


@dataclass(frozen=True)
class StagePlan:
    blocks: tuple[BlockPlan, ...]
    out_channels: int
    reduction: int
    """Input size / output size of this stage."""


def _nominal_strides(config: ResNetConfig) -> list[list[int]]:
    """Stride 2 on the first block of stages 2.. ("first"), or on the last block of every stage but the last
    ("last", Keras ResNetV2: the same total stride, reached one stage earlier)."""
    strides = []
    for index, count in enumerate(config.layers):
        stage = [1] * count
        if config.stride_block == "first" and index > 0:
            stage[0] = 2
        elif config.stride_block == "last" and index < len(config.layers) - 1:
            stage[-1] = 2
        strides.append(stage)
    return strides


def plan_stages(config: ResNetConfig, rates: list[list[float]]) -> list[StagePlan]:
    """Every block's channels, stride and dilation, stage by stage, for `config.output_stride` (None: no
    dilation)."""
    channels = stem_channels(config)
    reduction, dilation = STEM_REDUCTION, 1
    stages = []
    for index, (stage_strides, stage_rates) in enumerate(zip(_nominal_strides(config), rates, strict=True)):
        planes = config.scaled(config.stage_planes[index])
        blocks = []
        for block_index, (nominal, rate) in enumerate(zip(stage_strides, stage_rates, strict=True)):
            previous, stride = dilation, nominal
            if nominal > 1 and config.output_stride is not None and reduction >= config.output_stride:
                dilation, stride = dilation * nominal, 1
            reduction *= stride
            blocks.append(BlockPlan(
                in_channels=channels, planes=planes, stride=stride, downsamples=nominal > 1, dilation=dilation,
                first_dilation=previous, project=config.first_block_projection and block_index == 0,
                drop_path=rate))
            channels = planes * config.expansion
        stages.append(StagePlan(tuple(blocks), channels, reduction))
    return stages


def stem_channels(config: ResNetConfig) -> int:
    """Channels the stem produces: 64 for the 7x7 stem, 2 x stem_width for the deep ones (before scaling)."""
    return config.scaled(64) if config.stem_type == "conv7" else config.scaled(2 * config.stem_width)
