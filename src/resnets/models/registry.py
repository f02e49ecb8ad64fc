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

    _populate_preact()
    _populate_paddleclas()


def _populate_preact() -> None:
    """Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks")."""
    # timm's resnetv2_* with BatchNorm (its BiT models use weight-standardised convs, not built here).
    # zero_init_last=False: timm's default for them (it would zero the last conv, not a norm).
    preact = {"preact": True, "zero_init_last": False}
    for depth in (18, 34, 50, 101, 152):
        for suffix in ("", "d"):
            _add(f"resnetv2_{depth}{suffix}", f"Pre-activation ResNet-{depth}{'-D' if suffix else ''} (timm)", depth,
                 **preact, **VARIANTS[suffix])
    _add("resnetv2_50t", "Pre-activation ResNet-50-T (timm)", 50, **preact, **VARIANTS["t"])
    _add("resnetv2_50d_gn", "Pre-activation ResNet-50-D with GroupNorm(32) (timm)", 50, **preact, **VARIANTS["d"],
         norm_layer="groupnorm", norm_groups=32)
    # Keras applications ResNet50V2/101V2/152V2 (tf_keras resnet.py stack2/block2): stride on the last block
    # of each stage, biased stem/shortcut/last convs, zero-padded max-pool, BN eps 1.001e-5, inputs scaled to
    # [-1, 1] (preprocess_input mode "tf").
    keras_v2 = {"stride_block": "last", "residual_bias": True, "stem_pool": "max_zero_pad", "bn_eps": 1.001e-5,
                "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    for depth in (50, 101, 152):
        _add(f"resnet{depth}v2", f"Keras ResNet{depth}V2 (pre-activation, stride on each stage's last block)", depth,
             **preact, **keras_v2)


# PaddleClas (ppcls/arch/backbone, release 2.6) under its names in lower case. Its own tweaks, checked against
# its code: every stage's first block has a projection shortcut, also where shapes match (first_block_projection,
# which changes only the basic-block nets); SE widths are int(C / 16) (se_divisor=1); "_vd" = deep stem +
# avg-pool shortcut, the SE-ResNeXt and SENet ones with a 64-64-128 stem ("s").
PADDLE_VD_WIDE = {"stem_type": "deep", "stem_width": 64, "shortcut": "avg"}
PADDLE_SE = {"se_ratio": 1 / 16, "se_divisor": 1}


def _populate_paddleclas() -> None:
    first = {"first_block_projection": True}
    for depth in (18, 34):
        _add(f"resnet{depth}_vb", f"PaddleClas ResNet{depth} (ResNet-{depth}-B with a projection in its first block)",
             depth, **first)
        _add(f"resnet{depth}_vd", f"PaddleClas ResNet{depth}_vd (ResNet-{depth}-D, projection in its first block)", depth,
             **first, **VARIANTS["d"])
    for depth in (50, 101, 152):
        _add(f"resnet{depth}_vd", f"PaddleClas ResNet{depth}_vd (= ResNet-{depth}-D)", depth, **VARIANTS["d"])
    _add("resnet50_vc", "PaddleClas ResNet50_vc (= ResNet-50-C)", 50, **VARIANTS["c"])
    register("resnet200_vd", ResNetConfig(
        block="bottleneck", layers=(3, 12, 48, 3), description="PaddleClas ResNet200_vd: its own [3,12,48,3] layout",
        **VARIANTS["d"]))

    # ResNeXt (model_zoo/resnext.py, resnext_vd.py); 50/101/152 x 32x4d/64x4d. The plain ones PaddleClas shares
    # with torchvision/timm (resnext50_32x4d, resnext101_32x4d, resnext101_64x4d, resnext152_32x4d) exist above.
    for depth, card in [(50, 64), (152, 64)]:
        _add(f"resnext{depth}_{card}x4d", f"ResNeXt-{depth} {card}x4d (PaddleClas ResNeXt{depth}_{card}x4d)", depth,
             cardinality=card, base_width=4)
    for depth in (50, 101, 152):
        for card in (32, 64):
            _add(f"resnext{depth}_vd_{card}x4d", f"PaddleClas ResNeXt{depth}_vd_{card}x4d (ResNeXt-{depth} {card}x4d D)",
                 depth, cardinality=card, base_width=4, **VARIANTS["d"])

    # SE-ResNet _vd (model_zoo/se_resnet_vd.py), SE-ResNeXt (se_resnext.py) and its _vd (se_resnext_vd.py).
    for depth in (18, 34, 50):
        _add(f"se_resnet{depth}_vd", f"PaddleClas SE_ResNet{depth}_vd (SE-ResNet-{depth}-D)", depth,
             **PADDLE_SE, **VARIANTS["d"], **(first if depth < 50 else {}))
    for depth in (50, 101):
        _add(f"se_resnext{depth}_32x4d", f"PaddleClas SE_ResNeXt{depth}_32x4d (SE-ResNeXt-{depth} 32x4d)", depth,
             cardinality=32, base_width=4, **PADDLE_SE)
    # PaddleClas builds SE_ResNeXt152_64x4d with a 64-64-128 stem but declares 64 input channels for its first
    # block, so its dygraph class fails on the first forward; this preset feeds the stem's 128 channels on, as
    # the static-graph network its weights come from does.
    _add("se_resnext152_64x4d", "PaddleClas SE_ResNeXt152_64x4d (64-64-128 stem)", 152, cardinality=64,
         base_width=4, stem_type="deep", stem_width=64, **PADDLE_SE)
    _add("se_resnext50_vd_32x4d", "PaddleClas SE_ResNeXt50_vd_32x4d (64-64-128 stem, avg-pool shortcut)", 50,
         cardinality=32, base_width=4, **PADDLE_SE, **PADDLE_VD_WIDE)
    _add("senet154_vd", "PaddleClas SENet154_vd (SE-ResNeXt-152 64x4d, 64-64-128 stem, avg-pool shortcut)", 152,
         cardinality=64, base_width=4, **PADDLE_SE, **PADDLE_VD_WIDE)


_populate()
