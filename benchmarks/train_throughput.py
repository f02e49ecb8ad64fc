"""Training-step throughput: resnets against timm, same network, same recipe pieces, interleaved in one run.

One step = forward, loss, backward, optimiser step on a synthetic batch (data loading is measured
separately by benchmarks/input_pipeline.py). Both sides use the RSB-A3 pieces: BCE loss on mixup/cutmix
targets and LAMB. Ours runs in the modes `resnets train` offers (eager, channels_last, compiled); timm runs as
its train.py does by default (eager, NCHW) and with --channels-last.

Every contender lives in its own process, set up the way its trainer sets up a process: `resnets train` keeps
freed host memory for reuse (resnets.host_memory), timm's train.py leaves the C library's default. An extra
row, timm with that same memory policy, shows how much of the difference the policy alone explains.
Repetitions alternate between the processes (one steps while the others wait) so a noisy machine penalises
all alike; medians and ratios are reported, with the system (kernel) time and page faults of a step.

    python benchmarks/train_throughput.py                      # ResNet-50 @160 and ResNet-18 @160, batch 32
    python benchmarks/train_throughput.py --quick --json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch

import resnets
from process_runner import ProcessContender, measure_in_processes
from resnets.train.bench import build_bench_step
from resnets.train.recipe import load_recipe

Step = Callable[[], None]


def _our_step(name: str, img_size: int, batch: int, mode: str) -> Step:
    """The engine's own TrainStep (what `resnets train` and `resnets bench --train` run) with RSB-A3's parts."""
    recipe = load_recipe("rsb-a3")
    model = resnets.create_model(name, num_classes=1000)
    channels_last = mode in ("channels_last", "compile")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    step = build_bench_step(model, recipe, batch_size=batch)
    if mode == "compile":
        step.train_model = torch.compile(model)
    images = torch.randn(batch, 3, img_size, img_size)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 1000, (batch,))
    return lambda: step.step(images, targets)


def _timm_step(name: str, img_size: int, batch: int, channels_last: bool) -> Step:
    import timm
    from timm.data import Mixup as TimmMixup
    from timm.loss import BinaryCrossEntropy
    from timm.optim import create_optimizer_v2

    recipe = load_recipe("rsb-a3")
    model = timm.create_model(name, num_classes=1000)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = create_optimizer_v2(model, opt="lamb", lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_fn = BinaryCrossEntropy(target_threshold=recipe.bce_target_threshold, smoothing=recipe.label_smoothing)
    mixup = TimmMixup(mixup_alpha=recipe.mixup_alpha, cutmix_alpha=recipe.cutmix_alpha,
                      label_smoothing=recipe.label_smoothing, num_classes=1000)
    images = torch.randn(batch, 3, img_size, img_size)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 1000, (batch,))

    def step() -> None:
        mixed, soft = mixup(images.clone(), targets)  # timm mixes in place
        loss = loss_fn(model(mixed), soft)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _label(library: str, mode: str, retain_memory: bool) -> str:
    label = f"{library} {mode}"
    if library == "timm" and retain_memory:
        label += " + retained memory"
    return label


def _contenders(name: str, args: argparse.Namespace) -> list[ProcessContender]:
    """timm as its train.py runs (default memory policy), then ours as `resnets train` runs (retained)."""
    shape = (name, args.img_size, args.batch_size)
    timm_runs = [("eager", False), ("channels_last", False)] + ([] if args.no_policy_row else [("channels_last", True)])
    contenders = [ProcessContender(_label("timm", mode, retain), _timm_step, (*shape, mode == "channels_last"), retain)
                  for mode, retain in timm_runs]
    contenders += [ProcessContender(_label("resnets", mode, True), _our_step, (*shape, mode), True)
                   for mode in args.modes.split(",")]
    return contenders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,resnet18")
    parser.add_argument("--img-size", type=int, default=160, help="RSB-A3 trains at 160")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--modes", default="eager,channels_last,compile", help="our modes to run")
    parser.add_argument("--no-policy-row", action="store_true",
                        help="leave out the row of timm with our memory policy")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="resnet18 at 96 px, batch 16, 3 reps, no compile")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.models, args.img_size, args.batch_size, args.reps, args.modes = "resnet18", 96, 16, 3, \
            "eager,channels_last"

    records = []
    for name in args.models.split(","):
        contenders = _contenders(name, args)
        results = measure_in_processes(contenders, reps=args.reps, warmup=args.warmup, threads=args.threads)
        timm_eager = args.batch_size / results[contenders[0].label].seconds
        timm_channels_last = args.batch_size / results[contenders[1].label].seconds
        for label, stats in results.items():
            rate = args.batch_size / stats.seconds
            records.append({"model": name, "img_size": args.img_size, "batch_size": args.batch_size,
                            "contender": label, "img_per_s": round(rate, 2),
                            "vs_timm_eager": round(rate / timm_eager, 3),
                            "vs_timm_channels_last": round(rate / timm_channels_last, 3),
                            "sys_s_per_step": round(stats.kernel_seconds, 3),
                            "page_faults_per_step": stats.page_faults})
    if args.json:
        print(json.dumps(records, indent=2))
        return
    print(f"training step, synthetic batch {args.batch_size} @ {args.img_size}px, {args.threads} threads, "
          f"median of {args.reps} interleaved reps, one process per contender (torch {torch.__version__})")
    print("| model | contender | img/s | vs timm eager | vs timm channels_last | kernel s/step | page faults/step |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in records:
        print(f"| {r['model']} | {r['contender']} | {r['img_per_s']:.2f} | {r['vs_timm_eager']:.2f}x | "
              f"{r['vs_timm_channels_last']:.2f}x | {r['sys_s_per_step']:.2f} | {r['page_faults_per_step']} |")


if __name__ == "__main__":
    main()
