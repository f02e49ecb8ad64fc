"""Named presets under timm-compatible names (plus PaddleClas `_vc`/`_vd` names): each is only a config."""

from __future__ import annotations

import fnmatch

from ..errors import ResnetsError, unknown
from .config import ResNetConfig

_PRESETS: dict[str, ResNetConfig] = {}

# Block type and layout for each depth (docs/reference.md §1.8). ResNet-200 follows timm/TF ([3,24,36,3]);
# PaddleClas' ResNet200_vd uses its own [3,12,48,3] (see `resnet200_vd` below).
DEPTHS: dict[int, tuple[str, tuple[int, ...]]] = {
    10: ("basic", (1, 1, 1, 1)),
    14: ("bottleneck", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    26: ("bottleneck", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
    269: ("bottleneck", (3, 30, 48, 8)),
}

# The "bag of tricks" stem/shortcut variants (arXiv 1812.01187 and timm's naming).
VARIANTS: dict[str, dict] = {
    "": {},  # B: stride on the 3x3 conv, 7x7 stem (torchvision's default)
    "a": {"stride_in_1x1": True},  # the original ResNet: stride on the first 1x1 conv
    "c": {"stem_type": "deep", "stem_width": 32},  # deep 3x3 stem 32-32-64
    "d": {"stem_type": "deep", "stem_width": 32, "shortcut": "avg"},  # C + avg-pool shortcut
    "s": {"stem_type": "deep", "stem_width": 64},  # deep stem 64-64-128
    "t": {"stem_type": "deep_tiered", "stem_width": 32, "shortcut": "avg"},  # tiered stem 24-32-64 + avg
}

VARIANT_NAMES = {"": "B", "a": "A (original)", "c": "C", "d": "D", "s": "S", "t": "T"}


def register(name: str, config: ResNetConfig, *, overwrite: bool = False) -> ResNetConfig:
    """Add a named preset (also for users' own configs)."""
    if name in _PRESETS and not overwrite:
        raise ResnetsError(f"a preset named {name!r} already exists")
    config = config.replace(name=name)
    _PRESETS[name] = config
    return config


def list_models(pattern: str | None = None) -> list[str]:
    """Preset names, optionally filtered by a shell-style pattern such as 'resnet5*' or '*_vd'."""
    names = sorted(_PRESETS, key=_natural_key)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def get_config(name: str) -> ResNetConfig:
    """The preset config called `name`; unknown names raise an error suggesting the closest."""
    if name not in _PRESETS:
        raise unknown("model", name, _PRESETS)
    return _PRESETS[name]


def _natural_key(name: str) -> list:
    import re

    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def _base(depth: int, **fields) -> ResNetConfig:
    block, layers = DEPTHS[depth]
    return ResNetConfig(block=block, layers=layers, **fields)


def _add(name: str, description: str, depth: int, **fields) -> None:
    register(name, _base(depth, description=description, **fields))


def _populate() -> None:
    # Plain ResNets and their bag-of-tricks variants.
    for depth in (18, 26, 34, 50, 101, 152, 200):
        for suffix in ("", "c", "d"):
            _add(f"resnet{depth}{suffix}", f"ResNet-{depth}-{VARIANT_NAMES[suffix]}", depth, **VARIANTS[suffix])
    for depth in (50, 101, 152):
        _add(f"resnet{depth}a", f"ResNet-{depth}-A: original stride on the first 1x1", depth, **VARIANTS["a"])
        _add(f"resnet{depth}s", f"ResNet-{depth}-S: deep stem 64-64-128", depth, **VARIANTS["s"])
    for depth in (10, 14, 26, 50):
        _add(f"resnet{depth}t", f"ResNet-{depth}-T: tiered deep stem 24-32-64 + avg-pool shortcut", depth,
            **VARIANTS["t"])

    # ResNeXt: grouped 3x3 convs (cardinality x width per group).
    for depth, card, width, suffix in [
        (50, 32, 4, ""), (50, 32, 4, "d"), (101, 32, 4, ""), (101, 32, 8, ""), (101, 32, 16, ""),
        (101, 32, 32, ""), (101, 64, 4, ""), (152, 32, 4, ""),
    ]:
        _add(f"resnext{depth}{suffix}_{card}x{width}d", f"ResNeXt-{depth} {card}x{width}d{' D' if suffix else ''}",
            depth, cardinality=card, base_width=width, **VARIANTS[suffix])

    # Wide ResNet: doubled bottleneck inner width.
    for depth in (50, 101):
        _add(f"wide_resnet{depth}_2", f"Wide ResNet-{depth}-2", depth, base_width=128)

    # Squeeze-and-excitation (ratio 1/16 of the block output width, rounded to 8 as timm does).
    se = {"se_ratio": 1 / 16}
    for depth, suffix in [(18, ""), (34, ""), (50, ""), (101, ""), (152, ""), (50, "d"), (50, "t"),
                          (152, "d"), (200, "d"), (269, "d")]:
        _add(f"seresnet{depth}{suffix}", f"SE-ResNet-{depth}{'-' + suffix.upper() if suffix else ''}", depth,
            **se, **VARIANTS[suffix])
    for depth, card, width, suffix in [(26, 32, 4, "d"), (26, 32, 4, "t"), (50, 32, 4, ""), (101, 32, 4, ""),
                                       (101, 32, 8, ""), (101, 32, 8, "d"), (101, 64, 4, "")]:
        _add(f"seresnext{depth}{suffix}_{card}x{width}d",
            f"SE-ResNeXt-{depth} {card}x{width}d{' ' + suffix.upper() if suffix else ''}", depth,
            cardinality=card, base_width=width, **se, **VARIANTS[suffix])

    # ResNet-RS (arXiv 2103.07579): ResNet-D + SE 0.25 + conv instead of max-pool; per-stage
    # stochastic depth and dropout by size (docs/reference.md §3.2); eval sizes/crops of timm's ported weights.
    rs_layouts = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 24, 36, 3),
                  270: (4, 29, 53, 4), 350: (4, 36, 72, 4), 420: (4, 44, 87, 4)}
    rs_sizes = {50: (160, 224, 0.91), 101: (192, 288, 0.94), 152: (256, 320, 1.0), 200: (256, 320, 1.0),
                270: (256, 352, 1.0), 350: (288, 384, 1.0), 420: (320, 416, 1.0)}
    for depth, layers in rs_layouts.items():
        train_size, test_size, crop = rs_sizes[depth]
        register(f"resnetrs{depth}", ResNetConfig(
            block="bottleneck", layers=layers, stem_type="deep", stem_width=32, stem_pool="conv", shortcut="avg",
            se_ratio=0.25, drop_rate=0.4 if depth >= 350 else 0.25, drop_path_rate=0.1 if depth >= 200 else 0.0,
            drop_path_schedule="stage", input_size=train_size, test_input_size=test_size, crop_pct=crop,
            interpolation="bicubic", description=f"ResNet-RS-{depth}",
        ))

    # PaddleClas names: vc = deep stem (C), vd = deep stem + avg-pool shortcut (D).
    for depth in (18, 34, 50, 101, 152):
        _add(f"resnet{depth}_vd", f"PaddleClas ResNet{depth}_vd (= ResNet-{depth}-D)", depth, **VARIANTS["d"])
    _add("resnet50_vc", "PaddleClas ResNet50_vc (= ResNet-50-C)", 50, **VARIANTS["c"])
    register("resnet200_vd", ResNetConfig(
        block="bottleneck", layers=(3, 12, 48, 3), description="PaddleClas ResNet200_vd: its own [3,12,48,3] layout",
        **VARIANTS["d"]))


_populate()
