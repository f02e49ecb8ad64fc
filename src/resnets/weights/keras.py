"""Keras applications ResNets -> our state dicts, read with h5py alone (no TensorFlow at conversion time).

Three Keras families map onto presets (docs/reference.md §1.10): ResNet50/101/152 (v1, caffe preprocessing)
into `resnet50a/101a/152a`, ResNet50V2/101V2/152V2 into `resnet50v2/101v2/152v2`, ResNetRS50..420 into
`resnetrs*`. Two file kinds hold layer names: a legacy `.h5` (`model.save("m.h5")` or `save_weights("m.h5")`:
every layer a group with its `weight_names`) and a `.keras` zip (names in `config.json`, the weights in
`model.weights.h5` under class-derived paths that follow the config's layer order). A bare `.weights.h5` has
only the class-derived paths, so it cannot be told apart from any other network of the same layer classes.

What is folded so that our network computes exactly what Keras does:
* conv biases (v1) into the following BN's running mean, and Keras' BN eps into the running variance;
* the preprocessing into the converted config's mean/std: ResNet-RS' Rescaling + Normalization layers, v1's
  caffe `preprocess_input` (BGR, 0-255 minus the BGR mean; the channel order goes into conv1's input
  channels), v2's "tf" mode (x / 127.5 - 1, already the preset's).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ResnetsError
from ..models.config import ResNetConfig

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
# Architecture fields that decide which weights a network has and how they are used; the rest (dropout,
# drop path, preprocessing) may differ between the preset and the user's build.
ARCHITECTURE_FIELDS = ("block", "layers", "stage_planes", "stride_in_1x1", "stride_block", "preact", "residual_bias",
                       "cardinality", "base_width", "stem_type", "stem_width", "stem_pool", "shortcut", "se_ratio",
                       "first_block_projection", "width_multiplier", "in_chans")
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # tf_keras imagenet_utils.preprocess_input, mode "caffe"
KERAS_BN_EPS = {"v1": 1.001e-5, "v2": 1.001e-5, "rs": 1e-5}  # the applications' defaults, for files without config

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Family:
    """One Keras applications family: how to recognise it and which preset each depth becomes."""

    key: str
    label: str  # Keras' constructor name with {depth}
    presets: dict[tuple[int, ...], tuple[int, str]]  # stage layout -> (depth, our preset)


FAMILIES = {
    "v1": Family("v1", "ResNet{depth}", {(3, 4, 6, 3): (50, "resnet50a"), (3, 4, 23, 3): (101, "resnet101a"),
                                         (3, 8, 36, 3): (152, "resnet152a")}),
    "v2": Family("v2", "ResNet{depth}V2", {(3, 4, 6, 3): (50, "resnet50v2"), (3, 4, 23, 3): (101, "resnet101v2"),
                                           (3, 8, 36, 3): (152, "resnet152v2")}),
    "rs": Family("rs", "ResNetRS{depth}", {
        (3, 4, 6, 3): (50, "resnetrs50"), (3, 4, 23, 3): (101, "resnetrs101"), (3, 8, 36, 3): (152, "resnetrs152"),
        (3, 24, 36, 3): (200, "resnetrs200"), (4, 29, 53, 4): (270, "resnetrs270"),
        (4, 36, 72, 4): (350, "resnetrs350"), (4, 44, 87, 4): (420, "resnetrs420")}),
}


def supported_models() -> str:
    """The Keras models this reader converts, as one phrase: ResNet50/101/152, ResNet50V2/101V2/152V2, ..."""
    parts = []
    for family in FAMILIES.values():
        prefix = family.label.split("{depth}")[0]
        labels = [family.label.format(depth=depth) for depth, _ in family.presets.values()]
        parts.append(labels[0] + "".join("/" + label[len(prefix):] for label in labels[1:]))
    return ", ".join(parts)


@dataclass
class KerasFile:
    """What a Keras file holds, independent of its kind: layers in order, their weights by variable name
    ('kernel', 'bias', 'gamma', ...), and each layer's Keras config where the file has one."""

    path: Path
    model_name: str | None
    layers: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)


