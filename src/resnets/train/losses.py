"""Classification losses of the recipes: softmax cross-entropy (label smoothing, soft targets) and RSB's
sigmoid binary cross-entropy (smoothing, target threshold).

Both are called as `loss(logits, targets)` with int64 class indices (N,) or dense soft targets (N, C). Soft
targets come from Mixup/CutMix, which already applied the label smoothing, so they are used as given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .recipe import Recipe


class CrossEntropy(nn.Module):
    """Softmax cross-entropy. Index targets: label smoothing as torch (1 - e on the class, e / C spread over
    all classes). Dense targets: -sum(t * log_softmax(x)), averaged over the batch (`reduction="mean"`) or
    one value per sample (`"none"`, what distillation weights per sample)."""

    def __init__(self, smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__()
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be mean or none, got {reduction!r}")
        self.smoothing = smoothing
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if targets.dim() == logits.dim():  # soft targets (N, C)
            log_probs = F.log_softmax(logits.float(), dim=-1)
            per_sample = -(targets.to(log_probs.dtype) * log_probs).sum(dim=-1)
            return per_sample.mean() if self.reduction == "mean" else per_sample
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.smoothing, reduction=self.reduction)


class BinaryCrossEntropy(nn.Module):
    """Per-class sigmoid BCE as in timm (ResNet strikes back).

    Index targets become dense ones: e / C off the class, 1 - e + e / C on it. With `target_threshold`
    every target becomes 1 where it exceeds the threshold, else 0 (so a mixed-in class weighted 0.3 counts
    as present). The loss is averaged over classes and batch (`reduction="mean"`), or summed.
    """

    def __init__(self, smoothing: float = 0.0, target_threshold: float | None = None, reduction: str = "mean"):
        super().__init__()
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be mean, sum or none, got {reduction!r}")
        self.smoothing = smoothing
        self.target_threshold = target_threshold
        self.reduction = reduction

    def dense_targets(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The (N, C) float targets the loss compares against (smoothing and threshold applied)."""
        if targets.dim() != logits.dim():
            num_classes = logits.shape[-1]
            off = self.smoothing / num_classes
            dense = torch.full(logits.shape, off, dtype=torch.float32, device=logits.device)
            dense.scatter_(1, targets.long().view(-1, 1), 1.0 - self.smoothing + off)
            targets = dense
        else:
            targets = targets.float()
        if self.target_threshold is not None:
            targets = (targets > self.target_threshold).float()
        return targets

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        dense = self.dense_targets(logits, targets)
        return F.binary_cross_entropy_with_logits(logits.float(), dense, reduction=self.reduction)


def build_loss(recipe: Recipe, reduction: str = "mean") -> nn.Module:
    """The training loss the recipe names (smoothing from the recipe applies to index targets).
    `reduction="none"`: per-sample values (BCE: per sample and class)."""
    if recipe.loss == "bce":
        return BinaryCrossEntropy(recipe.label_smoothing, recipe.bce_target_threshold, reduction=reduction)
    return CrossEntropy(recipe.label_smoothing, reduction=reduction)
