"""Training quality side by side: `resnets train` against a loop built from timm's own parts.

Same recipe (resolved once by our spec resolver, then handed to both sides as final numbers), same data,
same budget (epochs, batch, optimiser steps), same seeds, and by default the same initial weights (timm's
resnet init drawn with the seed, given to `resnets train --weights` and loaded by the timm loop). Each run is
its own process: ours is the real CLI (`python -m resnets train`), timm's is benchmarks/timm_train_loop.py.
By default the two runs of a seed train at the same time, one single-threaded process each, so that both see
the same machine load (`--sequential` runs them one after the other, alternating which goes first).

Data: the training images of the folder are split per class by sorted file name; the last
`--holdout-per-class` images of each class are set aside and never trained on nor validated on by either side
("held out"); `val/` is what both sides validate on after every epoch. Both sides' final weights (after the last
step, not the best epoch, so no side selects on val) are scored by one evaluator (timm's eval pipeline at the
recipe's evaluation size) on val and on the held-out images.

    python benchmarks/train_quality_vs_timm.py     # ResNet-18 @32 px, RSB-A3, 4000 CIFAR images, 4 epochs, 3 seeds
    python benchmarks/train_quality_vs_timm.py --seeds 0,1,2,3,4 --epochs 5 --json
    python benchmarks/train_quality_vs_timm.py --smoke               # a few images, 2 steps a side, 2 seeds

Verdict: ours is worse "beyond seed noise" when its mean is lower and a one-sided Welch t-test gives p < 0.05.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from resnets.hardware import capabilities
from resnets.train.options import TrainOptions
from resnets.train.schedule import WarmupSchedule
from resnets.train.spec import RunSpec, resolve_spec

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
SUPPORTED = "lamb/adamw/sgd, cosine schedule, bce or ce loss, no EMA, no repeated augmentation, no accumulation"


class Refused(Exception):
    """A setting the timm loop cannot reproduce faithfully: the comparison would not be like for like."""


# --- data ---------------------------------------------------------------------------------------------------
def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def build_splits(data: Path, work: Path, *, holdout_per_class: int, train_per_class: int | None,
                 val_per_class: int | None) -> dict[str, Any]:
    """Symlink trees (nothing copied): work/data/{train,val}/<class>/ for both trainers, work/holdout/<class>/
    for the final score only. Returns the roots and the image counts."""
    for split in ("train", "val"):
        if not (data / split).is_dir():
            raise Refused(f"{data} has no {split}/ folder (an image folder with train/ and val/ is needed)")
    counts = {"train": 0, "val": 0, "holdout": 0}
    classes = sorted(p.name for p in (data / "train").iterdir() if p.is_dir())
    for name in classes:
        files = _images(data / "train" / name)
        if len(files) <= holdout_per_class:
            raise Refused(f"class {name} has {len(files)} training images, not more than --holdout-per-class "
                          f"{holdout_per_class}")
        trained = files[:len(files) - holdout_per_class][:train_per_class]
        held = files[len(files) - holdout_per_class:]
        val = _images(data / "val" / name)[:val_per_class]
        for split, chosen in (("data/train", trained), ("holdout", held), ("data/val", val)):
            target = work / split / name
            target.mkdir(parents=True, exist_ok=True)
            for path in chosen:
                (target / path.name).symlink_to(path.resolve())
            counts[split.split("/")[-1]] += len(chosen)
    return {"data_root": str(work / "data"), "holdout_root": str(work / "holdout"), "classes": classes,
            "counts": counts}


# --- the two configurations -----------------------------------------------------------------------------------
def resolve_ours(args: argparse.Namespace, data_root: str) -> RunSpec:
    return resolve_spec(TrainOptions(data=data_root, recipe=args.recipe, model=args.model, epochs=args.epochs,
                                     batch_size=args.batch_size, img_size=args.img_size, seed=0))


def amp_dtype_name(enabled: bool) -> str:
    """What `resnets train` autocasts to on this CPU (checked against its run.json after every run)."""
    return "bfloat16" if enabled and capabilities().is_native("bf16") else "float32"


def timm_config(spec: RunSpec, *, train_images: int, threads: int, workers: int) -> dict[str, Any]:
    """The timm loop's settings, each one derived from the resolved recipe (Refused where timm's parts would
    run something else)."""
    r = spec.recipe
    if r.ema_decay:
        raise Refused(f"recipe {r.name} uses EMA; the timm loop here has none ({SUPPORTED})")
    if r.aug_repeats > 1 or r.grad_accum > 1 or r.layer_decay not in (None, 1.0) or r.grad_clip:
        raise Refused(f"recipe {r.name} uses repeated augmentation, accumulation, layer decay or clipping "
                      f"({SUPPORTED})")
    if r.schedule != "cosine" or r.optimizer not in ("lamb", "adamw", "sgd") or r.loss not in ("bce", "ce"):
        raise Refused(f"recipe {r.name}: {r.optimizer}/{r.schedule}/{r.loss} is not covered ({SUPPORTED})")
    if r.interpolation == "random":
        raise Refused("interpolation 'random' is drawn differently by the two pipelines; choose one")
    batch = spec.global_batch
    steps_per_epoch = train_images // batch
    if steps_per_epoch < 1:
        raise Refused(f"{train_images} training images make no batch of {batch}")
    opt_kwargs: dict[str, Any]
    if r.optimizer == "lamb":
        timm_opt, opt_kwargs = "lamb", {"betas": list(r.betas), "eps": r.eps, "max_grad_norm": r.lamb_max_grad_norm}
    elif r.optimizer == "adamw":
        timm_opt, opt_kwargs = "adamw", {"betas": list(r.betas), "eps": r.eps}
    else:  # timm's "sgd" is Nesterov, "momentum" is not
        timm_opt, opt_kwargs = ("sgd" if r.nesterov else "momentum"), {"momentum": r.momentum}
    return {
        "model": spec.model_name, "img_size": r.img_size, "eval_img_size": spec.eval_img_size,
        "eval_crop_pct": r.eval_crop_pct, "interpolation": r.interpolation,
        "eval_interpolation": r.resolved_eval_interpolation, "rrc_scale": list(r.rrc_scale),
        "rrc_ratio": list(r.rrc_ratio), "hflip": r.hflip, "auto_augment": r.auto_augment, "re_prob": r.re_prob,
        "re_mode": r.re_mode, "timm_opt": timm_opt, "opt_kwargs": opt_kwargs, "lr": spec.lr,
        "weight_decay": r.weight_decay, "no_weight_decay_norm_bias": r.no_weight_decay_norm_bias,
        "epochs": r.epochs, "batch_size": batch, "steps_per_epoch": steps_per_epoch,
        "warmup_steps": round(r.warmup_epochs * steps_per_epoch), "warmup_lr": r.warmup_start_factor * spec.lr,
        "min_lr": min(r.min_lr, spec.lr), "loss": r.loss, "bce_target_threshold": r.bce_target_threshold,
        "label_smoothing": r.label_smoothing, "mixup_alpha": r.mixup_alpha, "cutmix_alpha": r.cutmix_alpha,
        "mixup_prob": r.mixup_prob, "mixup_switch_prob": r.mixup_switch_prob, "drop_rate": r.drop_rate,
        "drop_path_rate": r.drop_path_rate, "amp_dtype": amp_dtype_name(r.amp), "threads": threads,
        "workers": workers,
    }


def ours_view(spec: RunSpec, steps_per_epoch: int) -> dict[str, Any]:
    """Our resolved recipe in the timm config's terms (the two columns of the printed table)."""
    r = spec.recipe
    return {
        "model": spec.model_name, "img_size": r.img_size, "eval_img_size": spec.eval_img_size,
        "eval_crop_pct": r.eval_crop_pct, "interpolation": r.interpolation,
        "eval_interpolation": r.resolved_eval_interpolation, "rrc_scale": list(r.rrc_scale),
        "rrc_ratio": list(r.rrc_ratio), "hflip": r.hflip, "auto_augment": r.auto_augment, "re_prob": r.re_prob,
        "re_mode": r.re_mode, "timm_opt": r.optimizer, "opt_kwargs": {"betas": list(r.betas), "eps": r.eps,
                                                                       "max_grad_norm": r.lamb_max_grad_norm}
        if r.optimizer == "lamb" else {}, "lr": spec.lr, "weight_decay": r.weight_decay,
        "no_weight_decay_norm_bias": r.no_weight_decay_norm_bias, "epochs": r.epochs,
        "batch_size": spec.global_batch, "steps_per_epoch": steps_per_epoch,
        "warmup_steps": round(r.warmup_epochs * steps_per_epoch), "warmup_lr": r.warmup_start_factor * spec.lr,
        "min_lr": min(r.min_lr, spec.lr), "loss": r.loss, "bce_target_threshold": r.bce_target_threshold,
        "label_smoothing": r.label_smoothing, "mixup_alpha": r.mixup_alpha, "cutmix_alpha": r.cutmix_alpha,
        "mixup_prob": r.mixup_prob, "mixup_switch_prob": r.mixup_switch_prob, "drop_rate": r.drop_rate,
        "drop_path_rate": r.drop_path_rate, "amp_dtype": amp_dtype_name(r.amp),
    }


