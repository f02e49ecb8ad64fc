"""The reference side of benchmarks/train_quality_vs_timm.py: one training run built only from timm's parts.

    python benchmarks/timm_train_loop.py CONFIG.json OUT_DIR

CONFIG.json holds the hyper-parameters `train_quality_vs_timm.py` resolved from our recipe (every value is
already final: peak lr at this batch, warmup in optimiser steps, absolute warmup-start lr). The loop is the
one timm's train.py runs on a single process without the CUDA prefetcher: `create_dataset` + `create_loader`
(RandomResizedCrop, flip, RandAugment from the recipe's string, normalisation), `Mixup` on the batch,
`BinaryCrossEntropy` (or soft-target cross-entropy), `create_optimizer_v2`, `create_scheduler_v2` stepped
per update, autocast when the config asks for it, validation after every epoch as train.py does.

OUT_DIR receives `final.safetensors` (the weights after the last step, timm's key names) and `result.json`
(per-epoch history, timings, timm's version). Run in its own process so that both sides of the comparison
start alike (fresh interpreter, same thread count, same data-loading workers).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _loss(cfg: dict[str, Any]) -> torch.nn.Module:
    from timm.loss import BinaryCrossEntropy, SoftTargetCrossEntropy

    if cfg["loss"] == "bce":
        # train.py passes no smoothing to BCE when mixup is on: Mixup has already smoothed the targets
        return BinaryCrossEntropy(target_threshold=cfg["bce_target_threshold"], smoothing=cfg["label_smoothing"])
    return SoftTargetCrossEntropy()


def _mixup(cfg: dict[str, Any], num_classes: int):
    from timm.data import Mixup

    return Mixup(mixup_alpha=cfg["mixup_alpha"], cutmix_alpha=cfg["cutmix_alpha"], prob=cfg["mixup_prob"],
                 switch_prob=cfg["mixup_switch_prob"], mode="batch", label_smoothing=cfg["label_smoothing"],
                 num_classes=num_classes)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], steps_per_epoch: int):
    """timm's cosine-with-warmup, stepped per update, placed as the recipe's: the cosine starts where the warmup
    ends (warmup_prefix) and reaches min_lr at the last update, so its length is the updates after warmup less one
    (timm's train.py defaults, no prefix and min_lr one update after the end, differ by under 1 % of an epoch)."""
    from timm.scheduler import create_scheduler_v2

    warmup_epochs = cfg["warmup_steps"] / steps_per_epoch
    cosine_epochs = (cfg["epochs"] * steps_per_epoch - cfg["warmup_steps"] - 1) / steps_per_epoch
    scheduler, _ = create_scheduler_v2(
        optimizer, sched="cosine", num_epochs=max(cosine_epochs, 1 / steps_per_epoch), warmup_epochs=warmup_epochs,
        warmup_lr=cfg["warmup_lr"], warmup_prefix=True, min_lr=cfg["min_lr"], step_on_epochs=False,
        updates_per_epoch=steps_per_epoch)
    return scheduler


def build_eval_loader(root: str, cfg: dict[str, Any], *, batch_size: int, workers: int):
    """timm's evaluation pipeline at the recipe's evaluation size, crop and interpolation (no prefetcher)."""
    from timm.data import create_dataset, create_loader

    dataset = create_dataset("", root=root, is_training=False)
    loader = create_loader(dataset, input_size=(3, cfg["eval_img_size"], cfg["eval_img_size"]),
                           batch_size=batch_size, is_training=False, interpolation=cfg["eval_interpolation"],
                           crop_pct=cfg["eval_crop_pct"], num_workers=workers, use_prefetcher=False,
                           persistent_workers=False, device=torch.device("cpu"))
    return dataset, loader


@torch.no_grad()
def top1(model: torch.nn.Module, loader, autocast_dtype: torch.dtype | None = None) -> float:
    """Top-1 accuracy in percent over everything `loader` yields."""
    model.eval()
    correct = total = 0
    for images, targets in loader:
        with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            logits = model(images)
        correct += int((logits.argmax(dim=1) == targets).sum())
        total += len(targets)
    return 100.0 * correct / max(total, 1)


def train(cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    import timm
    from safetensors.torch import load_file, save_file
    from timm.data import create_dataset, create_loader
    from timm.optim import create_optimizer_v2

    start = time.perf_counter()
    torch.set_num_threads(cfg["threads"])
    seed = cfg["seed"]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    train_set = create_dataset("", root=cfg["train_root"], is_training=True)
    classes = sorted(train_set.reader.class_to_idx, key=train_set.reader.class_to_idx.get)
    loader = create_loader(
        train_set, input_size=(3, cfg["img_size"], cfg["img_size"]), batch_size=cfg["batch_size"], is_training=True,
        re_prob=cfg["re_prob"], re_mode=cfg["re_mode"], scale=tuple(cfg["rrc_scale"]), ratio=tuple(cfg["rrc_ratio"]),
        hflip=cfg["hflip"], auto_augment=cfg["auto_augment"], interpolation=cfg["interpolation"],
        num_workers=cfg["workers"], use_prefetcher=False, device=torch.device("cpu"),
        persistent_workers=cfg["workers"] > 0)
    _, val_loader = build_eval_loader(cfg["val_root"], cfg, batch_size=max(cfg["batch_size"], 32),
                                      workers=cfg["workers"])
    steps_per_epoch = len(loader)

    model = timm.create_model(cfg["model"], num_classes=len(classes), drop_rate=cfg["drop_rate"],
                              drop_path_rate=cfg["drop_path_rate"])
    if cfg.get("init"):
        model.load_state_dict(load_file(cfg["init"]))
    optimizer = create_optimizer_v2(model, opt=cfg["timm_opt"], lr=cfg["lr"], weight_decay=cfg["weight_decay"],
                                    filter_bias_and_bn=cfg["no_weight_decay_norm_bias"], **cfg["opt_kwargs"])
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    mixup = _mixup(cfg, len(classes))
    loss_fn = _loss(cfg)
    amp = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg["amp_dtype"])

    history, updates, train_time, train_images = [], 0, 0.0, 0
    for epoch in range(cfg["epochs"]):
        model.train()
        epoch_start, loss_sum, seen = time.perf_counter(), 0.0, 0
        for images, targets in loader:
            images, targets = mixup(images, targets)
            with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
                loss = loss_fn(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            updates += 1
            scheduler.step_update(num_updates=updates)
            loss_sum += float(loss.detach()) * len(images)
            seen += len(images)
        scheduler.step(epoch + 1)
        epoch_time = time.perf_counter() - epoch_start
        train_time += epoch_time
        train_images += seen
        val = top1(model, val_loader, amp)
        history.append({"epoch": epoch + 1, "train_loss": round(loss_sum / max(seen, 1), 6), "val_top1": val,
                        "lr": optimizer.param_groups[0]["lr"], "epoch_time_s": round(epoch_time, 3)})
        print(f"timm epoch {epoch + 1}/{cfg['epochs']}: loss {loss_sum / max(seen, 1):.4f}, val top-1 {val:.2f}, "
              f"{seen / max(epoch_time, 1e-9):.1f} img/s", flush=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / "final.safetensors"))
    result = {"classes": classes, "steps": updates, "steps_per_epoch": steps_per_epoch, "history": history,
              "final_top1": history[-1]["val_top1"] if history else None,
              "train_img_per_s": round(train_images / max(train_time, 1e-9), 2),
              "wall_s": round(time.perf_counter() - start, 2), "timm": timm.__version__}
    (out_dir / "result.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: timm_train_loop.py CONFIG.json OUT_DIR", file=sys.stderr)
        return 2
    cfg = json.loads(Path(argv[0]).read_text())
    train(cfg, Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
