"""ResNet-50 training speed on one GPU: bf16 autocast, channels_last, optionally torch.compile, on synthetic
batches and through the real input pipeline (GPU JPEG decoding or the decoded cache, batched augmentation
on the GPU). Reports images/s and peak GPU memory for each.

The training step is the engine's TrainStep with RSB-A3's parts (mixup/cutmix, BCE, LAMB); the real
pipeline is ``DeviceBatches`` + ``BatchAugment`` + ``BatchPreprocessor``, what ``resnets train
--augment-on device --decode gpu`` runs. Target (issue 9): >= 3,000 images/s on one H100/H200 with the real
pipeline. ``--device cpu`` with a small model runs the same code on a CPU (a smoke test, not a benchmark).

    python benchmarks/gpu_train.py                          # ResNet-50 @224, batch 256, eager + compiled
    python benchmarks/gpu_train.py --img-size 160 --no-compile --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "imagenette-mini"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _build_step(args: argparse.Namespace, device: torch.device, compiled: bool):
    from resnets.train.bench import build_bench_step
    from resnets.train.recipe import load_recipe
    from resnets.train.step import TrainStep
    from resnets.weights.factory import create_model

    torch.manual_seed(0)
    model = create_model(args.model, num_classes=1000).to(device).to(memory_format=torch.channels_last).train()
    amp = torch.bfloat16 if args.dtype == "bfloat16" else None
    step = build_bench_step(model, load_recipe("rsb-a3"), batch_size=args.batch_size, amp_dtype=amp)
    if compiled:
        step = TrainStep(model, step.optimizer, step.loss_fn, train_model=torch.compile(model), mixup=step.mixup,
                         amp_dtype=amp, grad_clip=step.grad_clip, nominal_batch=args.batch_size)
    return step


def _pipeline(args: argparse.Namespace, device: torch.device, kind: str):
    """An endless stream of (normalised channels_last images, targets) on `device` from the real data."""
    from resnets.data.batch_augment import BatchAugment
    from resnets.data.build import build_dataset
    from resnets.data.cache import CacheConfig, cache_dataset
    from resnets.data.decode import build_decoder
    from resnets.data.device_loader import DeviceBatches
    from resnets.data.loader import BatchPreprocessor
    from resnets.data.samplers import ShuffleSampler
    from resnets.data.transforms import TrainAugConfig

    dataset = build_dataset(str(args.data), "train", None)
    decoder = None
    if kind == "cache":
        dataset, _ = cache_dataset(dataset, CacheConfig("ram"))
    elif device.type == "cuda":
        decoder = build_decoder(args.decode, device, args.batch_size)
    sampler = ShuffleSampler(len(dataset), seed=0, drop_last=False)
    batch = min(args.batch_size, len(dataset))
    aug = BatchAugment(TrainAugConfig(img_size=args.img_size, interpolation="bicubic",
                                      auto_augment="rand-m6-mstd0.5-inc1"))
    batches = DeviceBatches(dataset, sampler, batch, aug, device=device, workers=args.workers,
                            pin_memory=device.type == "cuda", decode=decoder)
    prep = BatchPreprocessor(MEAN, STD, device=device, channels_last=True)
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        for b in batches:
            yield prep(b.images), b.targets.to(device, non_blocking=True)
        epoch += 1


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(step, stream, steps: int, warmup: int, device: torch.device) -> dict:
    for _ in range(warmup):
        step.step(*next(stream))
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    images, start = 0, time.perf_counter()
    for _ in range(steps):
        x, y = next(stream)
        step.step(x, y)
        images += x.shape[0]
    _sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"img_per_s": round(images / seconds, 1), "peak_mem_mb": None if peak is None else round(peak, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--no-compile", action="store_true", help="eager only (compiling takes a minute or two)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--decode", default="gpu", choices=["gpu", "dali"])
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes that read the JPEG bytes")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device: benchmarks/gpu_train.py measures GPU training (use --device cpu for a "
              "smoke test)", file=sys.stderr)
        return 2
    if not (args.data / "train").is_dir():
        print(f"error: no train folder in {args.data}", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "model": args.model, "batch_size": args.batch_size,
            "img_size": args.img_size, "dtype": args.dtype, "channels_last": True, "load_average": os.getloadavg()}
    results = []
    modes = [False] if args.no_compile else [False, True]
    for compiled in modes:
        step = _build_step(args, device, compiled)
        x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 1000, (args.batch_size,), device=device)

        def synthetic(x=x, y=y):
            while True:
                yield x, y

        for data in ("synthetic", "cache", "decode"):
            stream = synthetic() if data == "synthetic" else _pipeline(args, device, data)
            label = {"synthetic": "synthetic", "cache": "real data, decoded cache",
                     "decode": f"real data, --decode {args.decode}"}[data]
            row = {"compile": compiled, "data": label, **_measure(step, stream, args.steps, args.warmup, device)}
            results.append(row)
            print(f"  {'compiled' if compiled else 'eager':>8} {label:<28} {row['img_per_s']:>9.1f} img/s  "
                  f"peak {row['peak_mem_mb']} MB", file=sys.stderr)
    if args.json:
        print(json.dumps({"machine": info, "results": results}, indent=1))
    else:
        print(f"{info['device']}, {args.model} @{args.img_size}, batch {args.batch_size}, {args.dtype}, channels_last")
        print("| compile | data | img/s | peak memory (MB) |\n|---|---|---:|---:|")
        for r in results:
            print(f"| {r['compile']} | {r['data']} | {r['img_per_s']} | {r['peak_mem_mb']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