# --- detection ------------------------------------------------------------------------------------------
def _head(path: Path, size: int = 8) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def looks_like_keras(path: str | Path) -> bool:
    """An HDF5 file, or a zip holding Keras' config.json + model.weights.h5 (reads only the headers)."""
    path = Path(path)
    head = _head(path)
    if head == HDF5_MAGIC:
        return True
    if head[:4] == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
        return {"config.json", "model.weights.h5"} <= names
    return path.suffix.lower() in KERAS_SUFFIXES


# --- reading --------------------------------------------------------------------------------------------
def _h5py():
    try:
        import h5py
    except ImportError:
        raise ResnetsError("reading Keras files needs h5py: pip install 'resnets[keras]'") from None
    return h5py


def _snake_case(name: str) -> str:
    """Keras' to_snake_case: the class-derived names of a `.keras` weights file (tf_keras generic_utils)."""
    name = re.sub("([a-z])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()
    return name if not name.startswith("_") else "private" + name


def _variable_names(class_name: str, config: dict[str, Any]) -> list[str] | None:
    """The order in which a layer class keeps its variables (None: a class this reader need not know)."""
    if class_name in ("Conv2D", "Dense"):
        return ["kernel"] + (["bias"] if config.get("use_bias", True) else [])
    if class_name == "BatchNormalization":
        return ((["gamma"] if config.get("scale", True) else []) + (["beta"] if config.get("center", True) else [])
                + ["moving_mean", "moving_variance"])
    if class_name == "Normalization":
        return ["mean", "variance", "count"]
    return None


def _model_layers(model_config: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    config = model_config.get("config", {})
    layers = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list):
        kind = model_config.get("class_name", "unknown")
        raise ResnetsError(f"{path} holds a Keras {kind} model without a layer list: resnets converts the "
                           f"functional Keras applications models ({supported_models()})")
    return layers


def _read_zip(path: Path) -> KerasFile:
    h5py = _h5py()
    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise ResnetsError(f"{path} is a zip but not a Keras file (.keras archives hold config.json and "
                                   "model.weights.h5; PyTorch files are zips too: try --from auto)")
            model_config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as exc:
        raise ResnetsError(f"cannot read Keras file {path}: not a complete .keras archive ({exc})") from None
    layers = _model_layers(model_config, path)
    out = KerasFile(path, model_config.get("config", {}).get("name"))
    used: dict[str, int] = {}
    with h5py.File(io.BytesIO(weights), "r") as handle:
        stored = handle.get("layers")
        for layer in layers:
            class_name, name = layer.get("class_name", ""), layer.get("config", {}).get("name", layer.get("name"))
            snake = _snake_case(class_name)
            index = used[snake] = used.get(snake, -1) + 1
            key = snake if index == 0 else f"{snake}_{index}"
            out.configs[name], out.classes[name] = layer.get("config", {}), class_name
            group = stored.get(f"{key}/vars") if stored is not None else None
            if group is None or len(group) == 0:
                continue
            names = _variable_names(class_name, out.configs[name]) or [f"var{i}" for i in range(len(group))]
            out.layers[name] = {var: np.asarray(group[str(i)]) for i, var in enumerate(names) if str(i) in group}
    return out


def _read_h5(path: Path) -> KerasFile:
    h5py = _h5py()
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ResnetsError(f"cannot read Keras file {path}: corrupt or not an HDF5 file ({exc})") from None
    with handle:
        root = handle.get("model_weights", handle)
        layer_names = _attr_list(root, "layer_names")
        if layer_names is None:
            if "layers" in handle or "vars" in handle:
                raise ResnetsError(
                    f"{path} is a Keras .weights.h5 file: it stores weights without layer names, so which layer "
                    "is which cannot be told; save the whole model instead (model.save('model.keras') or "
                    "model.save('model.h5')) and convert that")
            raise ResnetsError(f"{path} is an HDF5 file but not a Keras model or weights file (no layer_names)")
        model_config = _json_attr(handle.attrs, "model_config")  # model.save("m.h5") only
        out = KerasFile(path, None)
        if model_config is not None:
            out.model_name = model_config.get("config", {}).get("name")
            for layer in _model_layers(model_config, path):
                name = layer.get("config", {}).get("name", layer.get("name"))
                out.configs[name], out.classes[name] = layer.get("config", {}), layer.get("class_name", "")
        for name in layer_names:
            group = root.get(name)
            if group is None:
                raise ResnetsError(f"cannot read Keras file {path}: layer {name!r} is listed but has no group")
            weight_names = _attr_list(group, "weight_names") or []
            if weight_names:
                out.layers[name] = {n.split("/")[-1].split(":")[0]: np.asarray(group[n]) for n in weight_names}
    return out


def _attr_list(group: Any, name: str) -> list[str] | None:
    """A list attribute as Keras writes it: whole, or past HDF5's 64 kB header limit in chunks name0, name1, ...
    (tf_keras legacy/saving_utils save_attributes_to_hdf5_group), as in the deep ResNet-RS' layer_names."""
    if name in group.attrs:
        return [_text(n) for n in group.attrs[name]]
    if f"{name}0" not in group.attrs:
        return None
    out, chunk = [], 0
    while f"{name}{chunk}" in group.attrs:
        out += [_text(n) for n in group.attrs[f"{name}{chunk}"]]
        chunk += 1
    return out


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _json_attr(attrs: Any, key: str) -> dict[str, Any] | None:
    if key not in attrs:
        return None
    try:
        return json.loads(_text(attrs[key]))
    except json.JSONDecodeError:
        return None


def read_keras_file(path: str | Path) -> KerasFile:
    """The layers of a `.h5` or `.keras` file (format by content, not by suffix)."""
    path = Path(path)
    if not path.is_file():
        raise ResnetsError(f"weight file not found: {path}" if not path.exists()
                           else f"weight path is a directory, not a file: {path}")
    head = _head(path)
    if head[:4] == ZIP_MAGIC:
        return _read_zip(path)
    if head == HDF5_MAGIC:
        return _read_h5(path)
    raise ResnetsError(f"{path} is not a Keras file: neither a legacy .h5 (HDF5) nor a .keras (zip)")


# --- recognising the architecture -----------------------------------------------------------------------
_RS_COUNTER = re.compile(r"^stem_\d+_")  # ResNet-RS' STEM() names itself stem_<per-process counter>


def _strip_counter(name: str) -> str:
    return _RS_COUNTER.sub("stem_", name)


@dataclass(frozen=True)
class Recognised:
    family: Family
    depth: int
    preset: str
    layout: tuple[int, ...]

    @property
    def label(self) -> str:
        return self.family.label.format(depth=self.depth)


def _stage_layout(names: set[str], pattern: str) -> tuple[int, ...]:
    blocks: dict[int, set[int]] = {}
    for name in names:
        found = re.match(pattern, name)
        if found:
            blocks.setdefault(int(found.group(1)), set()).add(int(found.group(2)))
    return tuple(len(blocks[stage]) for stage in sorted(blocks))


def recognise(keras_file: KerasFile) -> Recognised:
    """Which Keras applications model the file holds, from its layer names; one clear line if none."""
    names = {_strip_counter(n) for n in keras_file.layers}
    if "stem_stem_conv_1" in names:
        family, layout = FAMILIES["rs"], _stage_layout(names, r"^BlockGroup(\d+)__block_(\d+)__conv_1$")
    elif "conv2_block1_preact_bn" in names:
        family, layout = FAMILIES["v2"], _stage_layout(names, r"^conv(\d+)_block(\d+)_1_conv$")
    elif {"conv1_conv", "conv1_bn", "conv2_block1_1_conv"} <= names:
        family, layout = FAMILIES["v1"], _stage_layout(names, r"^conv(\d+)_block(\d+)_1_conv$")
    else:
        what = f"'{keras_file.model_name}'" if keras_file.model_name else "a model with layers " + ", ".join(
            sorted(keras_file.layers)[:3])
        raise ResnetsError(f"{keras_file.path} holds Keras {what}, which resnets cannot convert; supported: "
                           f"{supported_models()}")
    if layout not in family.presets:
        raise ResnetsError(f"{keras_file.path} holds a Keras {family.label.format(depth='')} with {list(layout)} blocks "
                           f"per stage, which matches none of {supported_models()}")
    depth, preset = family.presets[layout]
    return Recognised(family, depth, preset, layout)


def keras_preset(path: str | Path) -> str:
    """Our preset for the Keras model in `path` (so `resnets convert` needs no --model for Keras files)."""
    return recognise(read_keras_file(path)).preset


# --- mapping --------------------------------------------------------------------------------------------
class _Mapper:
    """Turns Keras layers into our tensors, with one clear line for anything missing or misshapen."""

    def __init__(self, keras_file: KerasFile, recognised: Recognised, target_eps: float) -> None:
        self.file, self.recognised, self.target_eps = keras_file, recognised, target_eps
        self.layers = {_strip_counter(n): w for n, w in keras_file.layers.items()}
        self.configs = {_strip_counter(n): c for n, c in keras_file.configs.items()}
        self.out: StateDict = {}

    def _get(self, layer: str, var: str, ndim: int) -> np.ndarray:
        weights = self.layers.get(layer)
        if weights is None or var not in weights:
            raise ResnetsError(f"{self.file.path} lacks {layer}/{var}, which a Keras {self.recognised.label} has")
        value = weights[var]
        if value.ndim != ndim:
            raise ResnetsError(f"{self.file.path}: {layer}/{var} has shape {tuple(value.shape)}, not the "
                               f"{ndim}-d array a Keras {self.recognised.label} has there")
        return value.astype(np.float32, copy=False)

    def has(self, layer: str) -> bool:
        return layer in self.layers

    def conv(self, layer: str, ours: str, *, bias: bool = False,
             transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray | None:
        """A Conv2D kernel (kh, kw, in, out) -> ours (out, in, kh, kw); returns the Keras bias, if any."""
        kernel = self._get(layer, "kernel", 4).transpose(3, 2, 0, 1)
        if transform is not None:
            kernel = transform(kernel)
        self.out[f"{ours}.weight"] = torch.from_numpy(kernel.copy(order="C"))  # a copy: no negative strides
        keras_bias = self.layers[layer].get("bias")
        if bias:
            self.out[f"{ours}.bias"] = torch.from_numpy(self._get(layer, "bias", 1).copy())
            return None
        return None if keras_bias is None else keras_bias.astype(np.float32)

    def batchnorm(self, layer: str, ours: str, folded_bias: np.ndarray | None = None) -> None:
        """gamma/beta/moving stats -> weight/bias/running stats; a preceding conv bias moves into the mean and
        the eps difference into the variance, so (x + b - mean) / sqrt(var + eps) is unchanged."""
        mean, var = self._get(layer, "moving_mean", 1), self._get(layer, "moving_variance", 1)
        weights = self.layers[layer]
        gamma = weights.get("gamma", np.ones_like(mean))
        beta = weights.get("beta", np.zeros_like(mean))
        eps = float(self.configs.get(layer, {}).get("epsilon", KERAS_BN_EPS[self.recognised.family.key]))
        if folded_bias is not None:
            mean = mean - folded_bias
        var = var + np.float32(eps - self.target_eps)
        for name, value in (("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", var)):
            self.out[f"{ours}.{name}"] = torch.from_numpy(np.array(value, dtype=np.float32))

    def conv_bn(self, conv: str, bn: str, ours_conv: str, ours_bn: str,
                transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.batchnorm(bn, ours_bn, self.conv(conv, ours_conv, transform=transform))

    def dense(self, layer: str, ours: str, as_conv: bool = False) -> None:
        kernel = self._get(layer, "kernel", 2).T
        if as_conv:  # pre-activation heads are 1x1 convs
            kernel = kernel[:, :, None, None]
        self.out[f"{ours}.weight"] = torch.from_numpy(kernel.copy(order="C"))  # a copy: no negative strides
        self.out[f"{ours}.bias"] = torch.from_numpy(self._get(layer, "bias", 1).copy())


def _map_v1(m: _Mapper, layout: tuple[int, ...]) -> None:
    # caffe mode feeds BGR: reversing conv1's input channels lets it read our RGB input.
    m.conv_bn("conv1_conv", "conv1_bn", "conv1", "bn1", transform=lambda k: k[:, ::-1])
    for stage, blocks in enumerate(layout):
        for block in range(blocks):
            keras, ours = f"conv{stage + 2}_block{block + 1}", f"layer{stage + 1}.{block}"
            for i in (1, 2, 3):
                m.conv_bn(f"{keras}_{i}_conv", f"{keras}_{i}_bn", f"{ours}.conv{i}", f"{ours}.bn{i}")
            if m.has(f"{keras}_0_conv"):
                m.conv_bn(f"{keras}_0_conv", f"{keras}_0_bn", f"{ours}.downsample.0", f"{ours}.downsample.1")
    if m.has("predictions"):
        m.dense("predictions", "fc")


def _map_v2(m: _Mapper, layout: tuple[int, ...]) -> None:
    m.conv("conv1_conv", "stem.conv", bias=True)
    for stage, blocks in enumerate(layout):
        for block in range(blocks):
            keras, ours = f"conv{stage + 2}_block{block + 1}", f"stages.{stage}.blocks.{block}"
            m.batchnorm(f"{keras}_preact_bn", f"{ours}.norm1")
            m.conv(f"{keras}_1_conv", f"{ours}.conv1")
            m.batchnorm(f"{keras}_1_bn", f"{ours}.norm2")
            m.conv(f"{keras}_2_conv", f"{ours}.conv2")
            m.batchnorm(f"{keras}_2_bn", f"{ours}.norm3")
            m.conv(f"{keras}_3_conv", f"{ours}.conv3", bias=True)
            if m.has(f"{keras}_0_conv"):
                m.conv(f"{keras}_0_conv", f"{ours}.downsample.conv", bias=True)
    m.batchnorm("post_bn", "norm")
    if m.has("predictions"):
        m.dense("predictions", "head.fc", as_conv=True)


def _map_rs(m: _Mapper, layout: tuple[int, ...]) -> None:
    # STEM(): four convs; our deep stem is conv1 = [conv, bn, act, conv, bn, act, conv] + bn1, and the fourth
    # (stride-2) conv is the max-pool's replacement.
    for i, (conv, bn) in enumerate([("conv1.0", "conv1.1"), ("conv1.3", "conv1.4"), ("conv1.6", "bn1"),
                                    ("maxpool.0", "maxpool.1")]):
        m.conv_bn(f"stem_stem_conv_{i + 1}", f"stem_stem_batch_norm_{i + 1}", conv, bn)
    for stage, blocks in enumerate(layout):
        for block in range(blocks):
            keras, ours = f"BlockGroup{stage + 2}__block_{block}_", f"layer{stage + 1}.{block}"
            m.conv_bn(f"{keras}_conv_1", f"{keras}batch_norm_1", f"{ours}.conv1", f"{ours}.bn1")  # sic: one '_'
            m.conv_bn(f"{keras}_conv_2", f"{keras}_batch_norm_2", f"{ours}.conv2", f"{ours}.bn2")
            m.conv_bn(f"{keras}_conv_3", f"{keras}_batch_norm_3", f"{ours}.conv3", f"{ours}.bn3")
            m.conv(f"{keras}_se_se_reduce", f"{ours}.se.fc1", bias=True)
            m.conv(f"{keras}_se_se_expand", f"{ours}.se.fc2", bias=True)
            if m.has(f"{keras}_projection_conv"):  # avg-pool shortcut: pool .0, conv .1, bn .2
                m.conv_bn(f"{keras}_projection_conv", f"{keras}_projection_batch_norm", f"{ours}.downsample.1",
                          f"{ours}.downsample.2")
    if m.has("predictions"):
        m.dense("predictions", "fc")


_MAPPERS = {"v1": _map_v1, "v2": _map_v2, "rs": _map_rs}


# --- preprocessing --------------------------------------------------------------------------------------
def _preprocessing(keras_file: KerasFile, recognised: Recognised) -> dict[str, list[float]] | None:
    """mean/std (of 0-1 RGB, our convention) under which our input equals what the Keras model's first
    weighted layer sees for 0-255 RGB images; None keeps the preset's."""
    family = recognised.family.key
    if family == "v1":  # caffe: x_bgr - mean_bgr on 0-255, unscaled; the channel flip is in conv1
        return {"mean": [m / 255 for m in reversed(CAFFE_MEAN_BGR)], "std": [1 / 255] * 3}
    if family == "v2":  # "tf": x / 127.5 - 1
        return {"mean": [0.5] * 3, "std": [0.5] * 3}
    classes = {_strip_counter(n): c for n, c in keras_file.classes.items()}
    configs = {_strip_counter(n): c for n, c in keras_file.configs.items()}
    rescaling = next((configs[n] for n, c in classes.items() if c == "Rescaling"), None)
    normalization = next((n for n, c in classes.items() if c == "Normalization"), None)
    if not classes:  # a weights-only legacy .h5: tf_keras' ResNetRS builds fixed layers, if it built them
        present = {_strip_counter(n) for n in keras_file.layers}
        if not any(n.startswith("normalization") for n in present):
            return None
        return {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    if rescaling is None and normalization is None:
        return None  # include_preprocessing=False: the caller normalises, by Keras' docs with ImageNet mean/std
    scale = float(rescaling.get("scale", 1.0)) if rescaling else 1.0
    offset = float(rescaling.get("offset", 0.0)) if rescaling else 0.0
    mean, variance = [0.0] * 3, [1.0] * 3
    if normalization is not None:
        stored = keras_file.layers.get(normalization) or {}
        config = configs[normalization]
        mean = _three(stored.get("mean", config.get("mean")), keras_file.path)
        variance = _three(stored.get("variance", config.get("variance")), keras_file.path)
    # Keras: z = (x * scale + offset - m) / sqrt(v) for x in 0-255; ours: t = (x / 255 - mean) / std.
    return {"mean": [(m - offset) / (255 * scale) for m in mean],
            "std": [max(float(np.sqrt(v)), 1e-7) / (255 * scale) for v in variance]}  # 1e-7: Keras' epsilon


def _three(value: Any, path: Path) -> list[float]:
    flat = np.asarray(value, dtype=np.float64).reshape(-1) if value is not None else np.zeros(0)
    if flat.size == 1:
        flat = np.repeat(flat, 3)
    if flat.size != 3:
        raise ResnetsError(f"{path}: the Normalization layer has {flat.size} channels of statistics, not 3")
    return [float(v) for v in flat]


# --- the source's entry point ---------------------------------------------------------------------------
def check_architecture(config: ResNetConfig, preset: str, label: str, path: Path) -> None:
    """The preset named by the user must be the one the Keras model maps to (or build the same network):
    a stride in a different place would load without a shape error and compute something else."""
    from ..models.registry import get_config

    expected = get_config(preset)
    differs = [f for f in ARCHITECTURE_FIELDS if getattr(config, f) != getattr(expected, f)]
    if differs:
        name = config.name or "the requested model"
        raise ResnetsError(f"{path} holds a Keras {label}, which converts to {preset}, not {name} "
                           f"(they differ in {', '.join(differs)}): use --model {preset}")


def read_keras(path: str | Path, config: ResNetConfig) -> tuple[StateDict, dict[str, str]]:
    """Our state dict and metadata (the preprocessing as config overrides) for a Keras `.h5`/`.keras` file."""
    keras_file = read_keras_file(path)
    recognised = recognise(keras_file)
    check_architecture(config, recognised.preset, recognised.label, keras_file.path)
    mapper = _Mapper(keras_file, recognised, config.bn_eps)
    _MAPPERS[recognised.family.key](mapper, recognised.layout)
    metadata = {"source_model": f"Keras {recognised.label}"}
    preprocessing = _preprocessing(keras_file, recognised)
    if preprocessing is not None:
        metadata["config_overrides"] = json.dumps(preprocessing)
    return mapper.out, metadata
