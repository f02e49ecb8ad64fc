"""State dicts from other ecosystems -> ours.

timm and torchvision name ResNet modules exactly as we do (conv1, bn1, layer1.0.conv1, ..., fc; timm's
SE as se.fc1/se.fc2), so for them conversion is unwrapping (DDP/compile prefixes, 'state_dict' nesting)
and dropping what carries no weights. Each ecosystem still gets its own entry so that a source whose
names differ (Keras, PaddleClas) adds a mapping here without touching the loader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from ..errors import unknown
from ..models.config import ResNetConfig
from .io import read_state_dict, strip_prefixes
from .paddle import read_paddle

StateDict = dict[str, torch.Tensor]


def _from_timm(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return strip_prefixes(state_dict)


def _from_torchvision(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return strip_prefixes(state_dict)


CONVERTERS: dict[str, Callable[[Mapping[str, torch.Tensor]], StateDict]] = {
    "resnets": strip_prefixes,
    "timm": _from_timm,
    "torchvision": _from_torchvision,
}


# Sources whose files are not PyTorch state dicts: each reads its own format and maps it onto the preset's
# layout, returning our state dict and metadata.
FILE_READERS: dict[str, Callable[[Path, ResNetConfig], tuple[StateDict, dict[str, str]]]] = {
    "paddle": read_paddle,  # PaddleClas .pdparams (weights/paddle.py)
}
SOURCES = (*CONVERTERS, *FILE_READERS)


def read_converted(path: str | Path, source: str, config: ResNetConfig) -> tuple[StateDict, dict[str, str]]:
    """The weight file at `path`, from `source`, as our state dict (and its metadata) for the preset `config`."""
    if source in FILE_READERS:
        return FILE_READERS[source](Path(path), config)
    state_dict, metadata = read_state_dict(path)
    return convert_state_dict(state_dict, source), metadata


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], source: str) -> StateDict:
    """Map a state dict from `source` ('timm', 'torchvision' or 'resnets') to our names."""
    if source not in CONVERTERS:
        raise unknown("weight source", source, SOURCES)
    return CONVERTERS[source](state_dict)
