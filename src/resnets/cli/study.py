"""`resnets study seeds|scaling|ablation|transfer|show`: the papers' experiments as resumable sets of runs."""

from __future__ import annotations

import argparse

from ..train.options import DEFAULT_SAVE_EVERY_MINUTES

KINDS = {
    "seeds": "one recipe over many seeds: the spread on val and other sets (ResNet strikes back)",
    "scaling": "a depth x width x resolution x epochs grid with latency and the Pareto front (ResNet-RS)",
    "ablation": "a cumulative ladder of recipe changes, mean and std per step (ResNet-RS Table 1)",
    "transfer": "fine-tune every checkpoint on every data set: the top-1 matrix with ranks (RSB figure 7)",
}


def _common(parser: argparse.ArgumentParser, *, data: bool = True, recipe: str = "demo") -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="the study directory (an existing one resumes)")
    parser.add_argument("--recipe", default=recipe, help=f"recipe name or YAML path (default {recipe})")
    parser.add_argument("--model", help="model preset (default: the recipe's)")
    if data:
        parser.add_argument("--data", help="image-folder root (train/, val/), tar shards or 'digits' "
                                           "(default: the recipe's)")
    parser.add_argument("--epochs", type=int, help="epochs of every run (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, help="global batch of every run")
    parser.add_argument("--img-size", type=int, help="training resolution of every run")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for every run; model.KEY=VALUE changes the model (repeatable)")
    parser.add_argument("--eval-data", action="append", default=[], metavar="NAME=DIR",
                        help="also evaluate every finished run's best weights on DIR (its val/ split, or DIR "
                             "itself); repeatable")
    parser.add_argument("--deterministic", action="store_true", help="deterministic algorithms in every run")
    run = parser.add_argument_group("how the runs execute (not part of the study's spec)")
    run.add_argument("--executor", choices=("local", "ray"), default="local")
    run.add_argument("--parallel", type=int, default=None,
                     help="local: runs at a time (default 1, or one per GPU on a CUDA device)")
    run.add_argument("--threads", type=int, default=None, help="local: CPU threads per run (default: cores / parallel)")
    run.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                     help="ray: join a running cluster (default: start a local one)")
    run.add_argument("--cpus-per-run", type=float, default=1.0, help="ray: CPUs per run (default 1)")
    run.add_argument("--gpus-per-run", type=float, default=0.0, help="ray: GPUs per run (default 0)")
    run.add_argument("--workers", type=int, help="data-loading processes per run")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda")
    run.add_argument("--save-every-minutes", type=float, default=DEFAULT_SAVE_EVERY_MINUTES, metavar="M",
                     help=f"checkpoint each run every M minutes too (default {DEFAULT_SAVE_EVERY_MINUTES:g})")
    run.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files in the runs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="study_kind", metavar="KIND", required=True)
    seeds = sub.add_parser("seeds", help=KINDS["seeds"], description=KINDS["seeds"])
    _common(seeds)
    seeds.add_argument("--seeds", default="0-9", help="seeds: N, N-M or a list such as 0,3,5-7 (default 0-9)")

    scaling = sub.add_parser("scaling", help=KINDS["scaling"], description=KINDS["scaling"])
    _common(scaling)
    scaling.add_argument("--depths", help="depths with published layouts, e.g. 18,26,50 (default: the model's)")
    scaling.add_argument("--widths", default="1.0", help="width multipliers, e.g. 0.5,1.0,1.5 (default 1.0)")
    scaling.add_argument("--img-sizes", help="training resolutions, e.g. 64,96,128 (default --img-size/the recipe's)")
    scaling.add_argument("--epochs-list", help="epoch regimes, e.g. 10,30 (default --epochs/the recipe's)")
    scaling.add_argument("--seed", type=int, default=0)
    scaling.add_argument("--regularisation", default="resnet-rs", metavar="TABLE|FILE",
                         help="dropout/drop path by model size: resnet-rs (default), none, or a YAML list of rows")
    scaling.add_argument("--bench-batch", type=int, default=16, help="throughput batch (latency: batch 1)")

    ablation = sub.add_parser("ablation", help=KINDS["ablation"], description=KINDS["ablation"])
    _common(ablation)
    ablation.add_argument("--steps", nargs="+", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                          help="the ladder's steps, each adding its changes to the previous one")
    ablation.add_argument("--ladder", choices=("resnet-rs",), help="a shipped ladder (ResNet-RS Table 1)")
    ablation.add_argument("--ladder-steps", type=int, metavar="N", help="only the shipped ladder's first N steps")
    ablation.add_argument("--seeds", default="0", help="seeds per step (default 0)")

    transfer = sub.add_parser("transfer", help=KINDS["transfer"], description=KINDS["transfer"])
    _common(transfer, data=False, recipe="finetune")
    transfer.add_argument("--weights", nargs="+", required=True, metavar="NAME=FILE",
                          help="pretrained checkpoints (any format resnets loads; FILE 'none': random init)")
    transfer.add_argument("--datasets", nargs="+", required=True, metavar="NAME=DIR", help="data sets to fine-tune on")
    transfer.add_argument("--seed", type=int, default=0)

    show = sub.add_parser("show", help="print the report of a finished or partial study",
                          description="print the report of a finished or partial study (writes nothing)")
    show.add_argument("dir", metavar="DIR")
    show.add_argument("--json", action="store_true", help="the spec and one row per run, as JSON")


