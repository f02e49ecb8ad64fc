"""`resnets info NAME [--img-size N] [--json]`: one preset's stages, cost and expected preprocessing."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..models.config import ResNetConfig
from ..models.cost import ModelCost, config_cost
from ..models.plan import plan_stages
from ..models.registry import get_config
from ..models.resnet import drop_path_rates


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="preset name, e.g. resnet50d (see `resnets models`)")
    parser.add_argument("--img-size", type=int, default=None,
                        help="square input size to count MACs at (default: the preset's training size)")
    parser.add_argument("--output-stride", type=int, default=None, metavar="N",
                        help="dilate the last stages to keep this output stride (backbone use, timm's output_stride)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def architecture(config: ResNetConfig) -> str:
    """A one-line summary of the knobs that tell family members apart."""
    parts = [f"{'pre-activation ' if config.preact else ''}{config.block} blocks {list(config.layers)}"]
    if config.cardinality > 1 or config.base_width != 64:
        parts.append(f"groups {config.cardinality} x width {config.base_width}")
    stem = {"conv7": "7x7 stem", "deep": f"deep 3x3 stem ({config.stem_width}-{config.stem_width}-"
            f"{2 * config.stem_width})", "deep_tiered": f"tiered 3x3 stem (width {config.stem_width})"}[config.stem_type]
    pool = {"conv": " + conv downsample", "max": " + max-pool", "max_zero_pad": " + zero-padded max-pool"}
    parts.append(stem + pool[config.stem_pool])
    parts.append("avg-pool shortcut" if config.shortcut == "avg" else "strided 1x1 shortcut")
    if config.first_block_projection:
        parts.append("projection in every stage's first block")
    parts.append("stride on 1x1" if config.stride_in_1x1 else "stride on 3x3")
    if config.stride_block == "last":
        parts.append("stride in each stage's last block")
    if config.residual_bias:
        parts.append("biased residual convs")
    if config.se_ratio:
        parts.append(f"SE ratio {config.se_ratio:g}")
    if config.act != "relu":
        parts.append(f"act {config.act}")
    if config.drop_rate:
        parts.append(f"dropout {config.drop_rate:g}")
    if config.drop_path_rate:
        parts.append(f"drop path {config.drop_path_rate:g} ({config.drop_path_schedule})")
    if config.width_multiplier != 1.0:
        parts.append(f"width x{config.width_multiplier:g}")
    if config.norm_layer != "batchnorm":
        parts.append("frozen BN" if config.norm_layer == "frozen_batchnorm" else f"GroupNorm({config.norm_groups})")
    if config.output_stride is not None:
        parts.append(f"output stride {config.output_stride} (dilation {', '.join(map(str, dilations(config)))})")
    return ", ".join(parts)


def dilations(config: ResNetConfig) -> list[int]:
    """The dilation of each stage's last block."""
    return [plan.blocks[-1].dilation for plan in plan_stages(config, drop_path_rates(config))]


def preprocessing(config: ResNetConfig) -> dict[str, Any]:
    return {
        "input_size": config.input_size,
        "test_input_size": config.eval_size,
        "crop_pct": config.crop_pct,
        "interpolation": config.interpolation,
        "mean": list(config.mean),
        "std": list(config.std),
    }


def format_report(name: str, config: ResNetConfig, cost: ModelCost) -> str:
    lines = [f"{name}: {config.description}" if config.description else name,
             f"architecture: {architecture(config)}",
             f"cost at {cost.img_size}x{cost.img_size}:",
             f"  {'stage':<7} {'blocks':>6}  {'output (C x H x W)':<18} {'params':>12} {'MACs':>15}"]
    for stage in cost.stages:
        shape = " x ".join(str(d) for d in stage.output_shape)
        blocks = str(stage.blocks) if stage.blocks else "-"
        lines.append(f"  {stage.name:<7} {blocks:>6}  {shape:<18} {stage.params:>12,} {stage.macs:>15,}")
    lines.append(f"  {'total':<7} {sum(s.blocks for s in cost.stages):>6}  {'':<18} {cost.params:>12,} "
                 f"{cost.macs:>15,}")
    lines.append(f"  = {cost.params / 1e6:.3f} M params, {cost.gmacs:.3f} GMACs ({cost.gflops:.3f} GFLOPs = 2 x MACs)")
    pre = preprocessing(config)
    lines.append(f"preprocessing: train {pre['input_size']}, test {pre['test_input_size']}, crop_pct "
                 f"{pre['crop_pct']:g}, {pre['interpolation']}, mean {tuple(pre['mean'])}, std {tuple(pre['std'])}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    config = get_config(args.name)
    if args.output_stride is not None:
        config = config.replace(output_stride=args.output_stride)
    cost = config_cost(config, args.img_size)
    if args.json:
        record = {"name": args.name, "description": config.description, "architecture": architecture(config),
                  **cost.to_dict(), "preprocessing": preprocessing(config), "config": config.to_dict()}
        record["stages"] = [dict(s, output_shape=list(s["output_shape"])) for s in record["stages"]]
        print(json.dumps(record, indent=2))
        return 0
    print(format_report(args.name, config, cost))
    return 0
