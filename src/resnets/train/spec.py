"""The resolved run specification: recipe + options + model, decided once and recorded in `run.json`.

A run is started from a `RunSpec` resolved from the command line (`resolve_spec`) and resumed from the spec
its run directory recorded (`read_run_record`), never from the recipe file again: a recipe edited between a
kill and a resume cannot silently change a run half-way. What the resolution decided on the user's behalf
(the evaluation size moved with `--img-size`, a warmup shortened to fit `--epochs`) is kept as `notes`,
printed at the start and stored in `run.json`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ResnetsError
from ..models.config import ResNetConfig
from .options import TrainOptions, model_overrides, recipe_sets
from .recipe import Recipe, load_recipe

RUN_RECORD = "run.json"
RECORD_FORMAT = "resnets-run"
RECORD_VERSION = 2


@dataclass
class RunSpec:
    """Everything that decides a run's result, resolved. `notes` say what resolution chose and why."""

    options: TrainOptions
    recipe: Recipe
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """ResNetConfig fields set on the preset: the recipe's regularisation, its model_overrides, --set model.*"""
    notes: list[str] = field(default_factory=list)

    @property
    def model_name(self) -> str:
        return self.recipe.model

    @property
    def global_batch(self) -> int:
        return self.options.batch_size if self.options.batch_size is not None else self.recipe.batch_size

    @property
    def eval_img_size(self) -> int:
        return self.recipe.resolved_eval_img_size

    @property
    def lr(self) -> float:
        """The peak lr this run uses: given (`--lr`), or the recipe's scaled to the global batch."""
        if self.options.lr is not None:
            return float(self.options.lr)
        return self.recipe.scaled_lr(self.global_batch)

    def lr_note(self) -> str:
        if self.options.lr is not None:
            return f"lr {self.lr:g} (given, not scaled)"
        r = self.recipe
        return (f"lr {r.lr:g} @ batch {r.batch_size} -> {self.lr:.4g} @ batch {self.global_batch} "
                f"({r.lr_scaling} scaling)")


def resolve_spec(options: TrainOptions) -> RunSpec:
    """The spec of a new run: the recipe's per-model size rules, then --set, --epochs, --img-size, --model,
    with the evaluation size, warmup and EMA copy phase adapted as the notes say."""
    base = load_recipe(options.recipe)
    sets = recipe_sets(options.sets)
    model_name = options.model or (base.with_sets(sets).model if sets else base.model)
    recipe = base.for_model(model_name)
    if sets:
        recipe = recipe.with_sets(sets)
    recipe = recipe.with_overrides(model=model_name)
    notes: list[str] = []
    set_keys = {s.split("=", 1)[0].strip() for s in sets}

    if options.epochs is not None and options.epochs != recipe.epochs:
        recipe = _shorten_phases(recipe, options.epochs, notes)
        recipe = recipe.with_epochs(options.epochs)  # step milestones keep their fraction of training

    recipe = _resolution(recipe, options, set_keys, notes)
    recipe = _distillation(recipe, options)
    if options.data is None and not recipe.data:
        raise ResnetsError(f"recipe {recipe.name} names no data set: pass --data DIR")
    resolved = TrainOptions(**{**options.to_dict(), "data": options.data or recipe.data,
                               "seed": recipe.seed if options.seed is None else options.seed})
    overrides = {"drop_rate": recipe.drop_rate, "drop_path_rate": recipe.drop_path_rate,
                 **recipe.model_overrides, **model_overrides(options.sets)}
    if recipe.bn_momentum is not None:
        overrides.setdefault("bn_momentum", recipe.bn_momentum)
    return RunSpec(options=resolved, recipe=recipe, model_overrides=overrides, notes=notes)


def _shorten_phases(recipe: Recipe, epochs: int, notes: list[str]) -> Recipe:
    """A run shorter than the recipe's warmup (or torchvision's EMA copy phase) keeps their fraction of it."""
    changes: dict[str, float] = {}
    for name, what in (("warmup_epochs", "warmup"), ("ema_copy_epochs", "EMA copy phase")):
        length = getattr(recipe, name)
        if length > 0 and epochs <= length:
            scaled = length * epochs / recipe.epochs
            changes[name] = scaled
            notes.append(f"{what}: the recipe's {length:g} of {recipe.epochs} epochs is longer than this "
                         f"{epochs}-epoch run; kept at the same fraction of training: {scaled:.4g} epochs")
    return recipe.with_overrides(**changes) if changes else recipe


def _resolution(recipe: Recipe, options: TrainOptions, set_keys: set[str], notes: list[str]) -> Recipe:
    """--img-size moves the evaluation size by the recipe's train:test ratio unless it is given."""
    train, test = recipe.img_size, recipe.resolved_eval_img_size
    if options.eval_img_size is not None:
        recipe = recipe.with_overrides(eval_img_size=options.eval_img_size)
    if options.img_size is None or options.img_size == train:
        return recipe
    recipe = recipe.with_overrides(img_size=options.img_size)
    if options.eval_img_size is None and "eval_img_size" not in set_keys:
        moved = max(32, round(options.img_size * test / train))
        recipe = recipe.with_overrides(eval_img_size=moved)
        ratio = (f"the recipe's train:test ratio {train}:{test}" if train != test
                 else "the recipe evaluates at its training size")
        notes.append(f"evaluation at {moved} px: --img-size {options.img_size}, {ratio} "
                     "(--eval-img-size N to choose)")
    return recipe


