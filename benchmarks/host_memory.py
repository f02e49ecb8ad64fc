"""What the host-memory policy (resnets.host_memory) is worth at inference: the same model, two processes.

`resnets eval`, `bench` and `predict` keep freed host memory for reuse unless given --release-memory. This
runs one inference configuration twice, each in a fresh process (the policy is process-wide and cannot be
undone): once with the C library's default, once retained. Steps alternate between the two processes;
medians are reported with the kernel time and page faults of a step.

    python benchmarks/host_memory.py                       # ResNet-50, channels_last, batch 16 @ 224
    python benchmarks/host_memory.py --model resnet18 --batch-size 64
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time

import torch

import resnets
from resnets.inference.modes import prepare


def _serve(conn, retain: bool, args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    if retain:
        resnets.retain_freed_memory()
    model = resnets.create_model(args.model).eval()
    forward = prepare(model, args.mode, img_size=args.img_size, batch_size=args.batch_size, verbose=False)
    images = torch.randn(args.batch_size, 3, args.img_size, args.img_size)
    with torch.inference_mode():
        for _ in range(args.warmup):
            forward(images)
        conn.send("ready")
        while conn.recv() == "step":
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            forward(images)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
            conn.send((wall, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--mode", default="channels_last", help="an inference mode (see `resnets bench`)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    workers = {}
    for label, retain in (("default (released)", False), ("retained", True)):
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child, retain, args), daemon=True)
        process.start()
        child.close()  # so a crashed child reads as EOFError here, not a hang
        if parent.recv() != "ready":
            raise RuntimeError(f"{label} did not start")
        workers[label] = (parent, process)
    samples: dict[str, list[tuple[float, float, int]]] = {label: [] for label in workers}
    for _ in range(args.reps):
        for label, (conn, _process) in workers.items():
            conn.send("step")
            samples[label].append(conn.recv())
    for conn, process in workers.values():
        conn.send("stop")
        process.join(timeout=30)

    rates = {label: args.batch_size / statistics.median(s[0] for s in rows) for label, rows in samples.items()}
    print(f"{args.model} {args.mode}, batch {args.batch_size} @ {args.img_size}px, {args.threads} threads, "
          f"median of {args.reps} interleaved reps (torch {torch.__version__})")
    print("| host memory | img/s | kernel s/batch | page faults/batch |")
    print("|---|---:|---:|---:|")
    for label, rows in samples.items():
        print(f"| {label} | {rates[label]:.2f} | {statistics.median(s[1] for s in rows):.3f} | "
              f"{int(statistics.median(s[2] for s in rows))} |")
    print(f"retained / default: {rates['retained'] / rates['default (released)']:.2f}x")


if __name__ == "__main__":
    main()
