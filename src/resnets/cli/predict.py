"""`resnets predict --weights W IMAGE...`: the top-k classes of each image, with class names.

Images are read and preprocessed as `resnets eval` does (the same loader, transform and evaluation
loop), so one image gets the same logits from both commands.

Exit status: 0 when every image was classified; 1 when some files could not be read (each is named on
stderr, the others are still classified); 2 for a usage error (no weights, unknown model or mode).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..data.datasets import IMAGE_EXTENSIONS
from ..data.imagenet_classes import class_names_for
from ..data.preprocess import load_image
from ..errors import ResnetsError
from ..evaluate import image_loader, logits_loop, normaliser
from ..inference.modes import prepare
from ..models.resnet import ResNet
from ..weights.resolve import has_resnets_config, model_from_weights  # noqa: F401 (re-exported for bench/export)
from .inference_options import (
    add_inference_arguments,
    add_weights_arguments,
    apply_threads,
    best_options,
    precision_of,
)


def expand_images(paths: list[str]) -> tuple[list[Path], list[dict]]:
    """(files, failures): the given files, each directory replaced by the image files directly inside it."""
    out, failures = [], []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                failures.append({"image": str(path), "error": f"no image files in directory {path}"})
            out += found
        else:
            out.append(path)
    return out, failures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (or directories of images)")
    add_weights_arguments(parser)
    parser.add_argument("--topk", type=int, default=5, help="classes to show per image (default 5)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    add_inference_arguments(parser, default_mode="fused")
    parser.add_argument("--img-size", type=int, default=None, help="override the model's eval size")
    parser.add_argument("--batch-size", type=int, default=16)


def _why_unreadable(path: str) -> str:
    try:
        load_image(path)
    except ResnetsError as exc:
        return str(exc)
    return f"cannot read image {path}"  # readable now: it changed while we ran


def predict(model: ResNet, images: list[Path], *, topk: int = 5, mode: str = "fused", img_size: int | None = None,
            batch_size: int = 16, precision: str | None = None, calib: str | None = None,
            best=None) -> tuple[list[dict], list[dict]]:
    """(predictions, failures): per readable image its top-k {index, name, prob}; per unreadable one the reason."""
    config = model.config
    size = img_size or config.eval_size
    names = class_names_for(config.num_classes, getattr(model, "class_names", None))
    k = max(1, min(topk, config.num_classes))
    runner = prepare(model, mode, img_size=size, batch_size=batch_size, precision=precision, calib=calib,
                     best=best, verbose=True)
    loader = image_loader(images, config, img_size=size, batch_size=batch_size)
    predictions, failures = [], []
    position = 0  # batches come in file order; a batch's skipped names are among its files
    for logits, batch in logits_loop(runner, loader, normaliser(config)):
        chunk = [str(p) for p in images[position:position + len(batch.images) + len(batch.skipped)]]
        position += len(chunk)
        gone = set(batch.skipped)
        failures += [{"image": p, "error": _why_unreadable(p)} for p in chunk if p in gone]
        kept = [p for p in chunk if p not in gone]
        if not kept:
            continue
        values, indices = logits.softmax(dim=1).topk(k, dim=1)
        for path, row_p, row_i in zip(kept, values.tolist(), indices.tolist(), strict=True):
            top = [{"index": i, "name": names[i], "prob": round(p, 6)} for p, i in zip(row_p, row_i, strict=True)]
            predictions.append({"image": path, "top": top})
    return predictions, failures


def run(args: argparse.Namespace) -> int:
    if args.topk < 1:
        raise ResnetsError(f"--topk must be >= 1, got {args.topk}")
    if args.batch_size < 1:
        raise ResnetsError(f"--batch-size must be >= 1, got {args.batch_size}")
    apply_threads(args)
    model = model_from_weights(args.weights, args.model, pretrained=args.pretrained)
    images, failures = expand_images(args.images)
    predictions, unreadable = predict(model, images, topk=args.topk, mode=args.mode, img_size=args.img_size,
                                      batch_size=args.batch_size, precision=precision_of(args), calib=args.calib,
                                      best=best_options(args))
    failures += unreadable
    for failure in failures:
        print(f"error: {failure['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(predictions + failures, indent=2))
    else:
        for item in predictions:
            print(item["image"])
            for rank, entry in enumerate(item["top"], start=1):
                print(f"  {rank}. {entry['prob']:7.2%}  {entry['name']} ({entry['index']})")
    return 1 if failures else 0
