"""`Recipe`: every hyper-parameter of a published training procedure in one frozen dataclass.

Recipes are data: the shipped ones live in `recipes/*.yaml`, each naming its sources. A recipe is read,
overridden (`with_overrides`, `with_sets` for `--set key=value`), specialised to a model (`for_model`, the
per-size rules of ResNet-RS) and its learning rate scaled to the batch actually used (`scaled_lr`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..data.transforms import parse_auto_augment
from ..errors import ResnetsError, UnknownNameError, unknown

RECIPE_PACKAGE = "resnets.train.recipes"

OPTIMIZERS = ("sgd", "lamb", "adamw")
LR_SCALINGS = ("linear", "sqrt", "none")
SCHEDULES = ("cosine", "step")
LOSSES = ("ce", "bce")
TRAIN_INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "random")
EVAL_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
AMP_DTYPES = ("bfloat16", "float16")
DISTILL_MODES = ("kd", "ssld")
TEACHER_BN_MODES = ("eval", "train")
RE_MODES = ("const", "rand", "pixel")

# Fields a size rule may not change: they say what the recipe is, not how it trains.
_IDENTITY_FIELDS = ("name", "source", "description", "size_rules")


@dataclass(frozen=True)
class Recipe:
    """A training procedure. Defaults are neutral; every shipped YAML states every field explicitly."""

    # --- identity -----------------------------------------------------------------------------------
    name: str = "custom"
    source: str = ""
    """The documents the values come from (papers, configs, command lines)."""
    description: str = ""
    """One line for `resnets recipes`."""
    model: str = "resnet50"
    """The model the recipe was published for; `resnets train --model` overrides it."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """ResNetConfig fields the recipe sets on the model (e.g. the demo's width_multiplier)."""
    data: str | None = None
    """Data set used when the command line names none ("digits": the built-in demo set)."""
    seed: int = 0
    # --- length and batch -----------------------------------------------------------------------------
    epochs: int = 90
    batch_size: int = 256
    """The GLOBAL batch the learning rate is quoted at (all processes together)."""
    # --- resolution and interpolation ------------------------------------------------------------------
    img_size: int = 224
    """Training resolution (RandomResizedCrop output)."""
    eval_img_size: int | None = None
    """Evaluation resolution; None: the training resolution."""
    eval_crop_pct: float = 0.875
    """Evaluation resizes the shorter side to floor(eval_img_size / eval_crop_pct), then centre-crops."""
    interpolation: str = "bilinear"
    """Training resize: bilinear, bicubic, nearest or random (timm: bilinear or bicubic per image)."""
    eval_interpolation: str | None = None
    """Evaluation resize; None: `interpolation`, or bicubic when that is random."""
    # --- optimiser ----------------------------------------------------------------------------------
    optimizer: str = "sgd"
    """sgd (momentum, optional Nesterov), lamb (timm's) or adamw."""
    lr: float = 0.1
    """Peak learning rate at `batch_size`."""
    lr_scaling: str = "linear"
    """How lr follows the actual global batch: linear, sqrt (timm's rule for LAMB/Adam) or none."""
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    """LAMB / AdamW moment decay rates."""
    eps: float = 1e-8
    """LAMB / AdamW denominator epsilon."""
    weight_decay: float = 1e-4
    """SGD and LAMB: L2 added to the gradient (torch/TF convention); AdamW: decoupled."""
    no_weight_decay_norm_bias: bool = False
    """True: normalisation weights and every bias (parameters with ndim <= 1) get no weight decay."""
    no_weight_decay_bias: bool | None = None
    """None: as no_weight_decay_norm_bias. False: only norm layers are exempt, other biases decay
    (torchvision --norm-weight-decay 0; TF excludes only batch-norm variables)."""
    lamb_max_grad_norm: float | None = 1.0
    """LAMB's internal global gradient-norm clip (timm/apex default 1.0); None disables."""
    layer_decay: float | None = None
    """Layer-wise lr decay for fine-tuning (BEiT/timm): the classifier trains at lr, each residual block
    below it at one more factor of layer_decay, the stem at the smallest. None (or 1.0): one lr for all."""
    # --- learning-rate schedule -------------------------------------------------------------------------
    schedule: str = "cosine"
    """cosine (to min_lr at the last step) or step (x step_gamma at each of step_epochs); per iteration."""
    warmup_epochs: float = 0.0
    """Linear warmup from warmup_start_factor * lr to lr over this many epochs."""
    warmup_start_factor: float = 0.0
    min_lr: float = 0.0
    """Absolute learning rate the cosine ends at."""
    step_epochs: tuple[int, ...] = ()
    """Epochs at which the step schedule multiplies the lr by step_gamma."""
    step_gamma: float = 0.1
    # --- loss ---------------------------------------------------------------------------------------
    loss: str = "ce"
    """ce (softmax cross-entropy) or bce (sigmoid binary cross-entropy over classes, RSB)."""
    label_smoothing: float = 0.0
    bce_target_threshold: float | None = None
    """BCE only: soft targets become 1 above this value, else 0 (timm --bce-target-thresh)."""
    # --- batch mixing -----------------------------------------------------------------------------------
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mixup_prob: float = 1.0
    """Probability that a batch is mixed at all."""
    mixup_switch_prob: float = 0.5
    """When both are on: probability of CutMix instead of Mixup for a batch."""
    # --- augmentation -------------------------------------------------------------------------------------
    auto_augment: str | None = None
    """RandAugment: timm's ("rand-m7-mstd0.5-inc1") or TF's ("randtf-m15-n2"); "ta_wide" (TrivialAugmentWide); None."""
    rrc_scale: tuple[float, float] = (0.08, 1.0)
    rrc_ratio: tuple[float, float] = (0.75, 1.3333333333333333)
    hflip: float = 0.5
    re_prob: float = 0.0
    """Random erasing probability."""
    re_mode: str = "pixel"
    """Random erasing fill: const (zeros, torchvision), rand (one colour per patch), pixel (per-pixel noise, timm)."""
    aug_repeats: int = 0
    """Repeated augmentation: each image appears this many times per epoch (0 or 1: off)."""
    # --- regularisation in the model --------------------------------------------------------------------
    drop_rate: float = 0.0
    """Dropout before the classifier."""
    drop_path_rate: float = 0.0
    """Stochastic depth rate (schedule over blocks from the model config)."""
    bn_momentum: float | None = None
    """BatchNorm running-stat momentum in torch's convention (new = (1-m) old + m batch); None: the model's."""
    # --- weight EMA ---------------------------------------------------------------------------------------
    ema_decay: float = 0.0
    """Decay per EMA update; 0 disables the EMA."""
    ema_every_steps: int = 1
    """Update the EMA every this many optimiser steps."""
    ema_warmup: bool = False
    """TF's num_updates rule: the decay used is min(ema_decay, (1 + step) / (10 + step))."""
    ema_copy_epochs: float = 0.0
    """During these first epochs the EMA copies the weights instead of averaging (torchvision does this
    during LR warmup)."""
    ema_rule: str = "fixed"
    """fixed: ema_decay is the decay per update. torchvision: ema_decay is train.py's --model-ema-decay and the
    per-update decay is derived from the actual run: 1 - (1 - d) * global_batch * ema_every_steps / epochs."""
    # --- step mechanics -----------------------------------------------------------------------------------
    grad_clip: float | None = None
    """Clip the global gradient norm to this value before the optimiser step; None: off."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimiser step."""
    amp: bool = False
    """Mixed precision (autocast); falls back to fp32 where the device has no fast low precision."""
    amp_dtype: str = "bfloat16"
    # --- distillation ------------------------------------------------------------------------------------
    distill: str | None = None
    """kd (Hinton) or ssld (PaddleClas' symmetric KL, no label loss); None: no teacher. A recipe that distils
    needs `resnets train --teacher WEIGHTS`."""
    distill_alpha: float = 0.5
    """kd: the objective is (1 - alpha) * task loss + alpha * T^2 * KL (unused by ssld)."""
    temperature: float = 1.0
    """kd: the softmax temperature T of teacher and student (unused by ssld)."""
    teacher_bn: str = "eval"
    """The teacher's BatchNorm: eval (running statistics) or train (statistics of each batch, running ones
    left unchanged; PaddleClas' SSLD)."""
    # --- per-model overrides ----------------------------------------------------------------------------------
    size_rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Model name (or glob) -> fields that change for that model, applied by for_model()."""

    def __post_init__(self) -> None:
        hints = _field_types()
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _convert(f.name, hints[f.name], getattr(self, f.name)))
        for pattern, rule in self.size_rules.items():
            if not isinstance(rule, dict):
                raise ResnetsError(f"recipe {self.name!r}: size rule {pattern!r} must map field names to values")
            self.size_rules[pattern] = {key: _convert_rule_value(self.name, pattern, key, value, hints)
                                        for key, value in rule.items()}
        self.validate()

    # --- checks -------------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ResnetsError naming the first value no training run could use."""
        prob = "must be in [0, 1]"
        checks = [
            (self.name != "", "name must not be empty"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.img_size >= 8, f"img_size must be >= 8, got {self.img_size}"),
            (self.eval_img_size is None or self.eval_img_size >= 8,
             f"eval_img_size must be >= 8, got {self.eval_img_size}"),
            (0.0 < self.eval_crop_pct <= 1.0, f"eval_crop_pct must be in (0, 1], got {self.eval_crop_pct}"),
            (self.interpolation in TRAIN_INTERPOLATIONS,
             _choice("interpolation", self.interpolation, TRAIN_INTERPOLATIONS)),
            (self.eval_interpolation is None or self.eval_interpolation in EVAL_INTERPOLATIONS,
             _choice("eval_interpolation", self.eval_interpolation, EVAL_INTERPOLATIONS)),
            (self.optimizer in OPTIMIZERS, _choice("optimizer", self.optimizer, OPTIMIZERS)),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.lr_scaling in LR_SCALINGS, _choice("lr_scaling", self.lr_scaling, LR_SCALINGS)),
            (0.0 <= self.momentum < 1.0, f"momentum must be in [0, 1), got {self.momentum}"),
            (not self.nesterov or self.momentum > 0, "nesterov needs momentum > 0"),
            (all(0.0 <= b < 1.0 for b in self.betas), f"betas must be in [0, 1), got {self.betas}"),
            (self.eps > 0, f"eps must be > 0, got {self.eps}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.lamb_max_grad_norm is None or self.lamb_max_grad_norm > 0,
             f"lamb_max_grad_norm must be > 0 or null, got {self.lamb_max_grad_norm}"),
            (self.layer_decay is None or 0.0 < self.layer_decay <= 1.0,
             f"layer_decay must be in (0, 1] or null, got {self.layer_decay}"),
            (self.schedule in SCHEDULES, _choice("schedule", self.schedule, SCHEDULES)),
            (self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}"),
            (0.0 <= self.warmup_start_factor <= 1.0, f"warmup_start_factor {prob}, got {self.warmup_start_factor}"),
            (self.min_lr >= 0, f"min_lr must be >= 0, got {self.min_lr}"),
            (all(e >= 1 for e in self.step_epochs) and list(self.step_epochs) == sorted(self.step_epochs),
             f"step_epochs must be increasing positive epochs, got {list(self.step_epochs)}"),
            (self.schedule != "step" or len(self.step_epochs) > 0, "the step schedule needs step_epochs"),
            (0.0 < self.step_gamma <= 1.0, f"step_gamma must be in (0, 1], got {self.step_gamma}"),
            (self.loss in LOSSES, _choice("loss", self.loss, LOSSES)),
            (0.0 <= self.label_smoothing < 1.0, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.bce_target_threshold is None or 0.0 <= self.bce_target_threshold < 1.0,
             f"bce_target_threshold must be in [0, 1) or null, got {self.bce_target_threshold}"),
            (self.mixup_alpha >= 0 and self.cutmix_alpha >= 0, "mixup_alpha and cutmix_alpha must be >= 0"),
            (0.0 <= self.mixup_prob <= 1.0, f"mixup_prob {prob}, got {self.mixup_prob}"),
            (0.0 <= self.mixup_switch_prob <= 1.0, f"mixup_switch_prob {prob}, got {self.mixup_switch_prob}"),
            (0.0 < self.rrc_scale[0] <= self.rrc_scale[1] <= 1.0,
             f"rrc_scale must satisfy 0 < low <= high <= 1, got {list(self.rrc_scale)}"),
            (0.0 < self.rrc_ratio[0] <= self.rrc_ratio[1], f"rrc_ratio must satisfy 0 < low <= high, got "
                                                            f"{list(self.rrc_ratio)}"),
            (0.0 <= self.hflip <= 1.0, f"hflip {prob}, got {self.hflip}"),
            (0.0 <= self.re_prob <= 1.0, f"re_prob {prob}, got {self.re_prob}"),
            (self.re_mode in RE_MODES, _choice("re_mode", self.re_mode, RE_MODES)),
            (self.aug_repeats >= 0, f"aug_repeats must be >= 0, got {self.aug_repeats}"),
            (0.0 <= self.drop_rate < 1.0, f"drop_rate must be in [0, 1), got {self.drop_rate}"),
            (0.0 <= self.drop_path_rate < 1.0, f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}"),
            (self.bn_momentum is None or 0.0 <= self.bn_momentum <= 1.0,
             f"bn_momentum must be in [0, 1] or null, got {self.bn_momentum}"),
            (0.0 <= self.ema_decay < 1.0, f"ema_decay must be in [0, 1) (0: off), got {self.ema_decay}"),
            (self.ema_every_steps >= 1, f"ema_every_steps must be >= 1, got {self.ema_every_steps}"),
            (self.ema_copy_epochs >= 0, f"ema_copy_epochs must be >= 0, got {self.ema_copy_epochs}"),
            (self.ema_rule in ("fixed", "torchvision"), f"ema_rule must be 'fixed' or 'torchvision', got "
                                                        f"{self.ema_rule!r}"),
            (self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be > 0 or null, got {self.grad_clip}"),
            (self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}"),
            (self.amp_dtype in AMP_DTYPES, _choice("amp_dtype", self.amp_dtype, AMP_DTYPES)),
            (self.distill is None or self.distill in DISTILL_MODES,
             _choice("distill", self.distill, DISTILL_MODES) + " or null"),
            (0.0 <= self.distill_alpha <= 1.0, f"distill_alpha must be in [0, 1], got {self.distill_alpha}"),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature}"),
            (self.teacher_bn in TEACHER_BN_MODES, _choice("teacher_bn", self.teacher_bn, TEACHER_BN_MODES)),
        ]
        for ok, message in checks:
            if not ok:
                raise ResnetsError(f"recipe {self.name!r}: {message}")
        _check_auto_augment(f"recipe {self.name!r}", self.auto_augment)

    # --- derived values ------------------------------------------------------------------------------------------
    @property
    def resolved_eval_img_size(self) -> int:
        return self.eval_img_size or self.img_size

    @property
    def resolved_eval_interpolation(self) -> str:
        if self.eval_interpolation:
            return self.eval_interpolation
        return "bicubic" if self.interpolation == "random" else self.interpolation

    @property
    def exempt_bias_from_weight_decay(self) -> bool:
        """Whether biases outside norm layers skip weight decay."""
        if self.no_weight_decay_bias is None:
            return self.no_weight_decay_norm_bias
        return self.no_weight_decay_bias

    def scaled_lr(self, global_batch: int) -> float:
        """The peak lr for `global_batch` by the recipe's rule (timm: sqrt for LAMB/Adam, linear for SGD)."""
        if global_batch < 1:
            raise ResnetsError(f"global batch must be >= 1, got {global_batch}")
        ratio = global_batch / self.batch_size
        if self.lr_scaling == "linear":
            return self.lr * ratio
        if self.lr_scaling == "sqrt":
            return self.lr * math.sqrt(ratio)
        return self.lr

    def lr_rule(self, global_batch: int | None = None) -> str:
        """The scaling rule in words, with the resolved value when a batch is given (printed by the CLI)."""
        base = f"lr {self.lr:g} at global batch {self.batch_size}"
        rule = {"linear": f"lr = {self.lr:g} * batch / {self.batch_size}",
                "sqrt": f"lr = {self.lr:g} * sqrt(batch / {self.batch_size})",
                "none": "lr does not scale with the batch"}[self.lr_scaling]
        text = f"{base}; {self.lr_scaling} scaling: {rule}"
        if global_batch is not None:
            text += f"; at batch {global_batch}: lr {self.scaled_lr(global_batch):.6g}"
        return text

    # --- changing a recipe -----------------------------------------------------------------------------------
    def with_overrides(self, **fields: Any) -> Recipe:
        """A copy with some fields changed (values converted to the field's type); unknown fields suggest the closest."""
        names = field_names()
        for key in fields:
            if key not in names:
                raise unknown("recipe field", key, names)
        return dataclasses.replace(self, **fields)

    def with_epochs(self, epochs: int) -> Recipe:
        """A shorter/longer run of the same recipe: step milestones keep their fraction of training
        (torchvision-v1's 30/60 of 90 become 3/6 of 9); warmup stays in epochs. `with_overrides(epochs=)`
        changes only the count."""
        if self.schedule != "step" or epochs == self.epochs:
            return self.with_overrides(epochs=epochs)
        scaled = sorted({max(1, min(epochs - 1, round(e * epochs / self.epochs))) for e in self.step_epochs}) \
            if epochs > 1 else [1]
        return self.with_overrides(epochs=epochs, step_epochs=scaled)

    def with_sets(self, assignments: list[str]) -> Recipe:
        """Apply `--set key=value` strings; values are YAML (`lr=5e-3`, `rrc_scale=[0.35,1]`, `grad_clip=null`)."""
        fields: dict[str, Any] = {}
        names = field_names()
        for assignment in assignments:
            key, sep, text = assignment.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ResnetsError(f"--set expects key=value, got {assignment!r}")
            if key not in names:
                raise unknown("recipe field", key, names)
            try:
                fields[key] = yaml.safe_load(text) if text.strip() else ""
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or "invalid YAML"
                raise ResnetsError(f"--set {key}: cannot parse value {text!r} ({problem})") from None
        return self.with_overrides(**fields)

    def for_model(self, model_name: str) -> Recipe:
        """Apply the size rules matching `model_name` (exact name or glob, in file order); no match: unchanged."""
        base_name = model_name.split(".")[0]  # "resnetrs50.tf_in1k" -> "resnetrs50"
        changes: dict[str, Any] = {}
        for pattern, rule in self.size_rules.items():
            if fnmatch.fnmatchcase(model_name, pattern) or fnmatch.fnmatchcase(base_name, pattern):
                changes.update(rule)
        return dataclasses.replace(self, **changes) if changes else self

    # --- (de)serialisation ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples) that `from_dict` and YAML/JSON read back."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=110)

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "recipe") -> Recipe:
        """Build from a mapping; `base: NAME` starts from another recipe. Unknown keys name `origin`."""
        if not isinstance(data, dict):
            raise ResnetsError(f"{origin}: a recipe must be a mapping of field: value, got {type(data).__name__}")
        data = dict(data)
        base_name = data.pop("base", None)
        names = field_names()
        for key in data:
            if key not in names:
                raise UnknownNameError(f"{origin}: {unknown('recipe field', str(key), names)}")
        if base_name is not None:
            base = load_recipe(str(base_name))
            return base.with_overrides(**data)
        return cls(**data)


