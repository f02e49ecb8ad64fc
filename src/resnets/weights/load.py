"""Loading a state dict into a ResNet with messages that name every offending key."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import ResnetsError

HEAD_KEYS = ("fc.weight", "fc.bias")


def _listing(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, reset_head: bool = False,
              model_name: str = "model") -> None:
    """Load `state_dict` strictly; with `reset_head`, skip the classifier and keep the model's own."""
    own = model.state_dict()
    incoming = dict(state_dict)
    head = tuple(getattr(model, "head_keys", HEAD_KEYS))  # pre-activation networks: head.fc.*
    if reset_head:
        for key in head:
            incoming.pop(key, None)
    missing = [k for k in own if k not in incoming and not k.endswith("num_batches_tracked")
               and not (reset_head and k in head)]
    unexpected = [k for k in incoming if k not in own]
    mismatched = [k for k in incoming if k in own and incoming[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing key(s): {_listing(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
        if mismatched:
            shapes = [f"{k} {tuple(incoming[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched]
            problems.append(f"shape mismatch (checkpoint vs model): {_listing(shapes, 4)}")
        hint = ""
        if not missing and not unexpected and set(mismatched) <= set(head):
            classes = incoming[head[0]].shape[0] if head[0] in incoming else "?"
            hint = f"; the checkpoint's head has {classes} classes: pass num_classes={classes}, or reset_head=True " \
                   "(--reset-head) to load only the backbone"
        raise ResnetsError(f"weights do not fit {model_name}: " + "; ".join(problems) + hint)
    model.load_state_dict(incoming, strict=False)