def schedule_gap(cfg: dict[str, Any]) -> float:
    """Largest |lr_ours - lr_timm| / peak lr over every optimiser step of the run (both schedules evaluated)."""
    from timm_train_loop import build_scheduler

    total, steps = cfg["epochs"] * cfg["steps_per_epoch"], cfg["steps_per_epoch"]
    ours_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg["lr"])
    ours = WarmupSchedule(ours_opt, base_lr=cfg["lr"], total_steps=total, warmup_steps=cfg["warmup_steps"],
                          kind="cosine", min_lr=cfg["min_lr"], warmup_start_factor=cfg["warmup_lr"] / cfg["lr"])
    timm_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg["lr"])
    sched = build_scheduler(timm_opt, cfg, steps)
    gap = 0.0
    for step in range(total):
        gap = max(gap, abs(ours_opt.param_groups[0]["lr"] - timm_opt.param_groups[0]["lr"]) / cfg["lr"])
        ours.step()
        sched.step_update(num_updates=step + 1)
    return gap


def print_configs(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    print("\nresolved hyper-parameters (resnets train from the recipe | the timm loop's arguments):")
    print("| setting | resnets train | timm loop | same |\n|---|---|---|---|")
    for key, value in ours.items():
        other = theirs.get(key)
        same = "yes" if key == "timm_opt" or _same(value, other) else "NO"
        print(f"| {key} | {_fmt(value)} | {_fmt(other)} | {same} |")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    return a == b


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


# --- runs --------------------------------------------------------------------------------------------------------
def write_init(model_name: str, num_classes: int, seed: int, path: Path) -> None:
    """timm's initialisation of the model drawn with `seed`; both sides start from these weights."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model(model_name, num_classes=num_classes)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def _env(threads: int) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


class Job:
    """One training process; its wall time runs from start to exit (interpreter start and imports included)."""

    def __init__(self, cmd: list[str], log: Path, threads: int) -> None:
        self.cmd, self.log = cmd, log
        self.handle = open(log, "w")  # noqa: SIM115 - closed in wait()
        self.start = time.perf_counter()
        self.process = subprocess.Popen(cmd, stdout=self.handle, stderr=subprocess.STDOUT, cwd=ROOT,
                                        env=_env(threads))

    def wait(self) -> float:
        code = self.process.wait()
        wall = time.perf_counter() - self.start
        self.handle.close()
        if code != 0:
            raise RuntimeError(f"{' '.join(self.cmd[:4])}... exited {code}; log {self.log}:\n"
                               f"{self.log.read_text()[-2000:]}")
        return wall


def start_ours(args: argparse.Namespace, data_root: str, seed: int, init: Path | None, out: Path) -> Job:
    cmd = [sys.executable, "-m", "resnets", "train", "--data", data_root, "--recipe", args.recipe, "--model",
           args.model, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--img-size",
           str(args.img_size), "--seed", str(seed), "--out", str(out), "--workers", str(args.workers),
           "--no-progress", "--no-tensorboard", "--save-every-minutes", "0", "--json"]
    if init is not None:
        cmd += ["--weights", str(init)]
    return Job(cmd, out.parent / f"{out.name}.log", args.threads)


def finish_ours(job: Job, out: Path) -> dict[str, Any]:
    wall = job.wait()
    summary = json.loads((out / "summary.json").read_text())
    record = json.loads((out / "run.json").read_text())
    return {"wall_s": wall, "summary": summary, "record": record, "weights": out / "last.safetensors"}


def start_timm(cfg: dict[str, Any], seed: int, init: Path | None, out: Path, threads: int) -> Job:
    config = {**cfg, "seed": seed, "init": str(init) if init else None}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=1))
    return Job([sys.executable, str(HERE / "timm_train_loop.py"), str(out / "config.json"), str(out)],
               out.parent / f"{out.name}.log", threads)


def finish_timm(job: Job, out: Path) -> dict[str, Any]:
    wall = job.wait()
    result = json.loads((out / "result.json").read_text())
    return {"wall_s": wall, "result": result, "weights": out / "final.safetensors"}


def _finish(side: str, job: Job, out: Path) -> dict[str, Any]:
    return finish_ours(job, out) if side == "resnets" else finish_timm(job, out)


def check_ours_matches(record: dict[str, Any], cfg: dict[str, Any]) -> None:
    """The run `resnets train` actually did must be the one the timm side was configured from."""
    recorded = {"lr": record["lr"], "batch_size": record["global_batch"], "img_size": record["img_size"],
                "eval_img_size": record["eval_img_size"], "steps_per_epoch": record["steps_per_epoch"],
                "amp_dtype": record["amp_dtype"]}
    wrong = {k: (v, cfg[k]) for k, v in recorded.items() if not _same(v, cfg[k])}
    if wrong:
        raise RuntimeError(f"resnets train ran other settings than the timm loop was given: {wrong}")


def score(weights: Path, cfg: dict[str, Any], num_classes: int, loaders: dict[str, Any]) -> dict[str, float]:
    """One evaluator for both sides: the final weights in timm's module, timm's eval pipeline, fp32."""
    import timm

    from resnets.weights.io import read_state_dict
    from timm_train_loop import top1

    state, _ = read_state_dict(weights)  # safetensors only: nothing in the file executes
    model = timm.create_model(cfg["model"], num_classes=num_classes)
    model.load_state_dict(state)
    return {name: top1(model, loader) for name, loader in loaders.items()}


# --- statistics ------------------------------------------------------------------------------------------------
def welch(ours: list[float], theirs: list[float]) -> dict[str, Any]:
    """Difference of means, its standard error, Welch's t and the one-sided p that ours is lower."""
    diff = statistics.fmean(ours) - statistics.fmean(theirs)
    if min(len(ours), len(theirs)) < 2:
        return {"diff": diff, "se": None, "t": None, "df": None, "p_lower": None}
    va, vb = statistics.variance(ours) / len(ours), statistics.variance(theirs) / len(theirs)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"diff": diff, "se": 0.0, "t": None, "df": None, "p_lower": 0.0 if diff < 0 else 1.0}
    t = diff / se
    df = (va + vb) ** 2 / (va ** 2 / (len(ours) - 1) + vb ** 2 / (len(theirs) - 1)) if va + vb else None
    try:
        from scipy.stats import t as student_t
        p = float(student_t.cdf(t, df))
    except ImportError:  # scipy is not a dependency; the t and df still decide by the reader's table
        p = None
    return {"diff": diff, "se": se, "t": t, "df": df, "p_lower": p}