# --- loading -------------------------------------------------------------------------------------------------------
def list_recipes() -> list[str]:
    """Names of the recipes shipped with the package."""
    folder = resources.files(RECIPE_PACKAGE)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A shipped recipe by name, or a YAML file by path; an unknown name suggests the closest."""
    text_name = str(name_or_path)
    if text_name in list_recipes():
        resource = resources.files(RECIPE_PACKAGE) / f"{text_name}.yaml"
        return _parse(resource.read_text(encoding="utf-8"), origin=f"recipe {text_name}")
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in text_name:
        if not path.is_file():
            raise ResnetsError(f"recipe file not found: {path}")
        recipe = _parse(path.read_text(encoding="utf-8"), origin=str(path), default_name=path.stem)
        return recipe
    raise unknown("recipe", text_name, list_recipes())


def _parse(text: str, origin: str, default_name: str | None = None) -> Recipe:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ResnetsError(f"{origin}:{where} {problem}") from None
    if data is None:
        raise ResnetsError(f"{origin}: empty recipe")
    if isinstance(data, dict) and default_name and "name" not in data and "base" not in data:
        data = {"name": default_name, **data}
    return Recipe.from_dict(data, origin=origin)


# --- type conversion ---------------------------------------------------------------------------------------------------
def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Recipe)]


_TYPES: dict[str, Any] = {}


def _field_types() -> dict[str, Any]:
    if not _TYPES:
        _TYPES.update(typing.get_type_hints(Recipe))
    return _TYPES


def _convert_rule_value(recipe: str, pattern: str, key: str, value: Any, hints: dict[str, Any]) -> Any:
    if key not in hints:
        raise ResnetsError(f"recipe {recipe!r}, size rule {pattern!r}: {unknown('recipe field', key, hints)}")
    if key in _IDENTITY_FIELDS:
        raise ResnetsError(f"recipe {recipe!r}, size rule {pattern!r}: {key!r} cannot be set per model")
    converted = _convert(key, hints[key], value)
    if key == "auto_augment":
        _check_auto_augment(f"recipe {recipe!r}, size rule {pattern!r}", converted)
    return converted


def _check_auto_augment(where: str, value: str | None) -> None:
    """Parse with the data pipeline's own parser, so recipes accept exactly what the transforms build."""
    try:
        parse_auto_augment(value)
    except ResnetsError as error:
        raise ResnetsError(f"{where}: {error}") from None


