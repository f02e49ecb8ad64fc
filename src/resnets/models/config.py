"""`ResNetConfig`: every knob of the ResNet family in one dataclass; a preset is a named instance."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ResnetsError, unknown

BlockType = Literal["basic", "bottleneck"]
StemType = Literal["conv7", "deep", "deep_tiered"]
StemPool = Literal["max", "conv", "max_zero_pad"]
Shortcut = Literal["conv", "avg"]
StrideBlock = Literal["first", "last"]
DropPathSchedule = Literal["linear", "stage"]
Activation = Literal["relu", "silu"]
NormLayer = Literal["batchnorm", "frozen_batchnorm", "groupnorm"]
MIN_OUTPUT_STRIDE = 8  # timm's smallest: dilating stage 2 as well would leave only the stem strided

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ResNetConfig:
    """One member of the ResNet family: architecture plus the preprocessing its weights expect.

    The defaults describe torchvision's ResNet-50 ("B": stride on the 3x3 conv, 7x7 stem).
    """

    # --- body ---------------------------------------------------------------------------------
    block: BlockType = "bottleneck"
    layers: tuple[int, ...] = (3, 4, 6, 3)
    """Blocks per stage; the first stage has stride 1, every later stage stride 2."""
    stage_planes: tuple[int, ...] = (64, 128, 256, 512)
    """Planes per stage; a bottleneck stage outputs 4x planes, a basic stage 1x."""
    stride_in_1x1: bool = False
    """True: the original (Caffe, "A") bottleneck with the stride on the first 1x1 conv."""
    stride_block: StrideBlock = "first"
    """Which block of a stage downsamples. first: stages 2.. stride at their first block (He et al., timm);
    last: Keras ResNetV2 (stack2) - every stage but the last ends with its stride-2 block."""
    preact: bool = False
    """Pre-activation blocks (He et al. 2016, "Identity Mappings"): norm -> act -> conv on the branch, an
    un-normalised residual stream, and a final norm + act before pooling. Module names follow timm's
    `resnetv2` (stem, stages.N.blocks.M, norm, head.fc), so its state dicts load as they are."""
    residual_bias: bool = False
    """Pre-activation only: biases on the convs that write to the residual stream (stem conv, projection
    shortcut, each block's last conv), where no norm follows to absorb them (Keras ResNetV2)."""
    cardinality: int = 1
    """Groups of the 3x3 conv (ResNeXt)."""
    base_width: int = 64
    """Width per group: bottleneck inner width = floor(planes * base_width / 64) * cardinality."""
    # --- stem ---------------------------------------------------------------------------------
    stem_type: StemType = "conv7"
    """conv7: one 7x7/2 conv; deep: three 3x3 convs (C/D); deep_tiered: 3x3 convs of 3w/4, w, 2w."""
    stem_width: int = 64
    """Width of the deep stem's first convs (its output is 2x this); ignored by conv7 (64)."""
    stem_pool: StemPool = "max"
    """max: 3x3/2 max-pool; conv: a 3x3/2 conv + BN + act instead (ResNet-RS); max_zero_pad: zero padding then
    the max-pool (Keras' ZeroPadding2D + MaxPooling2D), which differs from max where the stem output can be
    negative (pre-activation stems have no act before the pool)."""
    # --- shortcut, attention, regularisation ---------------------------------------------------
    shortcut: Shortcut = "conv"
    """conv: strided 1x1 conv + BN; avg: 2x2 avg-pool then 1x1 conv + BN (the "D" tweak)."""
    first_block_projection: bool = False
    """Give every stage's first block a projection shortcut even where input and output shapes match
    (PaddleClas' ResNet18/34 family: a 1x1 conv + BN shortcut in the very first block)."""
    se_ratio: float = 0.0
    """Squeeze-and-excitation on the block output width; 0 disables (1/16 SE-ResNet, 0.25 RS)."""
    se_divisor: int = 8
    """SE reduced width is rounded to a multiple of this (timm make_divisible, no 0.9 guard)."""
    act: Activation = "relu"
    drop_rate: float = 0.0
    """Dropout before the classifier."""
    drop_path_rate: float = 0.0
    """Stochastic depth: the rate of the deepest block (linear) or last stage (stage)."""
    drop_path_schedule: DropPathSchedule = "linear"
    """linear: r * i / (N - 1) over all N blocks (timm); stage: r * (s + 2) / 5 per stage (ResNet-RS)."""
    zero_init_last: bool = True
    """Zero the last BN gamma of each residual branch, so every block starts as identity."""
    width_multiplier: float = 1.0
    """Scales the stem and every stage width (for scaling studies); widths are rounded to 8."""
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    norm_layer: NormLayer = "batchnorm"
    """batchnorm; frozen_batchnorm: torchvision's FrozenBatchNorm2d (fixed statistics and affine, no trainable
    parameters, the same in train and eval mode: detection fine-tuning); groupnorm: GroupNorm(norm_groups)."""
    norm_groups: int = 32
    """Groups of GroupNorm (norm_layer="groupnorm"); every normalised width must be a multiple of it."""
    num_classes: int = 1000
    in_chans: int = 3
    # --- backbone use -----------------------------------------------------------------------------
    output_stride: int | None = None
    """None: the network's own total stride (32). 8 or 16: the last stage(s) trade their stride for dilation
    (timm's / torchvision's rule), so the feature maps stay at 1/8 or 1/16 of the input (segmentation)."""
    features_only: bool = False
    """Build the backbone alone (no pooling or classifier): forward returns the maps at `out_indices`."""
    out_indices: tuple[int, ...] | None = None
    """Feature taps for features_only, timm's numbering: 0 the stem activation (stride 2), 1..4 the stages;
    None: all of them (timm's default; detection necks usually take (1, 2, 3, 4))."""
    grad_checkpointing: bool = False
    """Recompute each block's activations in the backward pass instead of storing them (torch.utils.checkpoint):
    less memory for more compute; the function and its gradients are unchanged."""
    # --- preprocessing the preset's weights expect -----------------------------------------------
    input_size: int = 224
    test_input_size: int | None = None
    """Resolution to evaluate at when it differs from the training size (None: same as input_size)."""
    crop_pct: float = 0.875
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # --- provenance ---------------------------------------------------------------------------
    name: str = ""
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # JSON gives lists; the config is hashable and immutable with tuples.
        for key in ("layers", "stage_planes", "mean", "std", "out_indices"):
            value = getattr(self, key)
            if isinstance(value, list):
                object.__setattr__(self, key, tuple(value))
        self.validate()

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def eval_size(self) -> int:
        return self.test_input_size or self.input_size

    @property
    def num_features(self) -> int:
        """Channels entering the classifier."""
        return self.scaled(self.stage_planes[-1]) * self.expansion

    @property
    def feature_indices(self) -> tuple[int, ...]:
        """The feature taps a features_only network returns (out_indices, or all: stem and every stage)."""
        return tuple(range(len(self.layers) + 1)) if self.out_indices is None else self.out_indices

    @property
    def strided_blocks(self) -> int:
        """Blocks that downsample by 2 after the stem's 4: one per boundary between stages."""
        return len(self.layers) - 1

    @property
    def output_strides(self) -> tuple[int, ...]:
        """The output strides this network can be built with: 4 x 2^k from 8 (timm's range) to its own."""
        return tuple(4 * 2 ** k for k in range(1, self.strided_blocks + 1) if 4 * 2 ** k >= MIN_OUTPUT_STRIDE)

    def scaled(self, channels: int) -> int:
        """A width after the width multiplier (rounded to a multiple of 8, never below 8)."""
        if self.width_multiplier == 1.0:
            return channels
        return max(8, int(channels * self.width_multiplier + 4) // 8 * 8)

    def validate(self) -> None:
        """Raise ResnetsError for values no network can be built from."""
        checks = [
            (self.block in ("basic", "bottleneck"), f"block must be 'basic' or 'bottleneck', not {self.block!r}"),
            (self.stem_type in ("conv7", "deep", "deep_tiered"), f"unknown stem_type {self.stem_type!r}"),
            (self.stem_pool in ("max", "conv", "max_zero_pad"),
             f"stem_pool must be 'max', 'conv' or 'max_zero_pad', not {self.stem_pool!r}"),
            (self.shortcut in ("conv", "avg"), f"shortcut must be 'conv' or 'avg', not {self.shortcut!r}"),
            (self.stride_block in ("first", "last"), f"stride_block must be 'first' or 'last', not {self.stride_block!r}"),
            (not (self.preact and self.stem_pool == "conv"),
             "stem_pool='conv' (ResNet-RS) is not available with pre-activation blocks"),
            (self.preact or not self.residual_bias, "residual_bias needs preact=True (elsewhere a norm follows every conv)"),
            (self.norm_layer in ("batchnorm", "frozen_batchnorm", "groupnorm"),
             f"norm_layer must be 'batchnorm', 'frozen_batchnorm' or 'groupnorm', not {self.norm_layer!r}"),
            (self.norm_groups >= 1, f"norm_groups must be >= 1, got {self.norm_groups}"),
            (self.act in ("relu", "silu"), f"act must be 'relu' or 'silu', not {self.act!r}"),
            (self.drop_path_schedule in ("linear", "stage"),
             f"drop_path_schedule must be 'linear' or 'stage', not {self.drop_path_schedule!r}"),
            (len(self.layers) >= 1 and all(isinstance(n, int) and n >= 1 for n in self.layers),
             f"layers must be positive block counts, got {self.layers}"),
            (len(self.stage_planes) == len(self.layers),
             f"stage_planes {self.stage_planes} must have one entry per stage of layers {self.layers}"),
            (self.cardinality >= 1 and self.base_width >= 1, "cardinality and base_width must be >= 1"),
            (self.block == "bottleneck" or (self.cardinality == 1 and self.base_width == 64),
             "basic blocks support only cardinality=1 and base_width=64"),
            (0.0 <= self.se_ratio < 1.0, f"se_ratio must be in [0, 1), got {self.se_ratio}"),
            (0.0 <= self.drop_rate < 1.0, f"drop_rate must be in [0, 1), got {self.drop_rate}"),
            (0.0 <= self.drop_path_rate < 1.0, f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}"),
            (self.width_multiplier > 0, f"width_multiplier must be > 0, got {self.width_multiplier}"),
            (self.num_classes >= 0, f"num_classes must be >= 0 (0: no classifier), got {self.num_classes}"),
            (self.in_chans >= 1, f"in_chans must be >= 1, got {self.in_chans}"),
            (self.input_size >= 32, f"input_size must be at least 32 (the network's total stride), got {self.input_size}"),
            (0.0 < self.crop_pct <= 1.0, f"crop_pct must be in (0, 1], got {self.crop_pct}"),
            (self.interpolation in ("bilinear", "bicubic", "nearest"), f"unknown interpolation {self.interpolation!r}"),
            (self.output_stride is None or self.output_stride in self.output_strides,
             f"output_stride {self.output_stride} is not possible for this network: choose one of "
             f"{', '.join(str(s) for s in self.output_strides)}"),
            (self.out_indices is None or (
                isinstance(self.out_indices, tuple) and len(self.out_indices) >= 1
                and all(isinstance(i, int) and 0 <= i <= len(self.layers) for i in self.out_indices)
                and list(self.out_indices) == sorted(set(self.out_indices))),
             f"out_indices must be increasing feature indices from 0 (stem) to {len(self.layers)} (last stage), "
             f"got {self.out_indices}"),
            (not self.features_only or self.num_classes == 0,
             "features_only builds no classifier: use num_classes=0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ResnetsError(f"invalid ResNetConfig: {message}")

    # --- (de)serialisation -------------------------------------------------------------------------
    def replace(self, **overrides: Any) -> ResNetConfig:
        """A copy with some fields changed; an unknown field is an error that suggests the closest."""
        names = {f.name for f in dataclasses.fields(self)}
        for key in overrides:
            if key not in names:
                raise unknown("ResNetConfig field", key, names)
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResNetConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in names:
                raise unknown("ResNetConfig field", key, names)
        return cls(**data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> ResNetConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ResnetsError(f"model config is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ResnetsError("model config JSON must be an object")
        return cls.from_dict(data)