def verdict(test: dict[str, Any]) -> str:
    if test["p_lower"] is None:
        return "undecided (fewer than 2 seeds a side, or no scipy for the p-value)"
    if test["diff"] < 0 and test["p_lower"] < 0.05:
        return f"ours LOWER beyond seed noise (one-sided Welch p = {test['p_lower']:.3f})"
    return f"not lower beyond seed noise (one-sided Welch p = {test['p_lower']:.3f})"


def _mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def report(rows: list[dict[str, Any]], splits: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"splits": splits["counts"], "per_seed": rows, "metrics": {}}
    print("\nper seed (final weights, one evaluator; 'self' = the side's own last validation):")
    print("| seed | side | val top-1 | held-out top-1 | self val top-1 | train img/s | wall s |\n|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['seed']} | {row['side']} | {row['val']:.2f} | {row['holdout']:.2f} | {row['self_val']:.2f} | "
              f"{row['train_img_per_s']:.1f} | {row['wall_s']:.0f} |")
    print("\n| metric | resnets train | timm loop | ours - timm | SE | verdict |\n|---|---|---|---|---|---|")
    for metric in ("val", "holdout", "wall_s"):
        ours = [r[metric] for r in rows if r["side"] == "resnets"]
        theirs = [r[metric] for r in rows if r["side"] == "timm"]
        test = welch(ours, theirs)
        text = verdict(test) if metric != "wall_s" else "(time: lower is better)"
        se = "n/a" if test["se"] is None else f"{test['se']:.2f}"
        print(f"| {metric} | {_mean_std(ours)} | {_mean_std(theirs)} | {test['diff']:+.2f} | {se} | {text} |")
        out["metrics"][metric] = {"resnets": ours, "timm": theirs, **test, "verdict": text}
    return out


