"""PaddleClas `.pdparams` -> our state dict, for every ResNet-family backbone of `ppcls/arch/backbone`
(the format and names: docs/reference.md §7).

A `.pdparams` file is what `paddle.save(model.state_dict())` writes: a pickle of {structured name: numpy array}
plus a `StructuredToParameterName@@` table (the static-graph parameter names, of no use here). It is read with
the restricted unpickler of `safe_pickle`, so it cannot run code. PaddleClas names its layers in two families:

* the "legendary" ResNets (`legendary_models/resnet.py`: ResNet18...152 and their `_vd`, ResNet200_vd):
  `stem.K.conv`/`stem.K.bn`, a flat `blocks.N.conv0|conv1|conv2|short` over all stages, `fc`;
* the model zoo (`model_zoo/resnet_vc.py`, `resnext.py`, `resnext_vd.py`, `se_resnet_vd.py`, `se_resnext.py`,
  `se_resnext_vd.py`): `conv1_1|conv1_2|conv1_3` (deep stem) or `conv` (7x7), `bb_S_I.conv0|conv1|conv2|short`
  with `._conv`/`._batch_norm`, squeeze-excitation `bb_S_I.scale.squeeze|excitation`, classifier `out`.

A file keyed by the model zoo's parameter names instead (`res2a_branch2a_weights`, `conv2_1_x1_bn_scale`, ...:
what a static-graph save writes) is read too; the legendary models' parameter names are Paddle's counters
(`conv2d_0.w_0`), which say nothing about the layer, so such a file is refused with advice.

Both map onto one set of roles (stem conv K, stage S block I conv J / shortcut / SE fc, head), and the roles onto
our names, which are read off the preset's own network (on the meta device) so the mapping follows the model
definition rather than a copy of it. Paddle's Linear stores its weight [in, out]: the classifier is transposed,
and the SE Linears become our 1x1 convs. The distilled `_ssld` weights are the same networks under the same
names; a distillation checkpoint's `Student.` half is taken when the file holds one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ResnetsError
from ..models.config import ResNetConfig
from ..models.cost import meta_model
from .safe_pickle import ALLOWED_GLOBALS, load_array_pickle, pickle_globals

NAME_TABLE_KEY = "StructuredToParameterName@@"
STUDENT_PREFIX = "Student."
_BN_PARAMS = {"weight": "weight", "bias": "bias", "_mean": "running_mean", "_variance": "running_var"}

# (pattern, family). Groups: legendary stem k / flat block n; model-zoo stem name / stage s, block i.
_STEM_LEGENDARY = re.compile(r"^stem\.(\d+)\.(conv|bn)\.(\w+)$")
_BLOCK_LEGENDARY = re.compile(r"^blocks\.(\d+)\.(conv[0-3]|short)\.(conv|bn)\.(\w+)$")
_STEM_ZOO = re.compile(r"^(conv1_[1-3]|conv)\.(_conv|_batch_norm)\.(\w+)$")
_BLOCK_ZOO = re.compile(r"^bb_(\d+)_(\d+)\.(conv[0-3]|short)\.(_conv|_batch_norm)\.(\w+)$")
_SE_ZOO = re.compile(r"^bb_(\d+)_(\d+)\.scale\.(squeeze|excitation)\.(weight|bias)$")
_HEAD = re.compile(r"^(fc|out)\.(weight|bias)$")

# The model zoo's parameter names (ParamAttr(name=...)), the keys of a static-graph save (`paddle.static.save`)
# and the values of the `StructuredToParameterName@@` table: `res2a_branch2a_weights` / `bn2a_branch2a_scale`
# (ResNet_vc, ResNeXt, ResNeXt_vd, SE_ResNet_vd; block `a`, `b`, ... or `a`, `b1`, `b2`, ... in the long stages),
# `conv2_1_x1_weights` / `conv2_1_x1_bn_scale` / `conv2_1_prj_*` (SE_ResNeXt and its _vd, whose stage numbers
# start at 4 in the 152-layer ones), SE `fc_res2a_sqz_*` / `fc2_1_exc_*`, classifier `fc_0.w_0`, `fc_weights`,
# `fc6_weights`. The legendary models' parameter names are Paddle's counters (`conv2d_0.w_0`): no place follows.
_STATIC_BLOCK = re.compile(r"^(?:res|bn)(\d)([a-z])(\d*)_branch(2[abc]|1)_(weights|scale|offset|mean|variance)$")
_STATIC_SE = re.compile(r"^fc_res(\d)([a-z])(\d*)_(sqz|exc)_(weights|offset)$")
_STATIC_X_BLOCK = re.compile(r"^conv(\d+)_(\d+)_(x[123]|prj)(_bn)?_(weights|scale|offset|mean|variance)$")
_STATIC_X_SE = re.compile(r"^fc(\d+)_(\d+)_(sqz|exc)_(weights|offset)$")
_STATIC_STEM = re.compile(r"^(?:bnv1_([123])|bn_conv1|conv1_([123])_bn|conv([123])_bn|(?:res_)?conv1_([123])"
                          r"|res_conv1|conv([123]))_(weights|scale|offset|mean|variance)$")
_STATIC_HEAD = {"fc_0.w_0": "weight", "fc_0.b_0": "bias", "fc_weights": "weight", "fc_offset": "bias",
                "fc6_weights": "weight", "fc6_offset": "bias"}
_STATIC_PARAMS = {"weights": "weight", "scale": "weight", "offset": "bias", "mean": "running_mean",
                  "variance": "running_var"}
_COUNTER_NAME = re.compile(r"^(conv2d|batch_norm|linear)_\d+\.[wb]_\d+$")


def looks_like_paddle(path: str | Path) -> bool:
    """True for a `.pdparams` file, or a pickle that rebuilds numpy arrays and names nothing else (PyTorch files
    are zip archives, or a legacy pickle that starts with a bare magic number and names torch's globals). Runs
    nothing."""
    path = Path(path)
    if path.suffix == ".pdparams":
        return True
    try:
        with open(path, "rb") as handle:
            if handle.read(1) != b"\x80":  # a binary pickle starts with its PROTO opcode
                return False
            handle.seek(0)
            found = pickle_globals(handle, str(path))  # reads up to the first pickle's end, runs nothing
    except (OSError, ResnetsError):
        return False
    rebuilds_arrays = any(attr in ("_reconstruct", "_frombuffer") for _, attr in found)
    return rebuilds_arrays and set(found) <= ALLOWED_GLOBALS


def read_paddle(path: str | Path, config: ResNetConfig) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The `.pdparams` at `path` under our names for the preset `config` (shapes checked against it), and metadata
    saying which naming family it used."""
    path = Path(path)
    raw = load_array_pickle(path)
    arrays = _arrays(raw, path)
    family = _family(arrays, path)
    first_x_stage = min((int(m[1]) for k in arrays if (m := _STATIC_X_BLOCK.match(k))), default=2)
    classes = _classes(arrays)
    target = meta_model(config.replace(num_classes=classes, features_only=False)).state_dict()
    ours = _our_names(target, config)
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, array in arrays.items():
        role = _role(key, config) if family != "parameter_names" else _static_role(key, first_x_stage)
        if role is None or role[0] not in ours:
            unknown.append(key)
            continue
        name = ours[role[0]] + "." + role[1]
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if role[0][0] in ("se", "head") and role[1] == "weight":
            tensor = tensor.t()  # Paddle's Linear is [in, out]
            if role[0][0] == "se":
                tensor = tensor[:, :, None, None]  # our SE is a pair of 1x1 convs
        expected = tuple(target[name].shape) if name in target else None
        if expected is not None and tuple(tensor.shape) != expected:
            raise ResnetsError(f"{path} does not fit {config.name or 'the model'}: {key} has shape "
                               f"{tuple(array.shape)}, {name} needs {expected} (a different architecture?)")
        out[name] = tensor.contiguous()
    if unknown:
        shown = ", ".join(unknown[:4]) + (f" and {len(unknown) - 4} more" if len(unknown) > 4 else "")
        raise ResnetsError(f"{path} does not fit {config.name or 'the model'}: no place for {len(unknown)} "
                           f"PaddleClas tensor(s): {shown}")
    return out, {"source": "paddle", "paddle_naming": family}


def _family(arrays: Mapping[str, np.ndarray], path: Path) -> str:
    """Which names the file uses: structured (legendary or model zoo) or the model zoo's parameter names."""
    if any(k.startswith(("stem.", "blocks.")) for k in arrays):
        return "legendary"
    if any(k.startswith(("conv1_1.", "conv.", "bb_")) or _HEAD.match(k) for k in arrays):
        return "model_zoo"
    if all(_COUNTER_NAME.match(k) for k in arrays):
        raise ResnetsError(f"{path} names its tensors by Paddle's counters ({next(iter(arrays))}, ...), which do not "
                           "say where each belongs: save the model's state_dict() with paddle.save instead")
    return "parameter_names"


def _arrays(raw: Any, path: Path) -> dict[str, np.ndarray]:
    """The {name: numeric array} content of an unpickled .pdparams (a plain dict, maybe a distillation pair)."""
    if not isinstance(raw, Mapping):
        raise ResnetsError(f"{path} is not a PaddlePaddle state dict (a pickle of {type(raw).__name__}, not a dict)")
    items = {k: v for k, v in raw.items() if k != NAME_TABLE_KEY}
    if any(isinstance(k, str) and k.startswith(STUDENT_PREFIX) for k in items):
        items = {k[len(STUDENT_PREFIX):]: v for k, v in items.items() if k.startswith(STUDENT_PREFIX)}
    bad = [str(k) for k, v in items.items() if not isinstance(k, str) or not isinstance(v, np.ndarray)
           or v.dtype.kind not in "fiub"]
    if bad or not items:
        detail = f": {', '.join(bad[:4])} are not numeric arrays" if bad else ": it is empty"
        raise ResnetsError(f"{path} is not a PaddlePaddle state dict of arrays{detail}")
    return items


def _classes(arrays: Mapping[str, np.ndarray]) -> int:
    for name in ("fc.weight", "out.weight", *(k for k, v in _STATIC_HEAD.items() if v == "weight")):
        if name in arrays and arrays[name].ndim == 2:
            return int(arrays[name].shape[1])
    return 0


def _block(flat: int, config: ResNetConfig) -> tuple[int, int]:
    """Stage and index of the legendary models' N-th block (a flat list over the stages)."""
    for stage, count in enumerate(config.layers):
        if flat < count:
            return stage, flat
        flat -= count
    return len(config.layers), flat  # past the preset's last block: reported as a tensor with no place


def _role(key: str, config: ResNetConfig) -> tuple[tuple, str] | None:
    """(role, our parameter name) of a PaddleClas key, or None where the key is not a ResNet tensor we know."""
    if m := _STEM_LEGENDARY.match(key):
        return _conv_or_bn(("stem", int(m[1])), m[2] == "bn", m[3])
    if m := _STEM_ZOO.match(key):
        index = 0 if m[1] == "conv" else int(m[1][-1]) - 1
        return _conv_or_bn(("stem", index), m[2] == "_batch_norm", m[3])
    if m := _BLOCK_LEGENDARY.match(key):
        stage, index = _block(int(m[1]), config)
        return _conv_or_bn(_block_unit(stage, index, m[2]), m[3] == "bn", m[4])
    if m := _BLOCK_ZOO.match(key):
        return _conv_or_bn(_block_unit(int(m[1]), int(m[2]), m[3]), m[4] == "_batch_norm", m[5])
    if m := _SE_ZOO.match(key):
        return ("se", int(m[1]), int(m[2]), 0 if m[3] == "squeeze" else 1), m[4]
    if m := _HEAD.match(key):
        return ("head",), m[2]
    return None


def _static_role(key: str, first_x_stage: int) -> tuple[tuple, str] | None:
    """(role, our parameter name) of a model-zoo parameter name (`res2a_branch2a_weights`, ...), or None."""
    if key in _STATIC_HEAD:
        return ("head",), _STATIC_HEAD[key]
    if m := _STATIC_BLOCK.match(key):
        index = int(m[3]) if m[3] else ord(m[2]) - ord("a")
        part = "short" if m[4] == "1" else f"conv{'abc'.index(m[4][1])}"
        return _static_param(_block_unit(int(m[1]) - 2, index, part), key.startswith("bn"), m[5])
    if m := _STATIC_SE.match(key):
        index = int(m[3]) if m[3] else ord(m[2]) - ord("a")
        return ("se", int(m[1]) - 2, index, 0 if m[4] == "sqz" else 1), _STATIC_PARAMS[m[5]]
    if m := _STATIC_X_BLOCK.match(key):
        part = "short" if m[3] == "prj" else f"conv{int(m[3][1]) - 1}"
        return _static_param(_block_unit(int(m[1]) - first_x_stage, int(m[2]) - 1, part), bool(m[4]), m[5])
    if m := _STATIC_X_SE.match(key):
        unit = ("se", int(m[1]) - first_x_stage, int(m[2]) - 1, 0 if m[3] == "sqz" else 1)
        return unit, _STATIC_PARAMS[m[4]]
    if m := _STATIC_STEM.match(key):
        number = next((g for g in m.groups()[:5] if g), "1")
        return _static_param(("stem", int(number) - 1), m[6] != "weights", m[6])
    return None


def _static_param(unit: tuple, is_bn: bool, param: str) -> tuple[tuple, str] | None:
    if is_bn:
        return ((*unit, "bn"), _STATIC_PARAMS[param]) if param != "weights" else None
    return ((*unit, "conv"), "weight") if param == "weights" else None


def _block_unit(stage: int, index: int, part: str) -> tuple:
    return ("short", stage, index) if part == "short" else ("conv", stage, index, int(part[-1]))


def _conv_or_bn(unit: tuple, is_bn: bool, param: str) -> tuple[tuple, str] | None:
    if is_bn:
        return ((*unit, "bn"), _BN_PARAMS[param]) if param in _BN_PARAMS else None
    return ((*unit, "conv"), "weight") if param == "weight" else None


def _our_names(target: Mapping[str, torch.Tensor], config: ResNetConfig) -> dict[tuple, str]:
    """Role -> module name in our network, read off its state dict: stem convs and norms in order, each block's
    convN/bnN, its shortcut's conv and norm (wherever the shortcut's pooling puts them), se.fc1/fc2, fc."""
    names: dict[tuple, str] = {("head",): "fc"}
    modules = sorted({k.rsplit(".", 1)[0] for k in target}, key=_natural)
    stem_convs = [m for m in modules if (m == "conv1" or m.startswith("conv1.")) and target[m + ".weight"].ndim == 4]
    stem_norms = [m for m in modules if m.startswith("conv1.") and m + ".running_mean" in target] + ["bn1"]
    for index, (conv, norm) in enumerate(zip(stem_convs, stem_norms, strict=True)):
        names[("stem", index, "conv")] = conv
        names[("stem", index, "bn")] = norm
    for stage, count in enumerate(config.layers):
        for index in range(count):
            prefix = f"layer{stage + 1}.{index}"
            for j in range(3):
                names[("conv", stage, index, j, "conv")] = f"{prefix}.conv{j + 1}"
                names[("conv", stage, index, j, "bn")] = f"{prefix}.bn{j + 1}"
            for m in modules:
                if m.startswith(prefix + ".downsample."):
                    part = "bn" if m + ".running_mean" in target else "conv"
                    names[("short", stage, index, part)] = m
            names[("se", stage, index, 0)] = f"{prefix}.se.fc1"
            names[("se", stage, index, 1)] = f"{prefix}.se.fc2"
    return {role: name for role, name in names.items() if any(k.startswith(name + ".") for k in target)}


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
