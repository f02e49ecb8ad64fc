"""`resnets train`: train a preset with a recipe. With no arguments: the built-in demo (digits)."""

from __future__ import annotations

import argparse
import json

from ..train.options import DEFAULT_LOG_EVERY, DEFAULT_SAVE_EVERY_MINUTES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="image-folder root (train/, val/), tar shards, or 'digits' (built-in); "
                                       "default: the recipe's own (the demo's is digits)")
    parser.add_argument("--recipe", default="demo", help="recipe name or YAML path (see `resnets recipes`)")
    parser.add_argument("--model", help="model preset (default: the recipe's model)")
    parser.add_argument("--out", help="run directory (default: runs/<model>-<recipe>-<time>)")
    parser.add_argument("--resume", metavar="DIR",
                        help="continue the run in DIR from its last checkpoint, with the settings it recorded")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="global batch size (the lr is scaled by the recipe's rule)")
    parser.add_argument("--img-size", type=int,
                        help="training resolution (the evaluation size follows by the recipe's train:test ratio)")
    parser.add_argument("--eval-img-size", type=int, help="evaluation resolution (default: see --img-size)")
    parser.add_argument("--lr", type=float, help="learning rate at this batch size (not scaled)")
    parser.add_argument("--seed", type=int, help="random seed (default: the recipe's, 0)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override any recipe field; model.KEY=VALUE overrides the model config (repeatable)")
    initial = parser.add_mutually_exclusive_group()
    initial.add_argument("--weights", help="initialise from weights (ours, timm or torchvision)")
    initial.add_argument("--pretrained", metavar="TAG",
                         help="initialise from weights a peer publishes: a tag of the model (a1_in1k, IMAGENET1K_V2) "
                              "or MODEL.TAG, from the local hub cache or downloaded (`resnets models --pretrained`)")
    parser.add_argument("--reset-head", action="store_true",
                        help="load only the backbone of --weights / --pretrained")
    group = parser.add_argument_group("distillation (see docs/distillation.md)")
    group.add_argument("--teacher", metavar="WEIGHTS",
                       help="distil from this frozen teacher (ours, timm or torchvision weights)")
    group.add_argument("--teacher-model", metavar="NAME",
                       help="the teacher's preset (default: the architecture its file records)")
    group.add_argument("--distill", choices=("kd", "ssld"),
                       help="kd: (1-A) x task + A x T^2 KL (Hinton); ssld: symmetric KL, no label loss (PaddleClas)")
    group.add_argument("--distill-alpha", type=float, metavar="A", help="kd: weight of the distillation term "
                                                                       "(default: the recipe's, 0.5)")
    group.add_argument("--temperature", type=float, metavar="T", help="kd: softmax temperature (default 1)")
    group.add_argument("--teacher-bn", choices=("eval", "train"),
                       help="teacher BatchNorm: running statistics (eval, default) or per-batch (train, PaddleClas)")
    group.add_argument("--unlabeled", action="append", default=[], metavar="DIR",
                       help="folder of images (flat or nested, labels ignored) added to the training stream "
                            "(repeatable)")
    group.add_argument("--unlabeled-ratio", type=float, metavar="R",
                       help="unlabelled images per labelled image each epoch (default: all of them every epoch)")
    parser.add_argument("--workers", type=int,
                        help="data-loading worker processes (default: 0 for digits, else min(4, CPUs))")
    parser.add_argument("--cache", default="auto", choices=["auto", "ram", "disk", "off"],
                        help="decode the data set once into memory: ram, disk (a memory-mapped file beside the data, "
                             "shared by processes), auto (by size), off (default: auto)")
    parser.add_argument("--cache-budget", type=float, metavar="GB",
                        help="largest decoded data set to cache (default: half of the available memory)")
    parser.add_argument("--augment-on", default="device", choices=["device", "workers"],
                        help="training augmentation on whole batches on the training device, or per sample in the "
                             "loader workers (default: device)")
    parser.add_argument("--decode", default="auto", choices=["auto", "cpu", "gpu", "dali"],
                        help="where JPEGs are decoded (gpu/dali need CUDA and --augment-on device; default: auto)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under torchrun")
    parser.add_argument("--save-every", type=int, default=0, metavar="STEPS",
                        help="also checkpoint every STEPS optimiser steps inside an epoch")
    parser.add_argument("--save-every-minutes", type=float, default=DEFAULT_SAVE_EVERY_MINUTES, metavar="M",
                        help=f"also checkpoint every M minutes (default {DEFAULT_SAVE_EVERY_MINUTES:g}; "
                             "0: only at epoch ends)")
    parser.add_argument("--log-every", type=int, default=DEFAULT_LOG_EVERY, metavar="STEPS",
                        help=f"read the loss from the device and log every STEPS steps (default {DEFAULT_LOG_EVERY})")
    parser.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files in the run")
    parser.add_argument("--mlflow", metavar="URI", help="also log to MLflow at this tracking URI "
                                                        "(pip install 'resnets[mlflow]')")
    parser.add_argument("--strict", action="store_true", help="stop at the first unreadable image")
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic algorithms (exact resume; on CUDA also cuBLAS/cuDNN settings)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or per-interval lines")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON at the end")


