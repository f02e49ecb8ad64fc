"""What the host-memory policy (resnets.host_memory) is worth at inference: the same model, two processes.

`resnets eval`, `bench` and `predict` keep freed host memory for reuse unless given --release-memory. This
runs one inference configuration twice, each in a fresh process (the policy is process-wide and cannot be
undone): once with the C library's default, once retained. Batches alternate between the two processes;
medians are reported with the kernel time and page faults of a batch.

    python benchmarks/host_memory.py                       # ResNet-50, channels_last, batch 16 @ 224
    python benchmarks/host_memory.py --model resnet18 --batch-size 64
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

import resnets
from process_runner import ProcessContender, measure_in_processes
from resnets.inference.modes import prepare


def _inference_step(model_name: str, mode: str, batch_size: int, img_size: int) -> Callable[[], object]:
    forward = prepare(resnets.create_model(model_name).eval(), mode, img_size=img_size, batch_size=batch_size,
                      verbose=False)
    images = torch.randn(batch_size, 3, img_size, img_size)

    def step() -> object:
        with torch.inference_mode():
            return forward(images)

    return step


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

    shape = (args.model, args.mode, args.batch_size, args.img_size)
    contenders = [ProcessContender("default (released)", _inference_step, shape, retain_memory=False),
                  ProcessContender("retained", _inference_step, shape, retain_memory=True)]
    results = measure_in_processes(contenders, reps=args.reps, warmup=args.warmup, threads=args.threads)
    rates = {label: args.batch_size / stats.seconds for label, stats in results.items()}
    print(f"{args.model} {args.mode}, batch {args.batch_size} @ {args.img_size}px, {args.threads} threads, "
          f"median of {args.reps} interleaved reps (torch {torch.__version__})")
    print("| host memory | img/s | kernel s/batch | page faults/batch |")
    print("|---|---:|---:|---:|")
    for label, stats in results.items():
        print(f"| {label} | {rates[label]:.2f} | {stats.kernel_seconds:.3f} | {stats.page_faults} |")
    print(f"retained / default: {rates['retained'] / rates['default (released)']:.2f}x")


if __name__ == "__main__":
    main()
