"""`resnets bench MODEL...`: parameters, MACs, latency, throughput and peak memory on this machine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ResnetsError
from ..inference.bench import BenchSettings, format_table, run_bench, write_csv
from .inference_options import add_inference_arguments, apply_threads, precision_of


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one batch size")
    return values


def _model_or_name(text: str, pretrained: str | None = None) -> str | tuple[str, object]:
    """A preset name stays a name; an existing file is loaded as a resnets checkpoint, MODEL.TAG (or a preset
    with --pretrained TAG) as the published weights (their weights and class names matter for int8's top-1)."""
    from .predict import model_from_weights

    path = Path(text)
    if path.is_file():
        if pretrained is not None:
            raise ResnetsError(f"--pretrained {pretrained} loads published weights into preset names; {text} is "
                               "a file (name the preset instead, or drop --pretrained)")
        return path.stem, model_from_weights(path)
    if pretrained is None and "." not in text:
        return text
    from ..weights.hub import split_tag

    preset, tag = split_tag(None if pretrained is None else text, pretrained or text)
    return f"{preset}.{tag}", model_from_weights(None, preset, pretrained=tag)


def _student_classes(entries: list[str | tuple[str, object]]) -> int:
    """The class count the students of a distillation bench share (a teacher predicts one)."""
    from ..models.registry import get_config

    counts = set()
    for entry in entries:
        counts.add(entry[1].config.num_classes if isinstance(entry, tuple) else get_config(entry).num_classes)
    if len(counts) != 1:
        raise ResnetsError(f"--teacher: the models predict different class counts ({sorted(counts)}); bench one "
                           "class count per teacher")
    return counts.pop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="preset names (random weights: speed only), resnets checkpoint files, or published "
                             "weights as MODEL.TAG (resnet50.a1_in1k)")
    parser.add_argument("--pretrained", metavar="TAG", default=None,
                        help="load the weights published under TAG into every named preset (a1_in1k, "
                             "IMAGENET1K_V2; `resnets models --pretrained`)")
    parser.add_argument("--batch-size", type=_int_list, default=(1, 16), metavar="N[,N...]",
                        help="batch sizes to time (default 1,16)")
    parser.add_argument("--img-size", type=int, default=None, help="image size (default: each model's eval size)")
    add_inference_arguments(parser, default_mode="best", several=True)
    parser.add_argument("--train", action="store_true",
                        help="also time the training step of `resnets train` (mixup, forward, loss, backward, update)")
    parser.add_argument("--recipe", default=None,
                        help="recipe whose loss/optimiser/mixup the --train step uses (default rsb-a3)")
    parser.add_argument("--teacher", metavar="WEIGHTS", default=None,
                        help="time the distillation step of `resnets train --teacher` (with --train)")
    parser.add_argument("--teacher-model", metavar="NAME", default=None,
                        help="the teacher's preset (default: the architecture its file records)")
    parser.add_argument("--distill", choices=("kd", "ssld"), default=None,
                        help="distillation mode of the --teacher step (default kd)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    parser.add_argument("--reps", type=int, default=10, help="timed calls (default 10)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--json", action="store_true", help="print the records as JSON (progress goes to stderr)")
    parser.add_argument("--csv", metavar="FILE", default=None, help="also write the records to a CSV file")
    parser.add_argument("--plot", metavar="PNG", default=None, help="draw accuracy vs speed with the Pareto front")
    parser.add_argument("--accuracy-csv", metavar="FILE", default=None,
                        help="CSV with columns model,top1 for --plot (e.g. published numbers)")
    parser.add_argument("--plot-x", choices=("throughput", "latency"), default="throughput",
                        help="x axis of --plot (default throughput)")


def run(args: argparse.Namespace) -> int:
    if args.plot and not args.accuracy_csv:
        raise ResnetsError("--plot needs --accuracy-csv FILE (columns model,top1)")
    accuracy = None
    if args.plot:  # read it before measuring: a bad CSV should not waste minutes
        from ..inference.plot import read_accuracy_csv

        accuracy = read_accuracy_csv(args.accuracy_csv)
    apply_threads(args)
    modes = tuple(m.strip() for m in args.mode.split(",") if m.strip())
    settings = BenchSettings(modes=modes, batch_sizes=args.batch_size, img_size=args.img_size, warmup=args.warmup,
                             reps=args.reps, train=args.train, device=args.device, precision=precision_of(args),
                             calib=args.calib, allow_int8=args.allow_int8, int8_val=args.int8_val)
    train_bench = None
    if args.recipe is not None and not args.train:
        raise ResnetsError("--recipe chooses the training step of --train; add --train")
    if (args.teacher_model or args.distill) and not args.teacher:
        raise ResnetsError("--teacher-model and --distill describe the --teacher of a distillation step; add "
                           "--teacher WEIGHTS")
    if args.teacher and not args.train:
        raise ResnetsError("--teacher times the distillation training step; add --train")
    entries = [_model_or_name(m, args.pretrained) for m in args.models]
    if args.train:
        from functools import partial

        from ..train.bench import DEFAULT_RECIPE, bench_training
        from ..train.recipe import load_recipe

        recipe = load_recipe(args.recipe or DEFAULT_RECIPE)  # a typo fails before minutes of measuring
        extra: dict = {}
        if args.teacher:  # read (and checked) before any measuring
            from ..train.teacher import read_teacher

            teacher = read_teacher(args.teacher, args.teacher_model, num_classes=_student_classes(entries))
            extra = dict(teacher=teacher, distill=args.distill or recipe.distill or "kd",
                         teacher_bn=recipe.teacher_bn)
        train_bench = partial(bench_training, recipe=recipe, **extra)
    records = run_bench(entries, settings, verbose=True, train_bench=train_bench)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
    else:
        print(format_table(records))
    if args.csv:
        write_csv(records, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.plot:
        from ..inference.plot import plot_accuracy_vs_speed, plot_points

        missing = sorted({r.model for r in records} - set(accuracy))
        if missing:
            print(f"note: no accuracy in {args.accuracy_csv} for {', '.join(missing)}: not plotted", file=sys.stderr)
        points = plot_points(records, accuracy, x=args.plot_x)
        front = plot_accuracy_vs_speed(points, args.plot, x=args.plot_x)
        print(f"wrote {args.plot} (Pareto front: {', '.join(p.model for p in front)})", file=sys.stderr)
    return 1 if any(r.error for r in records) else 0