def _study(args: argparse.Namespace):
    from ..errors import ResnetsError
    from ..studies.parse import parse_named, parse_numbers, parse_seeds, parse_steps
    from ..studies.spec import AblationStudy, ScalingStudy, SeedsStudy, TransferStudy

    for name in ("epochs", "batch_size", "img_size"):
        value = getattr(args, name)
        if value is not None and value < (32 if name == "img_size" else 1):
            raise ResnetsError(f"--{name.replace('_', '-')} must be at least {32 if name == 'img_size' else 1}, "
                               f"got {value}")
    common = dict(recipe=args.recipe, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                  img_size=args.img_size, sets=list(args.sets), deterministic=args.deterministic,
                  eval_data=[list(p) for p in parse_named(args.eval_data, "--eval-data", "DIR")])
    if args.study_kind != "transfer":
        common["data"] = args.data
    kind = args.study_kind
    if kind == "seeds":
        return SeedsStudy(**common, seeds=parse_seeds(args.seeds))
    if kind == "scaling":
        return ScalingStudy(
            **common, seed=args.seed, regularisation=args.regularisation, bench_batch=args.bench_batch,
            depths=parse_numbers(args.depths, "--depths") if args.depths is not None else None,
            widths=parse_numbers(args.widths, "--widths", float, minimum=0.01),
            img_sizes=parse_numbers(args.img_sizes, "--img-sizes", minimum=32) if args.img_sizes is not None else None,
            epochs_list=parse_numbers(args.epochs_list, "--epochs-list") if args.epochs_list is not None else None)
    if kind == "ablation":
        if args.steps and args.ladder:
            raise ResnetsError("give --steps or --ladder, not both")
        if args.ladder_steps is not None and not args.ladder:
            raise ResnetsError("--ladder-steps needs --ladder")
        steps = parse_steps(args.steps) if args.steps else []
        return AblationStudy(**common, steps=steps, ladder=args.ladder, ladder_steps=args.ladder_steps,
                             seeds=parse_seeds(args.seeds))
    return TransferStudy(**common, seed=args.seed,
                         weights=[list(p) for p in parse_named(args.weights, "--weights", "FILE")],
                         datasets=[list(p) for p in parse_named(args.datasets, "--datasets", "DIR")])


def _executor(args: argparse.Namespace):
    from ..errors import ResnetsError
    from ..studies.executors import LocalExecutor, RayExecutor

    if args.executor == "ray":
        if args.parallel is not None or args.threads is not None:
            raise ResnetsError("--parallel/--threads are for --executor local; Ray uses --cpus-per-run")
        return RayExecutor(args.ray_address, args.cpus_per_run, args.gpus_per_run)
    if args.ray_address is not None:
        raise ResnetsError("--ray-address needs --executor ray")
    gpus: list[int] = []
    if args.device in ("auto", "cuda") or args.device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            gpus = list(range(torch.cuda.device_count()))
        elif args.device != "auto":
            raise ResnetsError(f"--device {args.device}: CUDA is not available here")
    parallel = args.parallel if args.parallel is not None else (len(gpus) or 1)
    return LocalExecutor(parallel=parallel, threads=args.threads, gpus=gpus)


def run(args: argparse.Namespace) -> int:
    from ..studies.runner import run_study, show_study

    if args.study_kind == "show":
        return show_study(args.dir, as_json=args.json)
    import signal

    def stop(signum, frame):  # SIGTERM: stop the runs too (their checkpoints are intact), like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    study = _study(args)
    study.plan()  # every bad value is one line before a cluster starts or a file is written
    executor = _executor(args)
    runtime = dict(workers=args.workers, device=args.device, progress=True, save_every_minutes=args.save_every_minutes,
                   tensorboard=not args.no_tensorboard, retain_memory=not getattr(args, "release_memory", False))
    summary = run_study(study, args.out, executor, runtime=runtime)
    return 0 if summary["failed"] == 0 else 1
