"""Building models from presets and weight files: create_model, load_model, load_weights, save_model.

This is the layer that joins the model definitions (``resnets.models``) with the weight readers and converters
(``resnets.weights``); the package facade re-exports it, and nothing below it imports the facade.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from ..errors import ResnetsError
from ..models.config import ResNetConfig
from ..models.registry import get_config
from ..models.resnet import ResNet, head_keys
from .convert import AUTO, OVERRIDES_KEY, convert_state_dict, read_weights
from .io import read_state_dict, save_weights
from .load import load_into


def create_model(name: str, num_classes: int | None = None, weights: str | Path | None = None, *,
                 reset_head: bool = False, source: str = AUTO, pretrained: str | None = None,
                 **overrides: Any) -> ResNet:
    """Build the preset `name`, optionally loading `weights`: ours, timm's, torchvision's, Keras' (.h5/.keras)
    or PaddleClas' (.pdparams); `source` names the ecosystem, "auto" (the default) recognises it from the file.
    Where the weights expect other preprocessing than the preset's (Keras), the model's config carries it.

    `pretrained` names weights the peers publish by tag instead of a file: timm's ("a1_in1k", "tv2_in1k", or
    "resnet50.a1_in1k") or torchvision's ("IMAGENET1K_V2"); they come from the local Hugging Face / torch hub
    cache, are downloaded when the machine is online, and bring the evaluation size, crop and normalisation
    their published top-1 was measured with (`resnets models --pretrained` lists them).

    `num_classes` defaults to the checkpoint's class count when weights are given, else the preset's (1000).
    `overrides` change any ResNetConfig field (e.g. drop_path_rate=0.05, act="silu"), among them the backbone
    options as timm names them: features_only=True with out_indices=(1, 2, 3, 4) (a list of feature maps, no
    head: a classifier checkpoint loads without its head), output_stride=8 or 16 (dilated last stages),
    norm_layer="frozen_batchnorm" or "groupnorm" (norm_groups=32) and grad_checkpointing=True.
    """
    config = get_config(name)
    features_only = overrides.get("features_only", config.features_only)
    state_dict, metadata, used, label = (None, {}, None, name)
    if pretrained is not None:
        if weights is not None:
            raise ResnetsError("give weights (a file) or pretrained (a published tag), not both")
        from .hub import read_published, split_tag

        _, tag = split_tag(name, pretrained)
        state_dict, fetched = read_published(name, tag)
        used, label = fetched.entry.source, f"{name} ({fetched.origin})"
        state_dict = convert_state_dict(state_dict, used, config.replace(**{**overrides, "num_classes": 0}))
        overrides = {**fetched.entry.preprocessing(), **overrides}  # what the caller sets wins
    elif weights is not None:
        # The reader checks the file against the network the user asked for (overrides included).
        state_dict, metadata, used = read_weights(weights, config.replace(**{**overrides, "num_classes": 0}), source)
        overrides = {**json.loads(metadata.get(OVERRIDES_KEY, "{}")), **overrides}
    if state_dict is not None:
        classifier = head_keys(overrides.get("preact", config.preact))[0]
        if num_classes is None and not reset_head and not features_only and classifier in state_dict:
            num_classes = state_dict[classifier].shape[0]
    if num_classes is None:
        num_classes = 0 if features_only else config.num_classes
    config = config.replace(num_classes=num_classes, **overrides)
    # Where the checkpoint supplies every tensor, skip the random initialisation (seconds for the big nets):
    # build on the meta device and allocate uninitialised storage; load_into is strict, so nothing stays unset.
    fill_all = state_dict is not None and not reset_head
    with torch.device("meta") if fill_all else nullcontext():
        model = ResNet(config)
    if fill_all:
        model.to_empty(device="cpu")
        for key, buffer in model.named_buffers():
            if key.endswith("num_batches_tracked"):  # the one thing a checkpoint may leave out
                buffer.zero_()
    if state_dict is not None:
        load_into(model, _without_unbuilt(model, state_dict), reset_head=reset_head, model_name=label)
        has_head = not reset_head and not features_only
        model.class_names = _class_names(metadata, config.num_classes) if has_head else None
        model.weights_source = used if "source_model" not in metadata else f"{used}: {metadata['source_model']}"
    return model


def _without_unbuilt(model: ResNet, state_dict: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint less what the model leaves out by design (a backbone's head, frozen BN counters)."""
    dropped = set(model.keys_not_built(state_dict))
    return {k: v for k, v in state_dict.items() if k not in dropped}


def load_model(path: str | Path, **overrides: Any) -> ResNet:
    """Rebuild a model from one of our safetensors files, whose metadata carries its config."""
    state_dict, metadata = read_state_dict(path)
    if "config" not in metadata:
        raise ResnetsError(f"{path} carries no model config (not written by resnets): use "
                           "create_model(NAME, weights=PATH) and name the architecture")
    config = ResNetConfig.from_json(metadata["config"])
    if overrides:
        config = config.replace(**overrides)
    model = ResNet(config)
    load_into(model, convert_state_dict(state_dict, "resnets"), model_name=config.name or str(path))
    model.class_names = _class_names(metadata, config.num_classes)
    return model


def load_weights(model: ResNet, weights: str | Path, *, reset_head: bool = False, source: str = AUTO) -> None:
    """Load a weight file into an existing model (strict; `reset_head` keeps the model's classifier). A file
    whose weights expect other preprocessing (Keras) is refused: create_model carries that into the config."""
    state_dict, metadata, _ = read_weights(weights, model.config, source)
    if OVERRIDES_KEY in metadata:
        wanted = json.loads(metadata[OVERRIDES_KEY])
        if model.config.replace(**wanted) != model.config:
            raise ResnetsError(f"{weights} expects other preprocessing than this model's config ({wanted}): "
                               "load it with create_model(NAME, weights=PATH), which carries it over")
    load_into(model, _without_unbuilt(model, state_dict), reset_head=reset_head,
              model_name=model.config.name or "model")
    if not reset_head:
        model.class_names = _class_names(metadata, model.config.num_classes)


def save_model(model: ResNet, path: str | Path, class_names: list[str] | None = None) -> None:
    """Write the model's weights with its config (and class names) in the safetensors metadata."""
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    save_weights(model.state_dict(), path, config=model.config, class_names=names)


def _class_names(metadata: dict[str, str], num_classes: int) -> list[str] | None:
    if "class_names" not in metadata:
        return None
    names = json.loads(metadata["class_names"])
    return names if len(names) == num_classes else None


