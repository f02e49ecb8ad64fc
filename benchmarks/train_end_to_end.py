"""End-to-end training speed: `resnets train` against the training step alone and against timm's loader
feeding the same step, in one run.

For each setting (ResNet-18 at 32 px on cifar10-mini, ResNet-50 at 160 px on imagenette-mini; RSB-A3's
augmentation: RandomResizedCrop bicubic, flip, rand-m6-mstd0.5-inc1, mixup 0.1 / cutmix 1.0, BCE, LAMB;
its AMP in bf16 where the CPU has native bf16, else fp32) these contenders train the same TrainStep:

* step alone: synthetic normalised batches, no data loading (``resnets bench --train``'s number);
* resnets, augment on device: the decoded cache + ``BatchAugment`` on whole batches in the main process
  (what ``resnets train`` does by default), feeding the step;
* resnets, augment in workers: the per-sample transforms in --workers loader processes, feeding the step;
* timm loader: ``timm.data.create_loader`` with the same transforms and --workers, feeding the same step;
* resnets train: the real command (one epoch in a subprocess), its ``train_img_per_s`` (the training loop's
  images/s, evaluation excluded).

In-process contenders alternate (the order flips every repeat) so machine load hits all alike; each timed
segment first discards as many steps as a loader can have prefetched. Reports median images/s and the
ratios to the step alone and to timm; prints the machine's capabilities and load average.

    python benchmarks/train_end_to_end.py                  # both settings (takes ~15 minutes on 2 cores)
    python benchmarks/train_end_to_end.py --quick          # ResNet-18 @32 on a 1,280-image subset
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SETTINGS = {
    "resnet18@32": dict(model="resnet18", data=SHARED / "cifar10-mini", img_size=32, num_classes=10),
    "resnet50@160": dict(model="resnet50", data=SHARED / "imagenette-mini", img_size=160, num_classes=10),
}


def _subset(data: Path, train_per_class: int, val_per_class: int, root: Path) -> Path:
    """A smaller copy of an image folder made of symbolic links (nothing is copied)."""
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for class_dir in sorted((data / split).iterdir()):
            target = root / split / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            for image in sorted(class_dir.iterdir())[:count]:
                (target / image.name).symlink_to(image.resolve())
    return root


def _amp_dtype() -> torch.dtype | None:
    from resnets.hardware import capabilities

    return torch.bfloat16 if capabilities(torch.device("cpu")).is_native("bf16") else None


def _step(setting: dict, batch: int):
    from resnets.train.bench import build_bench_step
    from resnets.train.recipe import load_recipe
    from resnets.weights.factory import create_model

    torch.manual_seed(0)
    model = create_model(setting["model"], num_classes=setting["num_classes"]).train()
    return build_bench_step(model, load_recipe("rsb-a3"), batch_size=batch, amp_dtype=_amp_dtype())


def _aug_config(img_size: int):
    from resnets.data.transforms import TrainAugConfig

    return TrainAugConfig(img_size=img_size, interpolation="bicubic", hflip=0.5, auto_augment="rand-m6-mstd0.5-inc1")


def _ours_device(data: Path, img_size: int, batch: int, workers: int):
    from resnets.data.batch_augment import BatchAugment
    from resnets.data.build import build_dataset
    from resnets.data.cache import CacheConfig, cache_dataset
    from resnets.data.device_loader import DeviceBatches
    from resnets.data.loader import BatchPreprocessor
    from resnets.data.samplers import ShuffleSampler

    dataset, _ = cache_dataset(build_dataset(str(data), "train", None), CacheConfig("ram"))
    sampler = ShuffleSampler(len(dataset), seed=0, drop_last=True)
    batches = DeviceBatches(dataset, sampler, batch, BatchAugment(_aug_config(img_size)), device=torch.device("cpu"))
    prep = BatchPreprocessor(MEAN, STD)
    return _epochs(sampler, lambda: ((prep(b.images), b.targets) for b in batches)), 0


def _ours_workers(data: Path, img_size: int, batch: int, workers: int):
    from resnets.data.build import build_dataset
    from resnets.data.cache import CacheConfig, cache_dataset
    from resnets.data.loader import BatchPreprocessor, build_loader
    from resnets.data.samplers import ShuffleSampler
    from resnets.data.transforms import build_train_transform

    dataset, _ = cache_dataset(build_dataset(str(data), "train", build_train_transform(_aug_config(img_size))),
                               CacheConfig("ram"))
    sampler = ShuffleSampler(len(dataset), seed=0, drop_last=True)
    loader = build_loader(dataset, batch_size=batch, sampler=sampler, num_workers=workers, drop_last=True,
                          persistent_workers=workers > 0)
    prep = BatchPreprocessor(MEAN, STD)
    return _epochs(sampler, lambda: ((prep(b.images), b.targets) for b in loader)), 2 * workers


def _timm(data: Path, img_size: int, batch: int, workers: int):
    from timm.data import create_dataset, create_loader

    dataset = create_dataset("", root=str(data / "train"), split="train", is_training=True)
    loader = create_loader(dataset, input_size=(3, img_size, img_size), batch_size=batch, is_training=True,
                           scale=(0.08, 1.0), interpolation="bicubic", hflip=0.5,
                           auto_augment="rand-m6-mstd0.5-inc1", re_prob=0.0, mean=MEAN, std=STD,
                           num_workers=workers, device=torch.device("cpu"), use_prefetcher=True,
                           persistent_workers=workers > 0)
    return _epochs(None, lambda: iter(loader)), 2 * workers


def _epochs(sampler, make):
    """An endless (images, targets) stream over epochs (the sampler's epoch advances)."""
    def stream():
        epoch = 0
        while True:
            if sampler is not None:
                sampler.set_epoch(epoch)
            yield from make()
            epoch += 1
    return stream()


def _timed(step, stream, steps: int, discard: int, batch: int) -> float:
    for _ in range(discard):
        images, targets = next(stream)
        step.step(images, targets)
    start = time.perf_counter()
    for _ in range(steps):
        images, targets = next(stream)
        step.step(images, targets)
    return steps * batch / (time.perf_counter() - start)


def _train_command(setting: dict, data: Path, batch: int, workers: int, out: Path) -> float:
    command = [sys.executable, "-m", "resnets", "train", "--data", str(data), "--recipe", "rsb-a3",
               "--model", setting["model"], "--img-size", str(setting["img_size"]), "--batch-size", str(batch),
               "--epochs", "1", "--out", str(out), "--no-progress", "--no-tensorboard", "--workers", str(workers),
               "--save-every-minutes", "0"]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"resnets train failed: {result.stderr[-2000:]}")
    return float(json.loads((out / "summary.json").read_text())["train_img_per_s"])


