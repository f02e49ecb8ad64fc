"""Input pipeline throughput: our loader vs timm's, same data, same RSB-A3 transforms, same workers.

Both pipelines read the same image folder, decode, apply RSB-A3's training transforms (RandomResizedCrop
to --img-size with scale 0.08-1 and bicubic interpolation, horizontal flip, RandAugment
rand-m6-mstd0.5-inc1; no mixup, no random erasing) and deliver normalised float32 batches on the CPU:
ours through ``build_loader`` + ``BatchPreprocessor``, timm's through ``create_dataset`` +
``create_loader`` (its prefetcher normalises). Two more rows show the paths of issue 9: "resnets cache"
(the same per-sample transforms in workers, reading the decoded cache instead of decoding) and "resnets
batched" (decoded cache + ``BatchAugment`` on whole batches in this process, no workers: what ``resnets
train`` runs by default). Timed passes alternate between the pipelines in one process
(the order flips every repeat) so machine noise hits both; the first pass of each (worker start-up) is
not timed. Reports the median images/s of --repeats passes and the ratio ours / timm.

    .venv/bin/python benchmarks/input_pipeline.py --workers 2 --batch-size 64 --repeats 5 [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "imagenette-mini"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RSB_A3_AUGMENT = "rand-m6-mstd0.5-inc1"  # docs/reference.md §3.1, RSB A3


def _epochs(sampler, loader):
    """An iterator factory over `loader`'s normalised batches, one new epoch (sampler order) per call."""
    from resnets.data.loader import BatchPreprocessor

    prep = BatchPreprocessor(IMAGENET_MEAN, IMAGENET_STD, device="cpu")
    epoch = [0]

    def batches():
        sampler.set_epoch(epoch[0])
        epoch[0] += 1
        for batch in loader:
            yield prep(batch.images)

    return batches


def _worker_batches(dataset, args: argparse.Namespace):
    """Our loader over `dataset` in --workers processes, normalised on the batch: (epoch iterator, size)."""
    from resnets.data.loader import build_loader
    from resnets.data.samplers import ShuffleSampler

    sampler = ShuffleSampler(len(dataset), seed=0)
    loader = build_loader(dataset, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                          drop_last=True, persistent_workers=args.workers > 0)
    return _epochs(sampler, loader), len(dataset)


def build_ours(data: Path, args: argparse.Namespace):
    from resnets.data.build import build_dataset
    from resnets.data.transforms import TrainAugConfig, build_train_transform

    cfg = TrainAugConfig(img_size=args.img_size, scale=(0.08, 1.0), interpolation="bicubic", hflip=0.5,
                         auto_augment=RSB_A3_AUGMENT)
    dataset = build_dataset(str(data), "train", build_train_transform(cfg))
    return _worker_batches(dataset, args)


def build_ours_cached(data: Path, args: argparse.Namespace):
    """The per-sample transforms in workers, reading the decoded cache (``--cache ram --augment-on workers``)."""
    from resnets.data.build import build_dataset
    from resnets.data.cache import CacheConfig, cache_dataset
    from resnets.data.transforms import build_train_transform

    dataset, _ = cache_dataset(build_dataset(str(data), "train", build_train_transform(_config(args))),
                               CacheConfig("ram"))
    return _worker_batches(dataset, args)


def build_ours_device(data: Path, args: argparse.Namespace):
    """The decoded cache + batched augmentation in this process, no workers (``resnets train``'s default)."""
    from resnets.data.batch_augment import BatchAugment
    from resnets.data.build import build_dataset
    from resnets.data.cache import CacheConfig, cache_dataset
    from resnets.data.device_loader import DeviceBatches
    from resnets.data.samplers import ShuffleSampler

    dataset, _ = cache_dataset(build_dataset(str(data), "train", None), CacheConfig("ram"))
    sampler = ShuffleSampler(len(dataset), seed=0, drop_last=True)
    loader = DeviceBatches(dataset, sampler, args.batch_size, BatchAugment(_config(args)), device=torch.device("cpu"))
    return _epochs(sampler, loader), len(dataset)


def _config(args: argparse.Namespace):
    from resnets.data.transforms import TrainAugConfig

    return TrainAugConfig(img_size=args.img_size, scale=(0.08, 1.0), interpolation="bicubic", hflip=0.5,
                          auto_augment=RSB_A3_AUGMENT)


def build_timm(data: Path, args: argparse.Namespace):
    from timm.data import create_dataset, create_loader

    dataset = create_dataset("", root=str(data / "train"), split="train", is_training=True)
    loader = create_loader(
        dataset, input_size=(3, args.img_size, args.img_size), batch_size=args.batch_size, is_training=True,
        scale=(0.08, 1.0), interpolation="bicubic", hflip=0.5, auto_augment=RSB_A3_AUGMENT, re_prob=0.0,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, num_workers=args.workers, device=torch.device("cpu"),
        use_prefetcher=True, persistent_workers=args.workers > 0,
    )

    def batches():
        for images, _targets in loader:
            yield images

    return batches, len(dataset)


