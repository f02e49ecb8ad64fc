"""torchrun support: process-group setup from the environment and the few collectives the engine needs.

Besides the default group (gloo on CPU, NCCL on GPU) a CPU (gloo) group carries the small host-side values
every rank must agree on before a step (how many readable images each rank holds, whether it is time to
checkpoint): exchanging them there costs no device synchronisation, even under NCCL.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from ..errors import ResnetsError


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    host_group: Any = field(default=None, repr=False)
    """The gloo group for host-side collectives (the default group itself when that is gloo)."""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "auto") -> DistContext:
        """Join the process group torchrun describes (gloo on CPU, NCCL on GPU); a plain run is world size 1."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        if dev.type == "cuda":
            dev = torch.device("cuda", local_rank)
            torch.cuda.set_device(dev)
        host_group = None
        if world_size > 1:
            if not dist.is_initialized():
                dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
            host_group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
        return cls(rank=rank, world_size=world_size, local_rank=local_rank, device=dev, host_group=host_group)

    def gather_ints(self, values: list[int]) -> list[list[int]]:
        """Every rank's `values` (same length on all ranks), exchanged on the host: [rank][i]."""
        if not self.enabled:
            return [list(values)]
        local = torch.tensor(values, dtype=torch.int64)
        out = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(out, local, group=self.host_group)
        return [t.tolist() for t in out]

    def sum(self, values: list[float]) -> list[float]:
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return tensor.cpu().tolist()

    def all_reduce_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            moved = tensor.to(self._collective_device())
            dist.all_reduce(moved)
            return moved.cpu()
        return tensor

    def gather_objects(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_tensors(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite every rank's tensors with rank 0's (in place)."""
        if not self.enabled:
            return
        for tensor in tensors:
            moved = tensor.data.to(self._collective_device())
            dist.broadcast(moved, src=0)
            tensor.data.copy_(moved)

    def on_main(self, work: Callable[[], Any], *, what: str) -> Any:
        """Run `work` on rank 0 only; a ResnetsError or OSError there becomes the same one-line error on every
        rank (never a hang of the ranks waiting at the next collective). Returns rank 0's result (None elsewhere).
        """
        error, result = None, None
        if self.is_main:
            try:
                result = work()
            except ResnetsError as exc:
                error = str(exc)
            except OSError as exc:
                error = f"{what}: {exc.strerror or exc}"
        error = self.broadcast_object(error)
        if error:
            raise ResnetsError(error)
        return result

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def _collective_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")
