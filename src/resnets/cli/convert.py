"""`resnets convert --from timm|torchvision|paddle SRC --model NAME --out DST.safetensors`: import a peer's weights.

The result is our safetensors file with the model config in its metadata, so `resnets.load_model(DST)`
rebuilds the network without being told the architecture. SRC is read without unpickling code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ResnetsError
from ..models.registry import get_config
from ..weights.convert import SOURCES
from ..weights.factory import create_model, save_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="weight file: .pth/.pt/.bin (PyTorch), .safetensors, or .pdparams (PaddleClas)")
    parser.add_argument("--from", dest="source", required=True, choices=[s for s in SOURCES if s != "resnets"],
                        help="the ecosystem SRC comes from")
    parser.add_argument("--model", required=True, help="our preset with the same architecture, e.g. resnet50d")
    parser.add_argument("--out", required=True, metavar="DST.safetensors", help="where to write our weight file")
    parser.add_argument("--reset-head", action="store_true",
                        help="load only the backbone and give the model a fresh classifier")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classes of the written model (default: the checkpoint's; 1000 with --reset-head)")


def run(args: argparse.Namespace) -> int:
    get_config(args.model)  # an unknown name fails (with suggestions) before any file is read
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ResnetsError(f"--out must name a .safetensors file, got {out}")
    if args.num_classes is not None and args.num_classes < 0:
        raise ResnetsError(f"--num-classes must be >= 0, got {args.num_classes}")
    if out.resolve() == Path(args.src).resolve():
        raise ResnetsError(f"--out {out} would overwrite the source file")
    model = create_model(args.model, num_classes=args.num_classes, weights=args.src,
                         reset_head=args.reset_head, source=args.source)
    try:
        save_model(model, out)
    except OSError as exc:
        raise ResnetsError(f"cannot write {out}: {exc.strerror or exc}") from None
    tensors = len(model.state_dict())
    params = sum(p.numel() for p in model.parameters())
    head = "new head" if args.reset_head else "head from checkpoint"
    print(f"converted {args.src} ({args.source}) -> {out}: {args.model}, {tensors} tensors, {params:,} params, "
          f"{model.config.num_classes} classes ({head})")
    return 0
