"""Optimisers of the recipes: SGD (momentum, Nesterov), AdamW and LAMB, with the recipes' rule of no weight
decay on normalisation weights and biases.

LAMB is written here because no maintained implementation exists outside timm; it reproduces timm's
`Lamb` (the NVIDIA FusedLAMB variant used for ResNet strikes back) at its defaults: Adam moments with bias
correction, a global gradient-norm clip inside the optimiser, L2 weight decay added to the update, and a
per-tensor trust ratio ||w|| / ||update|| applied only to tensors that have weight decay.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .recipe import Recipe

NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, SyncBatchNorm, InstanceNorm*
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


def param_groups(model: nn.Module, weight_decay: float, no_weight_decay_norm_bias: bool, *,
                 exempt_bias: bool = True) -> list[dict[str, Any]]:
    """Split the trainable parameters into a decayed group and a group with weight decay 0.

    With `no_weight_decay_norm_bias`, norm-layer parameters and every other 1-D tensor (biases) skip weight
    decay (timm/mmpretrain); `exempt_bias=False` exempts only norm layers (torchvision --norm-weight-decay 0,
    TF's "not batch_normalization" filter). Empty groups are left out.
    """
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not no_weight_decay_norm_bias or weight_decay == 0:
        return [{"params": [p for _, p in trainable], "weight_decay": weight_decay}]
    norm_ids = {id(p) for module in model.modules() if isinstance(module, NORM_LAYERS)
                for p in module.parameters(recurse=False)}
    decay, no_decay = [], []
    for name, p in trainable:
        is_bias = p.ndim <= 1 or name.endswith(".bias")
        (no_decay if id(p) in norm_ids or (exempt_bias and is_bias) else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def layer_lr_scales(model: nn.Module, layer_decay: float) -> dict[str, float]:
    """Parameter name -> lr scale for layer-wise lr decay, grouped as timm groups a ResNet (its
    `group_matcher(coarse=False)`): the stem (conv1, bn1, maxpool) is layer 0, every residual block
    layerS.B is one layer in network order, everything else (the classifier) is the last layer L;
    scale = layer_decay ** (L - layer), so the classifier keeps the full lr."""
    blocks: dict[tuple[int, int], int] = {}
    for name, _ in model.named_parameters():
        parts = name.split(".")
        if parts[0].startswith("layer") and parts[0][5:].isdigit() and len(parts) > 2 and parts[1].isdigit():
            blocks.setdefault((int(parts[0][5:]), int(parts[1])), 0)
    order = {key: i + 1 for i, key in enumerate(sorted(blocks))}
    last = len(order) + 1
    scales = {}
    for name, _ in model.named_parameters():
        parts = name.split(".")
        if parts[0] in ("conv1", "bn1", "maxpool"):
            layer = 0
        elif parts[0].startswith("layer") and len(parts) > 2 and parts[1].isdigit():
            layer = order[(int(parts[0][5:]), int(parts[1]))]
        else:
            layer = last
        scales[name] = layer_decay ** (last - layer)
    return scales


def _split_by_layer(model: nn.Module, groups: list[dict[str, Any]], layer_decay: float) -> list[dict[str, Any]]:
    """Each weight-decay group split by lr scale; the full-lr groups first (so param_groups[0] logs the peak lr)."""
    scales = layer_lr_scales(model, layer_decay)
    scale_of = {id(p): scales[name] for name, p in model.named_parameters()}
    split: list[dict[str, Any]] = []
    for group in groups:
        by_scale: dict[float, list[torch.Tensor]] = {}
        for p in group["params"]:
            by_scale.setdefault(scale_of[id(p)], []).append(p)
        split += [{**group, "params": params, "lr_scale": scale} for scale, params in by_scale.items()]
    return sorted(split, key=lambda g: -g["lr_scale"])


def build_optimizer(model: nn.Module, recipe: Recipe, lr: float) -> torch.optim.Optimizer:
    """The recipe's optimiser over `model` at peak learning rate `lr` (already scaled to the batch)."""
    groups = param_groups(model, recipe.weight_decay, recipe.no_weight_decay_norm_bias,
                          exempt_bias=recipe.exempt_bias_from_weight_decay)
    if recipe.layer_decay is not None and recipe.layer_decay != 1.0:
        groups = _split_by_layer(model, groups, recipe.layer_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                               weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=recipe.betas, eps=recipe.eps,
                                 weight_decay=recipe.weight_decay)
    if recipe.optimizer == "lamb":
        return Lamb(groups, lr=lr, betas=recipe.betas, eps=recipe.eps, weight_decay=recipe.weight_decay,
                    max_grad_norm=recipe.lamb_max_grad_norm)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")  # Recipe.validate() rules this out


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al., arXiv 1904.00962) in the NVIDIA FusedLAMB form that timm uses.

    Per step: g <- g / max(1, ||all grads|| / max_grad_norm); m, v Adam moments (grad averaging);
    u = m_hat / (sqrt(v_hat) + eps) + wd * w; where wd != 0 (or always_adapt) u *= ||w|| / ||u|| (1 when
    either norm is 0; capped at 1 with trust_clip); w <- w - lr * u. With `decoupled_decay` the decay is
    applied to w directly (w <- w - lr * wd * w) instead of entering u.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.01, *, bias_correction: bool = True,
                 grad_averaging: bool = True, max_grad_norm: float | None = 1.0, trust_clip: bool = False,
                 always_adapt: bool = False, decoupled_decay: bool = False):
        if lr < 0 or eps <= 0 or weight_decay < 0:
            raise ValueError(f"invalid Lamb settings: lr={lr}, eps={eps}, weight_decay={weight_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        bias_correction=bias_correction, grad_averaging=grad_averaging, trust_clip=trust_clip,
                        always_adapt=always_adapt, decoupled_decay=decoupled_decay, step=0)
        self.max_grad_norm = max_grad_norm
        super().__init__(params, defaults)

    def _grad_scale(self) -> torch.Tensor | None:
        """1 / clip factor for the global gradient norm (None: no clipping configured or no gradients)."""
        if self.max_grad_norm is None:
            return None
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return None
        global_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        return (global_norm / self.max_grad_norm).clamp(min=1.0)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's Optimizer signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        clip = self._grad_scale()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("Lamb does not support sparse gradients")
            group["step"] += 1
            self._update_group(group, params, clip)
        return loss

    def _update_group(self, group: dict[str, Any], params: list[torch.Tensor], clip: torch.Tensor | None) -> None:
        beta1, beta2 = group["betas"]
        step, lr, eps, wd = group["step"], group["lr"], group["eps"], group["weight_decay"]
        grads = [p.grad for p in params]
        if clip is not None:
            grads = torch._foreach_div(grads, clip)  # leaves p.grad untouched
        states = [self.state[p] for p in params]
        for p, state in zip(params, states, strict=True):
            if not state:
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]

        # first moment: m = beta1 m + (1 - beta1) g (or + g without grad averaging); second: v = beta2 v + (1-beta2) g^2
        if group["grad_averaging"]:
            torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
        else:
            torch._foreach_mul_(exp_avgs, beta1)
            torch._foreach_add_(exp_avgs, grads)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)

        bc1 = 1.0 - beta1 ** step if group["bias_correction"] else 1.0
        bc2 = 1.0 - beta2 ** step if group["bias_correction"] else 1.0
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, bc2 ** 0.5)
        torch._foreach_add_(denom, eps)
        updates = torch._foreach_div(exp_avgs, denom)
        torch._foreach_div_(updates, bc1)

        if wd != 0:
            if group["decoupled_decay"]:
                torch._foreach_mul_(params, 1.0 - lr * wd)
            else:
                torch._foreach_add_(updates, params, alpha=wd)
        if wd != 0 or group["always_adapt"]:
            w_norms = torch.stack(torch._foreach_norm(params))
            u_norms = torch.stack(torch._foreach_norm(updates))
            ratios = torch.where((w_norms > 0) & (u_norms > 0), w_norms / u_norms, torch.ones_like(w_norms))
            if group["trust_clip"]:
                ratios = ratios.clamp(max=1.0)
            torch._foreach_mul_(updates, list(ratios.unbind()))
        torch._foreach_add_(params, updates, alpha=-lr)