# Flags a resumed run may change: how the run is watched and checkpointed, never its result.
_RESUME_FLAGS = {"resume", "workers", "device", "no_progress", "json", "release_memory", "save_every",
                 "save_every_minutes", "log_every", "no_tensorboard", "mlflow", "cache", "cache_budget"}


def run(args: argparse.Namespace) -> int:
    from ..errors import ResnetsError
    from ..train.engine import Trainer
    from ..train.options import TrainOptions

    runtime = dict(progress=not args.no_progress, workers=args.workers, device=args.device, log_to_stderr=args.json,
                   retain_memory=not getattr(args, "release_memory", False),  # the flag is added by the cli package
                   save_every=args.save_every, save_every_minutes=args.save_every_minutes, log_every=args.log_every,
                   tensorboard=not args.no_tensorboard, mlflow=args.mlflow, cache=args.cache,
                   cache_budget=args.cache_budget)
    if args.resume:
        defaults = vars(build_defaults())
        changed = [k for k, v in vars(args).items() if k in defaults and k not in _RESUME_FLAGS and v != defaults[k]]
        if changed:
            flags = ", ".join("--" + k.replace("_", "-") for k in changed)
            raise ResnetsError(f"--resume continues the run with its recorded settings; drop {flags}")
        trainer = Trainer(TrainOptions(**runtime), resume_dir=args.resume)
    else:
        model, weights = args.model, args.weights
        if args.pretrained:
            model, weights = _published_weights(args)
        options = TrainOptions(
            data=args.data, recipe=args.recipe, model=model, out=args.out, epochs=args.epochs,
            batch_size=args.batch_size, img_size=args.img_size, eval_img_size=args.eval_img_size, lr=args.lr,
            seed=args.seed, sets=args.sets, weights=weights, reset_head=args.reset_head, strict=args.strict,
            channels_last=args.channels_last, compile=args.compile, sync_bn=args.sync_bn,
            deterministic=args.deterministic, augment_on=args.augment_on, decode=args.decode,
            teacher=args.teacher, teacher_model=args.teacher_model, distill=args.distill,
            distill_alpha=args.distill_alpha, temperature=args.temperature, teacher_bn=args.teacher_bn,
            unlabeled=args.unlabeled, unlabeled_ratio=args.unlabeled_ratio, **runtime,
        )
        trainer = Trainer(options)
    summary = trainer.run()
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def _published_weights(args: argparse.Namespace) -> tuple[str | None, str]:
    """(model, file) for --pretrained: the tag's cached (or downloaded, checked) file; MODEL.TAG also names the
    model, a bare TAG belongs to --model or the recipe's model. The run records the file like any --weights."""
    from ..train.recipe import load_recipe
    from ..weights.hub import fetch, find_published, split_tag

    default = None if "." in args.pretrained else load_recipe(args.recipe).model
    preset, tag = split_tag(args.model or default, args.pretrained)
    return args.model or preset, str(fetch(find_published(preset, tag)).path)


def build_defaults() -> argparse.Namespace:
    """The parsed value of every flag when none is given (to tell which ones a user set)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args([])
