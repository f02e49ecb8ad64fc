"""`resnets eval`: top-1, top-5 and per-class accuracy of weights on an image folder, in any inference mode and
precision (so accuracy can be measured as deployed)."""

from __future__ import annotations

import argparse
import json

from ..weights.resolve import weights_label
from .inference_options import add_inference_arguments, add_weights_arguments, apply_threads, precision_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_weights_arguments(parser)
    parser.add_argument("--data", required=True, help="image-folder root with val/<class>/*, or a split folder")
    parser.add_argument("--split", default="val")
    parser.add_argument("--img-size", type=int, help="evaluation size (default: the model's test size)")
    parser.add_argument("--crop-pct", type=float, help="centre-crop fraction (default: the model's)")
    parser.add_argument("--interpolation", choices=["bilinear", "bicubic", "nearest"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    add_inference_arguments(parser, default_mode="eager")
    parser.add_argument("--real-labels", metavar="JSON", help="ReaL-style label sets (any label in top-k counts)")
    parser.add_argument("--strict", action="store_true", help="stop at the first unreadable image")
    parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..evaluate_folder import EvalSettings, evaluate_folder

    apply_threads(args)
    settings = EvalSettings(weights=args.weights, pretrained=args.pretrained, model=args.model, data=args.data,
                            split=args.split,
                            img_size=args.img_size, crop_pct=args.crop_pct, interpolation=args.interpolation,
                            batch_size=args.batch_size, workers=args.workers, mode=args.mode,
                            precision=precision_of(args), calib=args.calib, allow_int8=args.allow_int8,
                            int8_val=args.int8_val, real_labels=args.real_labels, strict=args.strict)
    result = evaluate_folder(settings, verbose=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{weights_label(args.weights, args.model, args.pretrained)} on {result['data']} ({result['n']} images, {result['img_size']} px, "
          f"crop {result['crop_pct']}, {result['interpolation']}, mode {result['mode']} {result['precision']})")
    print(f"top-1 {result['top1']:.2f}  top-5 {result['top5']:.2f}")
    if result["per_class"]:
        width = max(len(name) for name in result["per_class"])
        print("per-class top-1:")
        for name, value in result["per_class"].items():
            print(f"  {name:<{width}}  {'-' if value is None else f'{value:6.2f}'}")
    if result["skipped_images"]:
        print(f"skipped {result['skipped_images']} unreadable image(s), e.g. {result['skipped_files'][0]}")
    return 0