_DISTILL_FLAGS = {"distill": "--distill", "distill_alpha": "--distill-alpha", "temperature": "--temperature",
                  "teacher_bn": "--teacher-bn"}


def _distillation(recipe: Recipe, options: TrainOptions) -> Recipe:
    """--distill/--distill-alpha/--temperature/--teacher-bn set the recipe's distillation fields; a mode
    needs a teacher and a teacher needs a mode, and no flag may be given that the mode does not use."""
    changes = {name: getattr(options, name) for name in _DISTILL_FLAGS if getattr(options, name) is not None}
    if changes:
        recipe = recipe.with_overrides(**changes)
    mode = recipe.distill
    if mode is None:
        if options.teacher:
            raise ResnetsError("--teacher needs a distillation mode: add --distill kd or --distill ssld")
        given = [flag for name, flag in _DISTILL_FLAGS.items() if name in changes]
        given += ["--teacher-model"] if options.teacher_model else []
        given += ["--unlabeled"] if options.unlabeled else []
        if given:
            raise ResnetsError(f"{', '.join(given)} apply to distillation: add --teacher WEIGHTS --distill kd|ssld")
        return recipe
    if not options.teacher:
        if options.distill is not None:
            raise ResnetsError(f"--distill {mode} needs a teacher: add --teacher WEIGHTS")
        raise ResnetsError(f"recipe {recipe.name} distils from a teacher ({mode}): add --teacher WEIGHTS "
                           "(or --set distill=null to train on the labels)")
    if mode == "ssld":
        unused = [flag for name, flag in _DISTILL_FLAGS.items() if name in ("distill_alpha", "temperature")
                  and name in changes]
        if unused:
            raise ResnetsError(f"{' and '.join(unused)} apply to kd; ssld compares the plain softmax outputs and "
                               "has no label loss to weigh")
    return recipe


def recipe_drift(spec: RunSpec) -> str | None:
    """A one-line note when the recipe the run was started from now resolves differently, else None."""
    try:
        now = resolve_spec(TrainOptions(**{**spec.options.to_dict(), "data": spec.options.data}))
    except ResnetsError as exc:
        return (f"note: recipe {spec.options.recipe} cannot be read any more ({exc}); continuing with the "
                "values recorded in the run")
    recorded, current = spec.recipe.to_dict(), now.recipe.to_dict()
    changed = [key for key in recorded if recorded[key] != current.get(key)]
    if not changed:
        return None
    shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
    return (f"note: recipe {spec.options.recipe} changed since this run started ({shown}); continuing with the "
            "values recorded in the run")


# --- the run record (run.json) ----------------------------------------------------------------------------------
def run_record(spec: RunSpec, *, model_config: ResNetConfig, classes: list[str], runtime: dict[str, Any]) -> dict:
    """The run.json document: the spec (what resume rebuilds from) plus what the run derived and where it ran."""
    return {
        "format": RECORD_FORMAT, "version": RECORD_VERSION,
        "model": spec.model_name, "recipe": spec.recipe.name, "data": spec.options.data, "seed": spec.options.seed,
        "global_batch": spec.global_batch, "lr": spec.lr,
        "lr_rule": "given" if spec.options.lr is not None else spec.recipe.lr_scaling,
        "img_size": spec.recipe.img_size, "eval_img_size": spec.eval_img_size, "notes": spec.notes,
        "options": spec.options.to_dict(), "resolved_recipe": spec.recipe.to_dict(),
        "model_overrides": spec.model_overrides, "model_config": model_config.to_dict(), "classes": classes,
        **runtime,
    }


@dataclass
class RunRecord:
    """A run directory's record, read back: the spec plus the model config and classes it trained with."""

    spec: RunSpec
    model_config: ResNetConfig
    classes: list[str]
    data: dict[str, Any]


def read_run_record(run_dir: Path) -> RunRecord:
    """Read `run.json`; every way it can be missing or broken is one line naming the directory."""
    if not run_dir.exists():
        raise ResnetsError(f"cannot resume: run directory not found: {run_dir}")
    if not run_dir.is_dir():
        raise ResnetsError(f"cannot resume: {run_dir} is not a directory")
    path = run_dir / RUN_RECORD
    if not path.is_file():
        raise ResnetsError(f"cannot resume: {run_dir} is not a resnets run directory (no {RUN_RECORD})")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResnetsError(f"cannot resume: the run record {path} is unreadable ({exc}); the checkpoints beside "
                           "it are untouched") from None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise ResnetsError(f"cannot resume: {path} is not a resnets run record")
    if data.get("version") != RECORD_VERSION:
        raise ResnetsError(f"cannot resume: {path} has record version {data.get('version')}; this resnets reads "
                           f"version {RECORD_VERSION}")
    try:
        options = TrainOptions.from_dict(data["options"])
        recipe = Recipe.from_dict(data["resolved_recipe"], origin=str(path))
        spec = RunSpec(options=options, recipe=recipe, model_overrides=dict(data["model_overrides"]),
                       notes=list(data.get("notes", [])))
        config = ResNetConfig.from_dict(data["model_config"])
        classes = [str(c) for c in data["classes"]]
    except (KeyError, TypeError, ValueError, ResnetsError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ResnetsError(f"cannot resume: the run record {path} is damaged ({detail}); the checkpoints beside "
                           "it are untouched") from None
    return RunRecord(spec=spec, model_config=config, classes=classes, data=data)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (the initial weights are recorded by it, so a resume from the start can check them)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
