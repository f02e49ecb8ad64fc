"""A model from any weight file, or from a published tag: ours rebuild themselves from their metadata,
timm/torchvision files need a preset name. Shared by `eval`, `predict`, `bench` and `export`."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ResnetsError
from ..models.resnet import ResNet


def has_resnets_config(path: str | Path) -> bool:
    """True for our safetensors files (config in the metadata); reads only the header."""
    path = Path(path)
    if not path.is_file():
        raise ResnetsError(f"weight file not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return "config" in (handle.metadata() or {})
    except Exception:  # noqa: BLE001 - not safetensors (a .pth) or corrupt: the full reader will say which
        return False


def _is_keras(path: str | Path) -> bool:
    from .convert import SOURCES

    return SOURCES["keras"].detect(Path(path))


def model_from_weights(weights: str | Path | None, model_name: str | None = None, *,
                       pretrained: str | None = None) -> ResNet:
    """A model ready for inference from a weight file (ours carry their config, Keras files name their network;
    timm/torchvision/PaddleClas files need `model_name` to say which architecture they hold), or from a
    published tag (`pretrained`: TAG with `model_name`, or MODEL.TAG)."""
    from .factory import create_model, load_model

    if pretrained is not None:
        if weights is not None:
            raise ResnetsError("give --weights FILE or --pretrained TAG, not both")
        from .hub import split_tag

        preset, tag = split_tag(model_name, pretrained)
        return create_model(preset, pretrained=tag).eval()
    if weights is None:
        raise ResnetsError("no weights: give --weights FILE or --pretrained TAG")
    if has_resnets_config(weights):
        model = load_model(weights)
        if model_name and model.config.name and model_name != model.config.name:
            print(f"note: {weights} holds a {model.config.name}; using it (ignoring --model {model_name})",
                  file=sys.stderr)
    elif model_name:
        model = create_model(model_name, weights=weights)
    elif _is_keras(weights):  # a Keras file names its network
        from .keras import keras_preset

        model = create_model(keras_preset(weights), weights=weights)
    else:
        raise ResnetsError(f"{weights} carries no model config (not written by resnets): "
                           "name the architecture with --model, e.g. --model resnet50")
    return model.eval()


def weights_label(weights: str | Path | None, model_name: str | None, pretrained: str | None) -> str:
    """How a report names the weights: the file's name, or the published MODEL.TAG."""
    if pretrained is None:
        return Path(weights).name if weights is not None else "?"
    from .hub import split_tag

    return ".".join(split_tag(model_name, pretrained))
