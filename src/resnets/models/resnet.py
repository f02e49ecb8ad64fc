"""`ResNet`: one module for the whole family, built from a `ResNetConfig`.

Submodule names follow the peers so their state dicts load with no renaming and ours load into theirs:
torchvision/timm's resnet.py for the v1 networks (conv1, bn1, maxpool, layer1..N, fc; blocks with
conv1/bn1/.../downsample/se), timm's resnetv2.py for the pre-activation ones (stem, stages.N.blocks.M, norm,
head.fc). As a backbone (`features_only`) it returns timm's feature maps: index 0 the stem activation at
stride 2, 1..4 the stage outputs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ResnetsError
from .blocks import RESIDUAL_BLOCKS, make_block
from .config import ResNetConfig
from .features import FeatureInfo
from .layers import make_activation, make_norm
from .plan import plan_stages, stem_channels

MIN_INPUT_SIZE = 32  # the total stride: below it the last stages see less than one pixel of input


def drop_path_rates(config: ResNetConfig) -> list[list[float]]:
    """Stochastic-depth rate for every block, per stage, by the config's schedule."""
    rate, layers = config.drop_path_rate, config.layers
    if config.drop_path_schedule == "stage":  # ResNet-RS / Keras: rate * (s + 2) / (stages + 1)
        return [[rate * (s + 2) / (len(layers) + 1)] * n for s, n in enumerate(layers)]
    total = sum(layers)  # timm: linear in the block index, 0 at the first block, `rate` at the last
    rates = [rate * i / max(total - 1, 1) for i in range(total)]
    out, start = [], 0
    for n in layers:
        out.append(rates[start:start + n])
        start += n
    return out


def head_keys(preact: bool) -> tuple[str, str]:
    """State-dict keys of the classifier: fc (nn.Linear), or head.fc (a 1x1 conv) in pre-activation networks."""
    prefix = "head.fc" if preact else "fc"
    return f"{prefix}.weight", f"{prefix}.bias"


