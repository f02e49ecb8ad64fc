"""Helper process for test_train.test_ddp_step_weights_samples_not_ranks (not collected by pytest).

Builds a tiny ResNet with fixed weights, then takes one training step (a) in one process on 52 images and
(b) in two gloo processes holding 32 and 20 of them. BatchNorm runs on its running statistics (eval mode)
so that every image's gradient is independent of the batch it is in; the step's sample weighting and the
all-reduce are what is compared. Writes single.pt, rank0.pt and rank1.pt into the folder given.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from resnets import create_model
from resnets.train.step import TrainStep


def _setup() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, width_multiplier=0.25).eval()
    images = torch.randn(52, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, 10, (52,), generator=torch.Generator().manual_seed(2))
    return model, images, targets


def _step(model: torch.nn.Module, train_model: torch.nn.Module, images, targets, *, nominal: int, world: int,
          total: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)
    step = TrainStep(model, optimizer, torch.nn.CrossEntropyLoss(), train_model=train_model,
                     nominal_batch=nominal, world_size=world)
    step.micro_batch(images, targets, last=True, global_count=total)
    step.optimizer_step()


def _rank(rank: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ["TEST_PORT"])
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    model, images, targets = _setup()
    part = slice(0, 32) if rank == 0 else slice(32, 52)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    _step(model, ddp, images[part], targets[part], nominal=32, world=2, total=52)
    torch.save(model.state_dict(), Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def main() -> None:
    out = sys.argv[1]
    torch.set_num_threads(1)
    model, images, targets = _setup()
    _step(model, model, images, targets, nominal=64, world=1, total=52)
    torch.save(model.state_dict(), Path(out) / "single.pt")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        os.environ["TEST_PORT"] = str(s.getsockname()[1])
    mp.spawn(_rank, args=(out,), nprocs=2, join=True)


if __name__ == "__main__":
    main()
