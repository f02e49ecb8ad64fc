"""Weight files from other ecosystems -> our state dicts: a small registry of sources.

Each source has a detector (does this file look like mine? reads headers only) and a reader
`read(path, config) -> (state_dict, metadata)` that returns tensors under our names. `metadata` carries the
file's own metadata and, where the source needs it, `config_overrides` (JSON): what the converted model's
config must change for the weights to compute what they did at home (Keras' preprocessing).

* resnets: our safetensors files (config in the metadata).
* timm: PyTorch state dicts in timm's naming, which is ours (conv1, layer1.0.conv1, se.fc1, stem/stages for
  pre-activation nets): unwrapping and prefix stripping only.
* torchvision: the same names for the subset torchvision builds (7x7 stem, strided-1x1 projection, no SE,
  no pre-activation). Choosing it checks both: a preset torchvision has no counterpart of, or keys it never
  writes, are refused with a line that says to use timm.
* keras: `.h5` / `.keras` files of Keras applications ResNets (weights/keras.py, needs h5py).
* paddle: PaddleClas `.pdparams` (weights/paddle.py, imported only when used).
`auto` picks by content: HDF5 or a Keras zip -> keras; `.pdparams` -> paddle; a PyTorch/safetensors state
dict -> resnets (our metadata), torchvision (only torchvision's keys, for a torchvision architecture) or timm.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ResnetsError, unknown
from ..models.config import ResNetConfig
from .io import FORMAT_TAG, read_state_dict, strip_prefixes

StateDict = dict[str, torch.Tensor]
Reader = Callable[[Path, ResNetConfig], tuple[StateDict, dict[str, str]]]
OVERRIDES_KEY = "config_overrides"
PADDLE_MISSING = "PaddleClas support not installed in this build"

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_TORCHVISION_KEY = re.compile(
    rf"^(conv1\.weight|bn1\.{_BN}|fc\.(weight|bias)"
    rf"|layer\d+\.\d+\.(conv[123]\.weight|bn[123]\.{_BN}|downsample\.0\.weight|downsample\.1\.{_BN}))$")


@dataclass(frozen=True)
class Source:
    """One ecosystem's weight files: `detect` sniffs a file, `read` converts it."""

    name: str
    description: str
    detect: Callable[[Path], bool]
    read: Reader


# --- PyTorch state dicts: ours, timm's, torchvision's -------------------------------------------------
def _is_pytorch_file(path: Path) -> bool:
    """safetensors (8-byte header length then '{'), a torch.save zip, or a legacy pickle."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    return path.suffix in (".safetensors", ".pth", ".pt", ".bin", ".ckpt") or head[8:9] == b"{" \
        or head[:4] == b"PK\x03\x04" or head[:1] == b"\x80"


def torchvision_can_build(config: ResNetConfig) -> bool:
    """torchvision's resnet.py builds 7x7-stem, max-pool, strided-1x1-projection v1 nets without SE."""
    return (not config.preact and config.stem_type == "conv7" and config.stem_pool == "max"
            and config.shortcut == "conv" and config.se_ratio == 0 and not config.stride_in_1x1
            and not config.first_block_projection and config.width_multiplier == 1.0 and config.in_chans == 3)


def _has_torchvision_keys(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return all(_TORCHVISION_KEY.match(k) for k in state_dict)


def _from_resnets(state_dict: Mapping[str, torch.Tensor], config: ResNetConfig | None = None) -> StateDict:
    return strip_prefixes(state_dict)


def _from_timm(state_dict: Mapping[str, torch.Tensor], config: ResNetConfig | None = None) -> StateDict:
    return strip_prefixes(state_dict)


def _from_torchvision(state_dict: Mapping[str, torch.Tensor], config: ResNetConfig | None = None) -> StateDict:
    state_dict = strip_prefixes(state_dict)
    if config is not None and not torchvision_can_build(config):
        raise ResnetsError(f"{config.name or 'this model'} has no torchvision counterpart (torchvision builds only "
                           "7x7-stem ResNets/ResNeXts/Wide ResNets without SE): use --from timm or auto")
    foreign = [k for k in state_dict if not _TORCHVISION_KEY.match(k)]
    if foreign:
        raise ResnetsError(f"the weights hold keys torchvision never writes ({', '.join(foreign[:3])}"
                           f"{' ...' if len(foreign) > 3 else ''}): they are timm's or ours; use --from timm or auto")
    return state_dict


STATE_DICT_CONVERTERS: dict[str, Callable[..., StateDict]] = {
    "resnets": _from_resnets,
    "timm": _from_timm,
    "torchvision": _from_torchvision,
}


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], source: str,
                       config: ResNetConfig | None = None) -> StateDict:
    """Map an in-memory state dict from `source` ('timm', 'torchvision' or 'resnets') to our names."""
    if source not in STATE_DICT_CONVERTERS:
        raise unknown("weight source", source, STATE_DICT_CONVERTERS)
    return STATE_DICT_CONVERTERS[source](state_dict, config)