def run_setting(name: str, setting: dict, args: argparse.Namespace, scratch: Path) -> dict:
    data = setting["data"]
    if args.quick:
        data = _subset(data, 128, 8, scratch / f"{name}-subset")
    batch = args.batch_size
    step = _step(setting, batch)
    synthetic = torch.randn(batch, 3, setting["img_size"], setting["img_size"])
    labels = torch.randint(0, setting["num_classes"], (batch,))

    def synthetic_stream():
        while True:
            yield synthetic, labels

    contenders = {"step alone": (synthetic_stream(), 0),
                  "resnets, augment on device": _ours_device(data, setting["img_size"], batch, args.workers),
                  "resnets, augment in workers": _ours_workers(data, setting["img_size"], batch, args.workers)}
    if not args.no_timm:
        contenders["timm loader"] = _timm(data, setting["img_size"], batch, args.workers)
    rates: dict[str, list[float]] = {key: [] for key in contenders}
    train_rates: list[float] = []
    for repeat in range(args.repeats):
        order = list(contenders) if repeat % 2 == 0 else list(reversed(contenders))
        for key in order:
            stream, discard = contenders[key]
            rates[key].append(_timed(step, stream, args.steps, max(discard, 1), batch))
            print(f"  {name} {key}: {rates[key][-1]:.1f} img/s", file=sys.stderr)
        train_rates.append(_train_command(setting, data, batch, args.workers, scratch / f"{name}-run{repeat}"))
        print(f"  {name} resnets train: {train_rates[-1]:.1f} img/s", file=sys.stderr)
    median = {key: statistics.median(values) for key, values in rates.items()}
    median["resnets train"] = statistics.median(train_rates)
    alone = median["step alone"]
    result = {"setting": name, "data": str(setting["data"].relative_to(REPO.parent)), "batch_size": batch,
              "img_size": setting["img_size"], "img_per_s": {k: round(v, 1) for k, v in median.items()},
              "vs_step_alone": {k: round(v / alone, 3) for k, v in median.items()},
              "all_img_per_s": {k: [round(x, 1) for x in v] for k, v in {**rates, "resnets train": train_rates}.items()}}
    if "timm loader" in median:
        result["vs_timm_loader"] = {k: round(v / median["timm loader"], 3) for k, v in median.items()}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="loader processes for the worker-based loaders")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per segment")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="ResNet-18 @32 on a subset, few steps")
    parser.add_argument("--no-timm", action="store_true", help="skip timm's loader (timm not installed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    # The in-process contenders run under the memory policy `resnets train` uses (freed host memory kept for
    # reuse): without it every step page-faults its activations in again and the step alone measures ~1.1-1.4x
    # below the real command (docs/benchmarks.md, host memory), which would flatter the command.
    from resnets.host_memory import retain_freed_memory

    print(f"host memory: {retain_freed_memory()}", file=sys.stderr)
    settings = args.settings or (["resnet18@32"] if args.quick else list(SETTINGS))
    args.steps = args.steps or (6 if args.quick else 20)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if not args.no_timm:
        try:
            import timm  # noqa: F401
        except ImportError:
            args.no_timm = True
    from resnets.hardware import capabilities

    caps = capabilities(torch.device("cpu"))
    header = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "capabilities": caps.summary(),
              "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in settings:
            results.append(run_setting(name, SETTINGS[name], args, Path(scratch)))
    header["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps({"machine": header, "results": results}, indent=1))
        return 0
    print(f"machine: {header['capabilities']}; torch {header['torch']}, {header['threads']} threads, "
          f"load average {header['load_average_start']} -> {header['load_average_end']}")
    for r in results:
        print(f"\n{r['setting']} on {r['data']}, batch {r['batch_size']}, median of {args.repeats} "
              f"({args.steps} steps per segment)")
        print("| contender | img/s | vs step alone | vs timm loader |\n|---|---:|---:|---:|")
        for key, value in r["img_per_s"].items():
            timm_ratio = r.get("vs_timm_loader", {}).get(key)
            print(f"| {key} | {value:.1f} | {r['vs_step_alone'][key]:.2f} | "
                  f"{'' if timm_ratio is None else f'{timm_ratio:.2f}'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