def _machine() -> str:
    caps = capabilities()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {caps.name}, {os.cpu_count()} CPUs, torch ISA {caps.torch_isa}, native "
            f"{', '.join(f'{k}:{v}' for k, v in caps.native.items())}; load average {load}")


# --- main --------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-mini"),
                        help="image folder with train/ and val/ (default ../shared/data/cifar10-mini)")
    parser.add_argument("--recipe", default="rsb-a3")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated; each seed trains both sides")
    parser.add_argument("--holdout-per-class", type=int, default=200,
                        help="training images per class set aside for the final score only")
    parser.add_argument("--train-per-class", type=int, default=400,
                        help="trained images per class (0: all that are not held out)")
    parser.add_argument("--val-per-class", type=int, default=100,
                        help="val images per class both sides validate on (0: all)")
    parser.add_argument("--init", choices=("shared", "own"), default="shared",
                        help="shared: both start from timm's init drawn with the seed; own: each side its own init")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    parser.add_argument("--sequential", dest="concurrent", action="store_false",
                        help="train the two sides of a seed one after the other (default: both at once, one "
                             "process each, so that both see the same machine load)")
    parser.add_argument("--workers", type=int, default=1, help="data-loading workers per training process")
    parser.add_argument("--work", default=None, help="where runs and split links go (default: a temporary dir)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few images, 2 steps a side, seeds 0,1: checks the script, measures nothing")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args(argv)
    if args.smoke:
        args.train_per_class, args.val_per_class, args.holdout_per_class = 2, 1, 1
        args.batch_size, args.epochs, args.seeds = 10, 1, "0,1"
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if not args.seed_list:
        parser.error("--seeds names no seed")
    if args.batch_size % 2:
        parser.error("--batch-size must be even (timm's Mixup mixes each batch with its reverse)")
    if not Path(args.data).is_dir():
        parser.error(f"--data {args.data} is not a folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(HERE))
    torch.set_num_threads(args.threads)
    print(_machine(), flush=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="quality-vs-timm-"))
    if work.exists() and any(work.iterdir()):
        print(f"error: --work {work} is not empty", file=sys.stderr)
        return 2
    try:
        splits = build_splits(Path(args.data), work, holdout_per_class=args.holdout_per_class,
                              train_per_class=args.train_per_class or None, val_per_class=args.val_per_class or None)
        spec = resolve_ours(args, splits["data_root"])
        cfg = timm_config(spec, train_images=splits["counts"]["train"], threads=args.threads, workers=args.workers)
        cfg.update(train_root=str(Path(splits["data_root"]) / "train"), val_root=str(Path(splits["data_root"]) / "val"))
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"data: {args.data} -> {splits['counts']['train']} train / {splits['counts']['val']} val / "
          f"{splits['counts']['holdout']} held-out images ({len(splits['classes'])} classes); work dir {work}")
    for note in spec.notes:
        print(f"resnets note: {note}")
    print_configs(ours_view(spec, cfg["steps_per_epoch"]), cfg)
    print(f"schedules: largest per-step lr difference {schedule_gap(cfg) * 100:.3f} % of the peak lr; "
          f"init {args.init}", flush=True)

    from timm_train_loop import build_eval_loader
    loaders = {name: build_eval_loader(root, cfg, batch_size=100, workers=0)[1]
               for name, root in (("val", cfg["val_root"]), ("holdout", splits["holdout_root"]))}
    classes = splits["classes"]
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for index, seed in enumerate(args.seed_list):
        init = None
        if args.init == "shared":
            init = work / f"init-{seed}.safetensors"
            write_init(cfg["model"], len(classes), seed, init)
        sides = ["resnets", "timm"] if index % 2 == 0 else ["timm", "resnets"]
        outs = {"resnets": work / f"resnets-{seed}", "timm": work / f"timm-{seed}"}
        jobs: dict[str, Job] = {}
        done: dict[str, dict[str, Any]] = {}
        for side in sides:  # concurrent: both start now, under the same load; else one after the other
            jobs[side] = (start_ours(args, splits["data_root"], seed, init, outs[side]) if side == "resnets"
                          else start_timm(cfg, seed, init, outs[side], args.threads))
            if not args.concurrent:
                done[side] = _finish(side, jobs[side], outs[side])
        try:
            for side in sides:
                if side not in done:
                    done[side] = _finish(side, jobs[side], outs[side])
        finally:  # one side failed: stop the other rather than leave it running
            for job in jobs.values():
                if job.process.poll() is None:
                    job.process.kill()
                    job.process.wait()
        for side in sides:
            run = done[side]
            if side == "resnets":
                check_ours_matches(run["record"], cfg)
                self_val, img_s = run["summary"]["final_top1"], run["summary"]["train_img_per_s"]
            else:
                if run["result"]["classes"] != classes or run["result"]["steps_per_epoch"] != cfg["steps_per_epoch"]:
                    raise RuntimeError(f"the timm loop saw other classes or steps: {run['result']}")
                self_val, img_s = run["result"]["final_top1"], run["result"]["train_img_per_s"]
            scores = score(run["weights"], cfg, len(classes), loaders)
            rows.append({"seed": seed, "side": side, **scores, "self_val": self_val, "train_img_per_s": img_s,
                         "wall_s": run["wall_s"]})
            print(f"seed {seed} {side}: val {scores['val']:.2f}, held-out {scores['holdout']:.2f} "
                  f"(self-reported val {self_val:.2f}), {run['wall_s']:.0f} s", flush=True)
    results = report(rows, splits)
    results.update(config=cfg, machine=_machine(), total_wall_s=round(time.perf_counter() - start, 1),
                   work=str(work), init=args.init)
    print(f"\ntotal {results['total_wall_s']:.0f} s; {results['machine']}")
    if args.json:
        print(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
