"""Evaluation during training: top-1/top-5 of the model (or its EMA) on the val split, sharded over ranks.

It runs the package's one evaluation loop (`resnets.evaluate.run_accuracy`, also behind `resnets eval`)
under the run's autocast. Under DDP every rank first takes rank 0's BatchNorm statistics (and the EMA's
weights), so the accuracy is exactly that of the weights rank 0 saves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..evaluate import run_accuracy
from .distributed import DistContext


class Evaluator:
    def __init__(self, loader: DataLoader, prepare: Callable[[torch.Tensor], torch.Tensor], num_classes: int,
                 ctx: DistContext, *, amp_dtype: torch.dtype | None,
                 on_skipped: Callable[[list[str]], None] | None = None):
        self.loader = loader
        self.prepare = prepare
        self.num_classes = num_classes
        self.ctx = ctx
        self.amp_dtype = amp_dtype
        self.on_skipped = on_skipped

    def __call__(self, model: nn.Module, *, with_parameters: bool = False) -> tuple[float, float]:
        """(top-1, top-5) in percent. `with_parameters`: also take rank 0's parameters (the EMA copy, which
        each rank updates on its own), not only its buffers."""
        if self.ctx.enabled:
            tensors = list(model.buffers()) + (list(model.parameters()) if with_parameters else [])
            self.ctx.broadcast_tensors(tensors)
        was_training = model.training
        model.eval()

        def predict(images: torch.Tensor) -> torch.Tensor:
            with torch.autocast(self.ctx.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                return model(images)

        try:
            acc = run_accuracy(predict, self.loader, self.num_classes, self.prepare, on_skipped=self.on_skipped)
        finally:
            model.train(was_training)
        acc.load_tensor(self.ctx.all_reduce_tensor(acc.as_tensor()))
        return acc.top(1), acc.top(5)
