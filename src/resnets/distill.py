"""Distillation losses between student and teacher logits: Hinton's KD and PaddleClas' SSLD.

Both are functions of the two (N, C) logit tensors and return the batch mean (``reduction="mean"``) or one
value per sample (``"none"``: what `resnets train` weights per sample when a batch mixes labelled and
unlabelled images). They are computed in float32 whatever the logits' dtype (autocast logits are bf16/fp16)
and let gradients reach both arguments; the trainer passes teacher logits computed without gradients.

* `kd_loss`: ``T^2 * KL(softmax(t / T) || softmax(s / T))`` (Hinton, Vinyals, Dean 2015, arXiv 1503.02531);
  the T^2 keeps the gradient's scale independent of T. `kd_objective` mixes it with the task loss:
  ``(1 - alpha) * task + alpha * kd``.
* `ssld_loss`: ``(KL(p || q) + KL(q || p)) / 2`` between the softmax outputs of student (q) and teacher (p):
  what PaddleClas' SSLD documents as a "JS divergence" and implements as the symmetric KL of its
  ``DistillationDMLLoss`` (ppcls/loss/dmlloss.py); docs/reference.md §3.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("kd", "ssld")
"""The distillation modes `resnets train --distill` offers."""
REDUCTIONS = ("mean", "none")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    return per_sample.mean() if reduction == "mean" else per_sample


def _check(student: torch.Tensor, teacher: torch.Tensor) -> None:
    if student.ndim != 2 or student.shape != teacher.shape:
        raise ValueError(f"student and teacher logits must both be (N, C), got {tuple(student.shape)} and "
                         f"{tuple(teacher.shape)}")


def _kl_rows(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row from log-probabilities (0 * log 0 counts as 0, as in F.kl_div with log_target)."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0, *,
            reduction: str = "mean") -> torch.Tensor:
    """Hinton's distillation term ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``."""
    _check(student, teacher)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    log_q = F.log_softmax(student.float() / temperature, dim=-1)
    log_p = F.log_softmax(teacher.float() / temperature, dim=-1)
    return _reduce(_kl_rows(log_p, log_q) * (temperature * temperature), reduction)


def ssld_loss(student: torch.Tensor, teacher: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """PaddleClas SSLD: the symmetric KL ``(KL(p || q) + KL(q || p)) / 2`` of the two softmax outputs."""
    _check(student, teacher)
    log_q = F.log_softmax(student.float(), dim=-1)
    log_p = F.log_softmax(teacher.float(), dim=-1)
    return _reduce((_kl_rows(log_p, log_q) + _kl_rows(log_q, log_p)) / 2, reduction)


def kd_objective(task: torch.Tensor, distillation: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Hinton's objective ``(1 - alpha) * task + alpha * distillation`` (alpha in [0, 1])."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return (1.0 - alpha) * task + alpha * distillation


__all__ = ["MODES", "kd_loss", "kd_objective", "ssld_loss"]
