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
import contextlib
import json
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

import resnets
from resnets.data.mixup import Mixup
from resnets.host_memory import retain_freed_memory
from resnets.train.losses import build_loss
from resnets.train.optim import build_optimizer
from resnets.train.recipe import load_recipe

Step = Callable[[], None]


def _our_step(name: str, img_size: int, batch: int, mode: str) -> Step:
    recipe = load_recipe("rsb-a3")
    model = resnets.create_model(name, num_classes=1000)
    channels_last = mode in ("channels_last", "compile")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = build_optimizer(model, recipe, lr=recipe.lr)
    loss_fn = build_loss(recipe)
    mixup = Mixup(1000, mixup_alpha=recipe.mixup_alpha, cutmix_alpha=recipe.cutmix_alpha,
                  generator=torch.Generator().manual_seed(0), label_smoothing=recipe.label_smoothing)
    forward = torch.compile(model) if mode == "compile" else model
    images = torch.randn(batch, 3, img_size, img_size)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 1000, (batch,))

    def step() -> None:
        mixed, soft = mixup(images, targets)
        loss = loss_fn(forward(mixed), soft)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


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


@dataclass(frozen=True)
class Contender:
    library: str  # "resnets" or "timm"
    mode: str  # "eager", "channels_last" or (resnets only) "compile"
    retain_memory: bool

    @property
    def label(self) -> str:
        label = f"{self.library} {self.mode}"
        if self.library == "timm" and self.retain_memory:
            label += " + retained memory"
        if self.library == "resnets" and not self.retain_memory:
            label += " + released memory"
        return label


def _serve(conn, contender: Contender, name: str, img_size: int, batch: int, threads: int, warmup: int) -> None:
    """Child process: build one contender's step, warm it up, then run a timed step per request."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if contender.retain_memory:
        retain_freed_memory()  # what `resnets train` does before it builds anything
    if contender.library == "resnets":
        step = _our_step(name, img_size, batch, contender.mode)
    else:
        step = _timm_step(name, img_size, batch, channels_last=contender.mode == "channels_last")
    for _ in range(warmup):
        step()
    conn.send("ready")
    while conn.recv() == "step":
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        step()
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        conn.send((wall, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt))
    conn.close()


def measure(contenders: list[Contender], name: str, args: argparse.Namespace) -> dict[Contender, dict[str, float]]:
    """Per contender: median img/s, median system seconds and page faults per step; reps interleave."""
    context = multiprocessing.get_context("spawn")
    workers = []
    try:
        for contender in contenders:  # one at a time, so warm-up (and compilation) runs on a quiet machine
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, contender, name, args.img_size, args.batch_size,
                                                           args.threads, args.warmup), daemon=True)
            process.start()
            child.close()  # so a crashed child reads as EOFError here, not a hang
            if parent.recv() != "ready":
                raise RuntimeError(f"{contender.label} did not start")
            workers.append((contender, parent, process))
        samples: dict[Contender, list[tuple[float, float, int]]] = {c: [] for c in contenders}
        for _ in range(args.reps):
            for contender, conn, _process in workers:
                conn.send("step")
                samples[contender].append(conn.recv())
    finally:
        for _contender, conn, process in workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send("stop")
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return {c: {"img_per_s": args.batch_size / statistics.median(s[0] for s in rows),
                "sys_s_per_step": statistics.median(s[1] for s in rows),
                "faults_per_step": statistics.median(s[2] for s in rows)}
            for c, rows in samples.items()}


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

    contenders = [Contender("timm", "eager", False), Contender("timm", "channels_last", False)]
    if not args.no_policy_row:
        contenders.append(Contender("timm", "channels_last", True))
    contenders += [Contender("resnets", mode, True) for mode in args.modes.split(",")]
    records = []
    for name in args.models.split(","):
        results = measure(contenders, name, args)
        timm_eager = results[contenders[0]]["img_per_s"]
        timm_channels_last = results[contenders[1]]["img_per_s"]
        for contender, result in results.items():
            records.append({"model": name, "img_size": args.img_size, "batch_size": args.batch_size,
                            "contender": contender.label, "img_per_s": round(result["img_per_s"], 2),
                            "vs_timm_eager": round(result["img_per_s"] / timm_eager, 3),
                            "vs_timm_channels_last": round(result["img_per_s"] / timm_channels_last, 3),
                            "sys_s_per_step": round(result["sys_s_per_step"], 3),
                            "page_faults_per_step": int(result["faults_per_step"])})
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
