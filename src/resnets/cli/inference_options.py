"""The inference options `eval`, `predict` and `bench` share: mode, precision, int8/best inputs, threads."""

from __future__ import annotations

import argparse

import torch

from ..errors import ResnetsError
from ..hardware import PRECISIONS, normalise_precision
from ..inference.modes import CHOICES


def add_inference_arguments(parser: argparse.ArgumentParser, *, default_mode: str, several: bool = False) -> None:
    modes = f"{', '.join(CHOICES)}{' or all; comma-separated' if several else ''}"
    parser.add_argument("--mode", default=default_mode, metavar="MODE[,MODE...]" if several else "MODE",
                        help=f"inference mode: {modes} (default {default_mode})")
    parser.add_argument("--precision", "--dtype", dest="precision", default=None, metavar="P",
                        help=f"{', '.join(PRECISIONS)} (or float32, bfloat16, float16). Default: fp32 for a named "
                             "mode; for best, every precision this hardware runs natively (int8 only with "
                             "--allow-int8); --precision fp32 keeps best to exact modes")
    parser.add_argument("--calib", metavar="DIR", default=None,
                        help="images for int8 calibration and for best's agreement check (default for the check: "
                             "a fixed set of random images)")
    parser.add_argument("--allow-int8", action="store_true",
                        help="let best pick int8 (needs --calib, and a labelled folder: --int8-val or --calib with "
                             "DIR/<class>/<image> named like the model's classes; top-1 may drop <= 0.5 points)")
    parser.add_argument("--int8-val", metavar="DIR", default=None,
                        help="labelled folder for int8's top-1 check (default: the --calib folder)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for every backend (default: torch's)")


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """--weights FILE or --pretrained TAG (exactly one), and --model for the files and tags that need it."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="weight file (ours; or timm/torchvision with --model)")
    source.add_argument("--pretrained", metavar="TAG",
                        help="weights a peer publishes: a timm tag (a1_in1k, tv2_in1k, ...) or torchvision's "
                             "(IMAGENET1K_V2) with --model, or MODEL.TAG (resnet50.a1_in1k); from the local "
                             "Hugging Face / torch hub cache, else downloaded (`resnets models --pretrained`)")
    parser.add_argument("--model", default=None,
                        help="preset name: the architecture of a timm/torchvision file, or of --pretrained TAG")


def precision_of(args: argparse.Namespace) -> str | None:
    return normalise_precision(args.precision) if args.precision is not None else None


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        if args.threads < 1:
            raise ResnetsError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)


def best_options(args: argparse.Namespace):
    from ..inference.best import BestOptions

    return BestOptions(precision=precision_of(args), calib=args.calib, allow_int8=args.allow_int8,
                       int8_val=args.int8_val)
