"""`resnets train`: train a preset with a recipe. With no arguments: the built-in demo (digits)."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="image-folder root (train/, val/), tar shards, or 'digits' (built-in); "
                                       "default: the recipe's own (the demo's is digits)")
    parser.add_argument("--recipe", default="demo", help="recipe name or YAML path (see `resnets recipes`)")
    parser.add_argument("--model", help="model preset (default: the recipe's model)")
    parser.add_argument("--out", help="run directory (default: runs/<model>-<recipe>-<time>)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="global batch size (the lr is scaled by the recipe's rule)")
    parser.add_argument("--img-size", type=int, help="training resolution")
    parser.add_argument("--lr", type=float, help="learning rate at this batch size (not scaled)")
    parser.add_argument("--seed", type=int, help="random seed (default: the recipe's, 0)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override any recipe field; model.KEY=VALUE overrides the model config (repeatable)")
    parser.add_argument("--weights", help="initialise from weights (ours, timm or torchvision)")
    parser.add_argument("--reset-head", action="store_true", help="load only the backbone of --weights")
    parser.add_argument("--workers", type=int,
                        help="data-loading worker processes (default: 0 for digits, else min(4, CPUs))")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under torchrun")
    parser.add_argument("--save-every", type=int, default=0, metavar="STEPS",
                        help="also checkpoint every STEPS optimiser steps inside an epoch")
    parser.add_argument("--strict", action="store_true", help="stop at the first unreadable image")
    parser.add_argument("--deterministic", action="store_true", help="deterministic algorithms (for exact resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON at the end")


# Flags a resumed run may change: they do not alter the result. Everything else comes from the run.
_RESUME_FLAGS = {"resume", "workers", "device", "no_progress", "json", "release_memory"}


def run(args: argparse.Namespace) -> int:
    from ..errors import ResnetsError
    from ..train.engine import Trainer, TrainOptions

    retain = not getattr(args, "release_memory", False)  # the flag is added by the cli package
    if args.resume:
        defaults = vars(build_defaults())
        changed = [k for k, v in vars(args).items() if k in defaults and k not in _RESUME_FLAGS and v != defaults[k]]
        if changed:
            flags = ", ".join("--" + k.replace("_", "-") for k in changed)
            raise ResnetsError(f"--resume continues the run with its own settings; drop {flags}")
        trainer = Trainer(TrainOptions(progress=not args.no_progress, workers=args.workers, device=args.device,
                                       log_to_stderr=args.json, retain_memory=retain),
                          resume_dir=args.resume)
    else:
        options = TrainOptions(
            data=args.data, recipe=args.recipe, model=args.model, out=args.out, epochs=args.epochs,
            batch_size=args.batch_size, img_size=args.img_size, lr=args.lr, seed=args.seed, sets=args.sets,
            workers=args.workers, device=args.device, weights=args.weights, reset_head=args.reset_head,
            strict=args.strict, channels_last=args.channels_last, compile=args.compile, sync_bn=args.sync_bn,
            save_every=args.save_every, deterministic=args.deterministic, progress=not args.no_progress,
            log_to_stderr=args.json, retain_memory=retain,
        )
        trainer = Trainer(options)
    summary = trainer.run()
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def build_defaults() -> argparse.Namespace:
    """The parsed value of every flag when none is given (to tell which ones a user set)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args([])
