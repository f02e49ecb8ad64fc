"""Run-directory checkpoints: weights as safetensors (for users), full training state beside them (for resume).

Every file is written atomically (temporary file, fsync, rename), so a crash or a full disk while saving
leaves the previous `last` intact. The state file holds the model weights too, so a resume never pairs
weights from one step with optimiser state from another.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ResnetsError
from ..weights.io import atomic_write, save_weights

LAST_WEIGHTS = "last.safetensors"
BEST_WEIGHTS = "best.safetensors"
LAST_STATE = "last.state.pt"
STATE_FORMAT = "resnets-train-state"
STATE_VERSION = 2


def rng_state() -> dict[str, Any]:
    """Every global random stream a training step touches (drop path, dropout, python, numpy, CUDA)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(_jsonable(random.getstate())),
        "numpy": _numpy_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> list:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def save_training_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write the resume state atomically (a torch file holding only tensors and plain containers)."""
    atomic_write(run_dir / LAST_STATE, lambda tmp: torch.save(state, tmp))


def load_training_state(run_dir: Path) -> dict[str, Any] | None:
    """Read the resume state (None: the run saved no checkpoint yet); never unpickles code (weights_only=True).

    A damaged state file is an error, not a fresh start: silently retraining from step 0 would discard a run."""
    path = run_dir / LAST_STATE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling/zip error means the same thing to the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ResnetsError(f"cannot resume: {path} is unreadable ({type(exc).__name__}: {first}); the run "
                           "directory is left as it is") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise ResnetsError(f"cannot resume: {path} is not a training state this resnets reads "
                           f"(format {STATE_FORMAT} version {STATE_VERSION})")
    return state


def save_run_weights(run_dir: Path, filename: str, state_dict: dict[str, torch.Tensor], *, config: Any,
                     class_names: list[str], extra: dict[str, Any]) -> None:
    save_weights(state_dict, run_dir / filename, config=config, class_names=class_names, extra=extra)


class CheckpointPolicy:
    """When to checkpoint inside an epoch: every N optimiser steps and/or every M minutes (epoch ends always).

    Time is measured on rank 0, which decides for all ranks (the engine exchanges the decision on the host)."""

    def __init__(self, *, every_steps: int = 0, every_minutes: float = 0.0, clock=time.monotonic):
        self.every_steps = int(every_steps)
        self.every_seconds = float(every_minutes) * 60.0
        self.clock = clock
        self.last = clock()

    def due(self, step: int) -> bool:
        if self.every_steps and step % self.every_steps == 0:
            return True
        return bool(self.every_seconds) and self.clock() - self.last >= self.every_seconds

    def saved(self) -> None:
        self.last = self.clock()

    def describe(self) -> str:
        parts = []
        if self.every_steps:
            parts.append(f"every {self.every_steps} steps")
        if self.every_seconds:
            parts.append(f"every {self.every_seconds / 60:g} min")
        return "checkpoints at epoch ends" + (f" and {' and '.join(parts)}" if parts else " only")