def pytorch_source(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
                   config: ResNetConfig) -> str:
    """Which PyTorch ecosystem a state dict comes from, by its metadata and key names."""
    if metadata.get("format") == FORMAT_TAG:
        return "resnets"
    if _has_torchvision_keys(strip_prefixes(state_dict)) and torchvision_can_build(config):
        return "torchvision"
    return "timm"


def _state_dict_reader(name: str) -> Reader:
    def read(path: Path, config: ResNetConfig) -> tuple[StateDict, dict[str, str]]:
        state_dict, metadata = read_state_dict(path)
        return STATE_DICT_CONVERTERS[name](state_dict, config), metadata

    return read


# --- Keras and PaddleClas: imported only when used -------------------------------------------------------
def _keras_detect(path: Path) -> bool:
    from .keras import looks_like_keras

    return looks_like_keras(path)


def _keras_read(path: Path, config: ResNetConfig) -> tuple[StateDict, dict[str, str]]:
    from .keras import read_keras

    return read_keras(path, config)


def _paddle_module():
    try:
        return importlib.import_module(f"{__package__}.paddle")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__package__}.paddle":  # this build has no PaddleClas reader
            return None
        raise


def _paddle_detect(path: Path) -> bool:
    module = _paddle_module()
    return module.looks_like_paddle(path) if module is not None else path.suffix == ".pdparams"


def _paddle_read(path: Path, config: ResNetConfig) -> tuple[StateDict, dict[str, str]]:
    module = _paddle_module()
    if module is None:
        raise ResnetsError(f"{path}: {PADDLE_MISSING}")
    return module.read_paddle(path, config)


SOURCES: dict[str, Source] = {
    "resnets": Source("resnets", "our safetensors files", _is_pytorch_file, _state_dict_reader("resnets")),
    "timm": Source("timm", "timm state dicts (.pth/.bin/.safetensors)", _is_pytorch_file, _state_dict_reader("timm")),
    "torchvision": Source("torchvision", "torchvision state dicts (.pth)", _is_pytorch_file,
                          _state_dict_reader("torchvision")),
    "keras": Source("keras", "Keras applications .h5/.keras (needs h5py)", _keras_detect, _keras_read),
    "paddle": Source("paddle", "PaddleClas .pdparams", _paddle_detect, _paddle_read),
}
AUTO = "auto"
SOURCE_CHOICES = (AUTO, *SOURCES)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ResnetsError(f"weight file not found: {path}")
    if path.is_dir():
        raise ResnetsError(f"weight path is a directory, not a file: {path}")


def read_weights(path: str | Path, config: ResNetConfig,
                 source: str = AUTO) -> tuple[StateDict, dict[str, str], str]:
    """(state dict under our names, metadata, the source used) for a weight file meant for `config`."""
    path = Path(path)
    if source != AUTO and source not in SOURCES:
        raise unknown("weight source", source, SOURCE_CHOICES)
    _check_file(path)
    if source != AUTO:
        state_dict, metadata = SOURCES[source].read(path, config)
        return state_dict, metadata, source
    for name in ("keras", "paddle"):  # their detectors read only headers; PyTorch files need a full read
        if SOURCES[name].detect(path):
            state_dict, metadata = SOURCES[name].read(path, config)
            return state_dict, metadata, name
    state_dict, metadata = read_state_dict(path)
    name = pytorch_source(state_dict, metadata, config)
    return STATE_DICT_CONVERTERS[name](state_dict, config), metadata, name