def _convert(name: str, hint: Any, value: Any) -> Any:
    """`value` as the field's type: ints for int fields, tuples for tuple fields, floats from '5e-3'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(name, inner, value)
    if value is None:
        raise _type_error(name, hint, value)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(name, hint, value)
    if hint is int:
        if isinstance(value, bool):
            raise _type_error(name, hint, value)
        if isinstance(value, int):
            return value
        number = _number(value)
        if number is not None and float(number).is_integer():
            return int(number)
        raise _type_error(name, hint, value)
    if hint is float:
        number = None if isinstance(value, bool) else _number(value)
        if number is None or math.isnan(number):
            raise _type_error(name, hint, value)
        return float(number)
    if hint is str:
        if isinstance(value, str):
            return value
        raise _type_error(name, hint, value)
    if origin is tuple:
        if isinstance(value, str):  # "--set rrc_scale=0.08,1"
            value = [v for v in value.split(",") if v.strip()]
        elif not isinstance(value, (list, tuple)):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(name, args[0], v) for v in value)
        if len(value) != len(args):
            raise ResnetsError(f"recipe field {name!r} expects {len(args)} values, got {_show(value)}")
        return tuple(_convert(name, a, v) for a, v in zip(args, value, strict=True))
    if origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise _type_error(name, hint, value)
    raise TypeError(f"no converter for field {name!r} of type {hint}")  # a programming error, not a user one


def _number(value: Any) -> float | int | None:
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())  # YAML 1.1 reads "5e-3" as a string
        except ValueError:
            return None
    return None


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _type_error(name: str, hint: Any, value: Any) -> ResnetsError:
    origin = typing.get_origin(hint)
    if origin is tuple:
        expected = "a list of numbers"
    elif origin is dict:
        expected = "a mapping"
    else:
        expected = _TYPE_WORDS.get(hint, str(hint))
    return ResnetsError(f"recipe field {name!r} expects {expected}, got {_show(value)}")


def _show(value: Any) -> str:
    return "null" if value is None else repr(value)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    return f"{name} must be one of {', '.join(choices)}; got {value!r}"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
