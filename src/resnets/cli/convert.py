"""`resnets convert [--from auto|keras|paddle|timm|torchvision] SRC --model NAME --out DST.safetensors`, or
`resnets convert --pretrained [MODEL.]TAG --out DST.safetensors` (a published file from the local hub cache).

The result is our safetensors file with the model config in its metadata (including the preprocessing the
weights expect, e.g. Keras' caffe mode), so `resnets.load_model(DST)` rebuilds the network without being told
the architecture. SRC is read without unpickling code; the output is written atomically (never half a file).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ResnetsError
from ..models.registry import get_config
from ..weights.convert import AUTO, SOURCES
from ..weights.factory import create_model
from ..weights.io import save_weights

CLI_SOURCES = (AUTO, "keras", "paddle", "timm", "torchvision")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", nargs="?",
                        help="weight file: .pth/.pt/.bin/.safetensors (PyTorch), .h5/.keras (Keras), .pdparams (PaddleClas)")
    parser.add_argument("--pretrained", metavar="TAG", default=None,
                        help="instead of SRC: weights timm or torchvision publish (TAG with --model, or MODEL.TAG), "
                             "from the local Hugging Face / torch hub cache, else downloaded")
    parser.add_argument("--from", dest="source", default=AUTO, choices=CLI_SOURCES,
                        help="the ecosystem SRC comes from (default: auto, recognised from the file)")
    parser.add_argument("--model", default=None,
                        help="our preset with the same architecture, e.g. resnet50d (Keras files name their own)")
    parser.add_argument("--out", required=True, metavar="DST.safetensors", help="where to write our weight file")
    parser.add_argument("--reset-head", action="store_true",
                        help="load only the backbone and give the model a fresh classifier")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classes of the written model (default: the checkpoint's; 1000 with --reset-head)")


def _model_name(args: argparse.Namespace) -> str:
    """--model, or the preset a Keras file names by its layers."""
    if args.model is not None:
        get_config(args.model)  # an unknown name fails (with suggestions) before any file is read
        return args.model
    src = Path(args.src)
    if args.source in (AUTO, "keras") and src.is_file() and (args.source == "keras" or SOURCES["keras"].detect(src)):
        from ..weights.keras import keras_preset

        return keras_preset(src)
    raise ResnetsError(f"name the architecture of {src} with --model, e.g. --model resnet50 "
                       "(only Keras files say which network they hold)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ResnetsError(f"--out must name a .safetensors file, got {out}")
    if args.num_classes is not None and args.num_classes < 0:
        raise ResnetsError(f"--num-classes must be >= 0, got {args.num_classes}")
    if (args.src is None) == (args.pretrained is None):
        raise ResnetsError("give SRC (a weight file) or --pretrained TAG, not both" if args.src else
                           "nothing to convert: give SRC (a weight file) or --pretrained TAG")
    if args.pretrained is not None:
        from ..weights.hub import split_tag

        if args.source != AUTO:
            raise ResnetsError("--from applies to SRC files; a --pretrained tag knows where it comes from")
        name, tag = split_tag(args.model, args.pretrained)
        get_config(name)
        model = create_model(name, num_classes=args.num_classes, pretrained=tag, reset_head=args.reset_head)
        args.src = f"{name}.{tag}"
    else:
        if out.resolve() == Path(args.src).resolve():
            raise ResnetsError(f"--out {out} would overwrite the source file")
        name = _model_name(args)
        model = create_model(name, num_classes=args.num_classes, weights=args.src, reset_head=args.reset_head,
                             source=args.source)
    used = model.weights_source
    try:
        save_weights(model.state_dict(), out, config=model.config, class_names=getattr(model, "class_names", None),
                     extra={"converted_from": used})
    except OSError as exc:
        raise ResnetsError(f"cannot write {out}: {exc.strerror or exc}") from None
    tensors = len(model.state_dict())
    params = sum(p.numel() for p in model.parameters())
    head = "new head" if args.reset_head else "head from checkpoint"
    print(f"converted {args.src} ({used}) -> {out}: {name}, {tensors} tensors, {params:,} params, "
          f"{model.config.num_classes} classes ({head})")
    if model.config.mean != get_config(name).mean or model.config.std != get_config(name).std:
        mean = ", ".join(f"{v:.4g}" for v in model.config.mean)
        std = ", ".join(f"{v:.4g}" for v in model.config.std)
        print(f"preprocessing carried in the config: RGB in [0, 1], mean ({mean}), std ({std})")
    return 0