def _process_cpu_seconds(pid: int | str) -> float:
    """User + system CPU time of one process from /proc (Linux); 0.0 when it is gone or unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_seconds() -> float:
    """CPU time of this process and its child processes (the loader workers), or NaN off Linux.

    Wall-clock rates swing with whatever else runs on the machine; the CPU time the pipeline burns per
    image is a steadier measure of its cost, so both are reported.
    """
    if not Path("/proc/self/task").is_dir():
        return math.nan
    children: set[str] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            children.update((task / "children").read_text().split())
    return _process_cpu_seconds("self") + sum(_process_cpu_seconds(pid) for pid in children)


def timed_pass(batches, images_wanted: int, img_size: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, images) to deliver whole epochs until at least `images_wanted` images.

    Epochs are never abandoned half-way: a loader left mid-epoch keeps its workers busy with prefetched
    batches, and that work would be charged to the other loader's timing.
    """
    seen = 0
    cpu_start, start = cpu_seconds(), time.perf_counter()
    while seen < images_wanted:
        for images in batches():
            assert images.dtype == torch.float32 and images.shape[-1] == img_size
            seen += images.shape[0]
    wall = time.perf_counter() - start
    return wall, cpu_seconds() - cpu_start, seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="image folder with train/<class>/*")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--img-size", type=int, default=160, help="train crop size (RSB-A3: 160)")
    parser.add_argument("--images", type=int, default=0,
                        help="images per timed pass, rounded up to whole epochs (default: one epoch)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if not (args.data / "train").is_dir():
        print(f"error: no train folder in {args.data}", file=sys.stderr)
        return 2

    pipelines = {"resnets": build_ours(args.data, args), "timm": build_timm(args.data, args),
                 "resnets cache": build_ours_cached(args.data, args),
                 "resnets batched": build_ours_device(args.data, args)}
    dataset_len = pipelines["resnets"][1]
    epoch = (dataset_len // args.batch_size) * args.batch_size  # both loaders drop the last partial batch
    if epoch == 0:
        print(f"error: --batch-size {args.batch_size} exceeds the {dataset_len} training images", file=sys.stderr)
        return 2
    per_pass = epoch * max(1, math.ceil(args.images / epoch))
    for batches, _ in pipelines.values():  # warm-up epoch: worker start-up, first decode, page cache
        timed_pass(batches, 1, args.img_size)

    rates: dict[str, list[float]] = {name: [] for name in pipelines}
    cpu_ms: dict[str, list[float]] = {name: [] for name in pipelines}
    for repeat in range(args.repeats):
        order = list(pipelines) if repeat % 2 == 0 else list(reversed(pipelines))
        for name in order:
            seconds, cpu, seen = timed_pass(pipelines[name][0], per_pass, args.img_size)
            rates[name].append(seen / seconds)
            cpu_ms[name].append(1000.0 * cpu / seen)

    median = {name: statistics.median(values) for name, values in rates.items()}
    median_cpu = {name: statistics.median(values) for name, values in cpu_ms.items()}
    result = {
        "benchmark": "input_pipeline",
        "data": str(args.data),
        "transforms": f"RRC {args.img_size} scale 0.08-1 bicubic, hflip 0.5, {RSB_A3_AUGMENT}",
        "workers": args.workers, "batch_size": args.batch_size, "images_per_pass": per_pass,
        "repeats": args.repeats,
        "img_per_s": {name: round(v, 1) for name, v in median.items()},
        "all_img_per_s": {name: [round(v, 1) for v in values] for name, values in rates.items()},
        "ratio": round(median["resnets"] / median["timm"], 3),
        "ratios_vs_timm": {name: round(v / median["timm"], 3) for name, v in median.items()},
        "cpu_ms_per_image": {name: round(v, 3) for name, v in median_cpu.items()},
        "cpu_ratio": round(median_cpu["timm"] / median_cpu["resnets"], 3),
        "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    import timm
    import torchvision

    result.update(torchvision=torchvision.__version__, timm=timm.__version__)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"input pipeline: {result['transforms']}; {args.workers} workers, batch {args.batch_size}, "
          f"{per_pass} images per pass, median of {args.repeats}")
    print(f"{'loader':<16} {'img/s (median)':>15} {'min':>8} {'max':>8} {'CPU ms/img':>11}")
    for name, values in rates.items():
        print(f"{name:<16} {median[name]:>15.1f} {min(values):>8.1f} {max(values):>8.1f} "
              f"{median_cpu[name]:>11.2f}")
    for name in pipelines:
        print(f"  {name} / timm: {result['ratios_vs_timm'][name]:.2f}x")
    print(f"throughput ratio resnets / timm: {result['ratio']:.2f}x   "
          f"(CPU cost per image, timm / resnets: {result['cpu_ratio']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