def _stem_convs(config: ResNetConfig) -> list[tuple[str, nn.Conv2d]]:
    """The stem's convs by timm name: one 7x7/2, or three 3x3 (the first strided) for the deep stems."""
    if config.stem_type == "conv7":
        out = stem_channels(config)
        bias = config.residual_bias
        return [("conv", nn.Conv2d(config.in_chans, out, 7, stride=2, padding=3, bias=bias))]
    width = config.stem_width
    first, second = (3 * (width // 4), width) if config.stem_type == "deep_tiered" else (width, width)
    first, second, out = config.scaled(first), config.scaled(second), stem_channels(config)
    return [("conv1", nn.Conv2d(config.in_chans, first, 3, stride=2, padding=1, bias=False)),
            ("conv2", nn.Conv2d(first, second, 3, padding=1, bias=False)),
            ("conv3", nn.Conv2d(second, out, 3, padding=1, bias=config.residual_bias))]


def _last_stem_conv(config: ResNetConfig) -> str:
    """The pre-activation stem's feature tap (timm's): its last conv (names from `_stem_convs`), before the pool."""
    return "conv" if config.stem_type == "conv7" else "conv3"


def _v1_stem(config: ResNetConfig) -> nn.Module:
    """`conv1`: the 7x7 conv, or the deep stem's convs with norm + act between them (indices as timm's)."""
    convs = _stem_convs(config)
    if len(convs) == 1:
        return convs[0][1]
    layers: list[nn.Module] = []
    for index, (_, conv) in enumerate(convs):
        layers.append(conv)
        if index < len(convs) - 1:
            layers += [make_norm(conv.out_channels, config), make_activation(config.act)]
    return nn.Sequential(*layers)


def _max_pool(config: ResNetConfig) -> nn.Module:
    if config.stem_pool == "max_zero_pad":  # Keras: ZeroPadding2D(1) then MaxPooling2D(3, 2, "valid")
        return nn.Sequential(nn.ZeroPad2d(1), nn.MaxPool2d(3, stride=2))
    return nn.MaxPool2d(3, stride=2, padding=1)


def _preact_stem(config: ResNetConfig, with_pool: bool) -> nn.Sequential:
    """timm's resnetv2 stem: the conv(s), norm + act only between deep-stem convs, then the pool."""
    convs = _stem_convs(config)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for index, (name, conv) in enumerate(convs):
        layers[name] = conv
        if index < len(convs) - 1:
            layers[f"norm{index + 1}"] = make_norm(conv.out_channels, config)
            layers[f"act{index + 1}"] = make_activation(config.act)
    if with_pool:
        layers["pool"] = _max_pool(config)
    return nn.Sequential(layers)


class PreActStage(nn.Module):
    """A stage of pre-activation blocks, as timm's resnetv2 ResNetStage (`blocks`)."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class ConvClassifier(nn.Module):
    """timm's resnetv2 classifier: a 1x1 conv (`fc`, weight [classes, C, 1, 1]) on the pooled features."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, num_classes, 1) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.fc, nn.Identity):
            return x
        return self.fc(x[:, :, None, None]).flatten(1)


@contextmanager
def _statistics_frozen(module: nn.Module):
    """BN running statistics untouched while a checkpointed block is recomputed for the backward pass, so a
    training step updates them once, as without checkpointing (momentum 0 keeps them; the counter is put back)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


class ResNet(nn.Module):
    """A ResNet-family classifier (or, with `features_only`, backbone). Build it from a config, or by name
    with `resnets.create_model`."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        self.grad_checkpointing = config.grad_checkpointing
        plans = plan_stages(config, drop_path_rates(config))
        depth = max(config.feature_indices) if config.features_only else len(plans)
        plans = plans[:depth]  # a backbone builds nothing past its deepest output
        channels = stem_channels(config)
        taps = [{"module": "", "num_chs": channels, "reduction": 2}]
        if config.preact:
            self._build_preact_stem(config, with_pool=depth > 0)
            taps[0]["module"] = f"stem.{_last_stem_conv(config)}"
        else:
            self._build_v1_stem(config, channels, with_pool=depth > 0)
            taps[0]["module"] = "act1"

        stages = [[make_block(block, config) for block in plan.blocks] for plan in plans]
        if config.preact:
            self.stages = nn.Sequential(*(PreActStage(blocks) for blocks in stages))
            self.stage_paths = [f"stages.{i}.blocks" for i in range(len(stages))]
        else:
            for index, blocks in enumerate(stages):
                self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
            self.stage_paths = [f"layer{i + 1}" for i in range(len(stages))]
        for index, plan in enumerate(plans):
            module = f"stages.{index}" if config.preact else f"layer{index + 1}"
            taps.append({"module": module, "num_chs": plan.out_channels, "reduction": plan.reduction})
        taps = [dict(tap, index=i) for i, tap in enumerate(taps)]
        self.feature_info = FeatureInfo(taps[i] for i in config.feature_indices) if config.features_only \
            else FeatureInfo(taps)
        self.num_features = taps[-1]["num_chs"]

        if not config.features_only:
            self._build_head(config, self.num_features)
        self.reset_parameters()

    # --- construction ---------------------------------------------------------------------------------
    def _build_v1_stem(self, config: ResNetConfig, channels: int, with_pool: bool) -> None:
        self.conv1 = _v1_stem(config)
        self.bn1 = make_norm(channels, config)
        self.act1 = make_activation(config.act)
        if not with_pool:
            return
        if config.stem_pool == "conv":  # ResNet-RS: a learned stride-2 conv replaces the max-pool
            self.maxpool = nn.Sequential(
                nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
                make_norm(channels, config),
                make_activation(config.act),
            )
        else:
            self.maxpool = _max_pool(config)

    def _build_preact_stem(self, config: ResNetConfig, with_pool: bool) -> None:
        self.stem = _preact_stem(config, with_pool)
        self._stem_tap = list(self.stem).index(self.stem.get_submodule(_last_stem_conv(config)))

    def _build_head(self, config: ResNetConfig, channels: int) -> None:
        if config.preact:  # the residual stream is un-normalised until here
            self.norm = make_norm(channels, config)
            self.final_act = make_activation(config.act)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.drop_rate) if config.drop_rate > 0 else nn.Identity()
        self._set_classifier(config.num_classes)

    def _set_classifier(self, num_classes: int) -> None:
        if self.config.preact:
            self.head = ConvClassifier(self.num_features, num_classes)
        else:
            self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    # --- structure ------------------------------------------------------------------------------------
    @property
    def stage_blocks(self) -> list[nn.Sequential]:
        """Each stage's blocks (layerN, or stages.N.blocks for pre-activation networks)."""
        return [self.get_submodule(path) for path in self.stage_paths]

    @property
    def classifier(self) -> nn.Module:
        """The final linear map: `fc` (nn.Linear), or `head.fc` (a 1x1 conv) in pre-activation networks."""
        if self.config.features_only:
            raise ResnetsError("a features_only backbone has no classifier")
        return self.head.fc if self.config.preact else self.fc

    @property
    def head_keys(self) -> tuple[str, str]:
        """State-dict keys of the classifier (what `reset_head` leaves out when loading)."""
        return head_keys(self.config.preact)

    def keys_not_built(self, keys: Iterable[str]) -> list[str]:
        """The keys of a classifier's checkpoint that this model leaves out by design, so that loading may drop
        them: a backbone's head and the stages past its last output, and the BN step counters that frozen
        norms do not keep."""
        config, own = self.config, self.state_dict()
        prefixes: list[str] = []
        if config.features_only:
            built, total = len(self.stage_paths), len(config.layers)
            if config.preact:
                prefixes += ["norm.", "head."] + [f"stages.{i}." for i in range(built, total)]
            else:
                prefixes += ["fc."] + [f"layer{i + 1}." for i in range(built, total)]
                prefixes += ["maxpool."] if not hasattr(self, "maxpool") else []
        return [k for k in keys if k not in own and (k.startswith(tuple(prefixes)) or k.endswith(".num_batches_tracked"))]

    def cost_groups(self) -> dict[str, list[str]]:
        """Report group -> the modules it covers: stem, layer1..N, head (used by `resnets info`)."""
        if self.config.preact:
            groups, head = {"stem": ["stem"]}, ["norm", "head"]
        else:
            groups, head = {"stem": [n for n in ("conv1", "bn1", "maxpool") if hasattr(self, n)]}, ["fc"]
        groups.update({f"layer{i + 1}": [path] for i, path in enumerate(self.stage_paths)})
        if not self.config.features_only:
            groups["head"] = head
        return groups

    # --- initialisation -------------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Kaiming-normal convs (fan_out), unit norms, and zero-initialised residual branches when configured."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.config.preact and not self.config.features_only and isinstance(self.head.fc, nn.Conv2d):
            nn.init.normal_(self.head.fc.weight, std=0.01)  # timm's resnetv2 classifier init
        # A frozen norm's zero gamma could never learn, which would leave its block dead; skip it there.
        if self.config.zero_init_last and self.config.norm_layer != "frozen_batchnorm":
            for module in self.modules():
                if isinstance(module, RESIDUAL_BLOCKS):
                    module.zero_init_last()

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier (0 removes it), e.g. for transfer learning."""
        if self.config.features_only:
            raise ResnetsError("a features_only backbone has no classifier to reset")
        self.config = self.config.replace(num_classes=num_classes)
        self._set_classifier(num_classes)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of keeping its activations (timm's name)."""
        self.grad_checkpointing = enable

    # --- forward --------------------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
            return
        if x.ndim != 4:
            raise ResnetsError(f"expected a batch of images shaped (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.config.in_chans:
            raise ResnetsError(f"expected {self.config.in_chans} input channels, got {x.shape[1]}")
        if min(x.shape[2], x.shape[3]) < MIN_INPUT_SIZE:
            raise ResnetsError(
                f"input {x.shape[2]}x{x.shape[3]} is too small: the network's total stride is 32, "
                f"use at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}"
            )

    def _stem(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the stride-2 stem feature, the stem's output after pooling)."""
        if self.config.preact:
            tap = x
            for index, layer in enumerate(self.stem):
                x = layer(x)
                if index == self._stem_tap:
                    tap = x
            return tap, x
        tap = self.act1(self.bn1(self.conv1(x)))
        return tap, (self.maxpool(tap) if hasattr(self, "maxpool") else tap)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self._stem(x)[1]

    def _run_stage(self, blocks: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        if not (self.grad_checkpointing and torch.is_grad_enabled()) or torch.jit.is_scripting():
            return blocks(x)
        for block in blocks:
            x = checkpoint(block, x, use_reentrant=False,
                           context_fn=lambda b=block: (nullcontext(), _statistics_frozen(b)))
        return x

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every feature map the network builds, timm's indices: [stem activation (stride 2), stage 1, ...]."""
        self._check_input(x)
        tap, x = self._stem(x)
        outputs = [tap]
        for blocks in self.stage_blocks:
            x = self._run_stage(blocks, x)
            outputs.append(x)
        return outputs

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output (strides 4, 8, 16, 32 unless dilated): the feature pyramid."""
        return self.forward_intermediates(x)[1:]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the last stage's feature map (N, num_features, H/32, W/32); pre-activation networks
        apply their final norm + act here, as timm does."""
        x = self.forward_intermediates(x)[-1]
        if self.config.preact and not self.config.features_only:
            x = self.final_act(self.norm(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> logits (or the pooled features with `pre_logits=True`)."""
        x = self.dropout(torch.flatten(self.global_pool(x), 1))
        if pre_logits:
            return x
        return self.head(x) if self.config.preact else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.config.features_only:
            maps = self.forward_intermediates(x)
            return [maps[i] for i in self.config.feature_indices]
        return self.forward_head(self.forward_features(x))
