"""Study specifications: one dataclass per kind, each planning its runs as ordinary training options.

A spec is what `study.json` records and what decides the study's results; executors, parallelism, threads,
workers and devices are not part of it (they may change between invocations). `plan()` resolves every run
with the engine's own `resolve_spec` and derives its id, so a bad value in any run fails before anything runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ResnetsError
from ..models.registry import get_config
from ..train.options import TrainOptions
from ..train.recipe import load_recipe
from ..train.spec import RunSpec, resolve_spec
from .parse import Step
from .published import (
    LADDER_SOURCES,
    RegularisationRow,
    depth_layouts,
    ladder,
    layout_for,
    regularisation_for,
    regularisation_rows,
)
from .runid import run_id

STUDY_FORMAT = "resnets-study"
STUDY_VERSION = 1


@dataclass
class PlannedRun:
    """One run of a study: its varied settings, the options `resnets train` gets, its resolved spec and id."""

    label: str
    settings: dict[str, Any]
    options: TrainOptions
    spec: RunSpec
    run_id: str
    bench: bool = False


@dataclass
class Study:
    """The options every kind shares: those of `resnets train` that make sense across runs."""

    kind: ClassVar[str] = ""
    recipe: str = "demo"
    model: str | None = None
    data: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    img_size: int | None = None
    sets: list[str] = field(default_factory=list)
    eval_data: list[list[str]] = field(default_factory=list)
    """[name, folder] pairs: every finished run's best weights are also evaluated there."""
    deterministic: bool = False

    # -- serialisation -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": STUDY_FORMAT, "version": STUDY_VERSION, "kind": self.kind, **_plain(asdict(self))}

    def columns(self) -> list[str]:
        """The settings that vary between runs (the first columns of results.csv)."""
        raise NotImplementedError

    # -- planning --------------------------------------------------------------------------------------------
    def plan(self) -> list[PlannedRun]:
        load_recipe(self.recipe)  # a typo'd recipe is one line before anything else
        if self.model:
            get_config(self.model)
        self._check_paths()
        runs = [self._planned(label, settings, options, bench) for label, settings, options, bench in self._runs()]
        seen: dict[str, str] = {}
        for run in runs:
            if run.run_id in seen:
                raise ResnetsError(f"runs {seen[run.run_id]} and {run.label} resolve to the same configuration "
                                   "(does a --set override what the study varies?)")
            seen[run.run_id] = run.label
        return runs

    def _runs(self) -> list[tuple[str, dict[str, Any], TrainOptions, bool]]:
        raise NotImplementedError

    def _options(self, **changes: Any) -> TrainOptions:
        values = dict(data=self.data, recipe=self.recipe, model=self.model, epochs=self.epochs,
                      batch_size=self.batch_size, img_size=self.img_size, sets=list(self.sets),
                      deterministic=self.deterministic)
        values.update(changes)
        return TrainOptions(**values)

    def _planned(self, label: str, settings: dict[str, Any], options: TrainOptions, bench: bool) -> PlannedRun:
        try:
            spec = resolve_spec(options)
        except ResnetsError as exc:
            raise ResnetsError(f"run {label}: {exc}") from None
        return PlannedRun(label=label, settings=settings, options=options, spec=spec, run_id=run_id(label, spec),
                          bench=bench)

    def _check_paths(self) -> None:
        if self.data is not None:
            _check_folder(self.data, "--data")
        for name, folder in self.eval_data:
            _check_folder(folder, f"--eval-data {name}")

    def _refuse_varied_sets(self, varied: dict[str, str]) -> None:
        """A --set of a field the study varies would make every run the same: say so instead."""
        for assignment in self.sets:
            key = assignment.split("=", 1)[0].strip()
            if key in varied:
                raise ResnetsError(f"--set {assignment!r} fixes what {varied[key]} varies; drop the --set")


# --- the kinds ----------------------------------------------------------------------------------------------------
@dataclass
class SeedsStudy(Study):
    """RSB's seed experiment: one recipe, many seeds; the spread on val and on other sets."""

    kind: ClassVar[str] = "seeds"
    seeds: list[int] = field(default_factory=lambda: [0])

    def columns(self) -> list[str]:
        return ["seed"]

    def _runs(self):
        return [(f"seed{s}", {"seed": s}, self._options(seed=s), False) for s in self.seeds]


@dataclass
class ScalingStudy(Study):
    """ResNet-RS's scaling grid: depth x width x resolution x epochs, each run also benchmarked."""

    kind: ClassVar[str] = "scaling"
    depths: list[int] | None = None
    """None: the base model's own layout."""
    widths: list[float] = field(default_factory=lambda: [1.0])
    img_sizes: list[int] | None = None
    """None: --img-size or the recipe's."""
    epochs_list: list[int] | None = None
    """None: --epochs or the recipe's."""
    seed: int = 0
    regularisation: str = "resnet-rs"
    """A shipped table (resnet-rs, none) or a YAML file of rows; its rows are recorded below."""
    regularisation_table: list[dict[str, Any]] = field(default_factory=list)
    bench_batch: int = 16
    """The throughput batch (latency is timed at batch 1)."""

    def __post_init__(self) -> None:
        if not self.regularisation_table:
            self.regularisation_table = [row.to_dict() for row in regularisation_rows(self.regularisation)]

    def columns(self) -> list[str]:
        return ["depth", "width", "img_size", "epochs"]

    def rows(self) -> tuple[RegularisationRow, ...]:
        return tuple(RegularisationRow(**row) for row in self.regularisation_table)

    def _runs(self):
        varied = {}
        if self.depths is not None:
            varied.update({"model.layers": "--depths", "model.block": "--depths"})
            for depth in self.depths:
                layout_for(depth)
        if self.widths:
            varied["model.width_multiplier"] = "--widths"
        if self.img_sizes is not None:
            varied["img_size"] = "--img-sizes"
            if self.img_size is not None:
                raise ResnetsError("give --img-size or --img-sizes, not both")
        if self.epochs_list is not None:
            varied["epochs"] = "--epochs-list"
            if self.epochs is not None:
                raise ResnetsError("give --epochs or --epochs-list, not both")
        self._refuse_varied_sets(varied)
        base = resolve_spec(self._options())
        base_depth = _depth_of(base)
        runs = []
        for depth, width, size, epochs in itertools.product(
                self.depths or [base_depth], self.widths, self.img_sizes or [base.recipe.img_size],
                self.epochs_list or [base.recipe.epochs]):
            sets = []
            if self.depths is not None:
                block, layers = layout_for(depth)
                sets += [f"model.block={block}", f"model.layers={list(layers)}"]
            sets.append(f"model.width_multiplier={width}")
            row = regularisation_for(self.rows(), depth or 0, width, size, epochs)
            if row is not None:
                sets += [f"drop_rate={row.drop_rate}", f"drop_path_rate={row.drop_path_rate}"]
            options = self._options(sets=sets + list(self.sets), img_size=size, epochs=epochs, seed=self.seed)
            label = f"d{depth if depth else 'base'}-w{width:g}-r{size}-e{epochs}"
            runs.append((label, {"depth": depth, "width": width, "img_size": size, "epochs": epochs}, options, True))
        return runs


@dataclass
class AblationStudy(Study):
    """A cumulative ladder: each step adds its changes to the previous one (ResNet-RS Table 1)."""

    kind: ClassVar[str] = "ablation"
    steps: list[Step] = field(default_factory=list)
    ladder: str | None = None
    """A shipped ladder (its baseline changes and steps come from `published`)."""
    ladder_steps: int | None = None
    """Only the shipped ladder's first N steps after the baseline (a short budget)."""
    seeds: list[int] = field(default_factory=lambda: [0])

    def __post_init__(self) -> None:
        self.steps = [s if isinstance(s, Step) else Step.from_dict(s) for s in self.steps]
        if self.ladder is not None and not self.steps:
            _, _, steps = ladder(self.ladder)
            if self.ladder_steps is not None and not 1 <= self.ladder_steps <= len(steps):
                raise ResnetsError(f"--ladder-steps must be between 1 and {len(steps)}, got {self.ladder_steps}")
            self.steps = list(steps[:self.ladder_steps])
        if not self.steps:
            raise ResnetsError("an ablation needs --steps NAME:key=value[,key=value] ... or --ladder resnet-rs")

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["steps"] = [s.to_dict() for s in self.steps]
        return data

    def columns(self) -> list[str]:
        return ["step_index", "step", "seed"]

    def baseline(self) -> Step:
        if self.ladder is None:
            return Step("baseline", {})
        changes, top1, _ = ladder(self.ladder)
        return Step("baseline", dict(changes), paper_top1=top1)

    def source(self) -> str | None:
        return LADDER_SOURCES.get(self.ladder) if self.ladder else None

    def all_steps(self) -> list[Step]:
        return [self.baseline(), *self.steps]

    def _runs(self):
        runs = []
        changes: dict[str, str] = {}
        factor = 1.0
        for index, step in enumerate(self.all_steps()):
            changes.update(step.changes)
            factor *= step.epochs_factor or 1.0
            for seed in self.seeds:
                options = self._step_options(changes, factor, seed)
                label = f"s{index:02d}-{step.name}-seed{seed}"
                runs.append((label, {"step_index": index, "step": step.name, "seed": seed}, options, False))
        return runs

    def _step_options(self, changes: dict[str, str], factor: float, seed: int) -> TrainOptions:
        """A user step's epochs/img_size/batch_size become the run's options (they beat --epochs etc.);
        every other change is a --set after the user's own, so the ladder's changes win. A shipped ladder's
        changes are all recipe fields (its baseline's `epochs` is the paper's length, which --epochs
        replaces), and its longer-training step multiplies the run's epochs."""
        option_keys = ("epochs", "img_size", "batch_size") if self.ladder is None else ()
        run_options: dict[str, Any] = {"epochs": self.epochs, "img_size": self.img_size,
                                       "batch_size": self.batch_size}
        sets = list(self.sets)
        for key, value in changes.items():
            if key in option_keys:
                try:
                    run_options[key] = int(value)
                except ValueError:
                    raise ResnetsError(f"ablation step change {key}={value!r}: expected an integer") from None
            else:
                sets.append(f"{key}={value}")
        if factor != 1.0:
            base = run_options["epochs"] or load_recipe(self.recipe).with_sets(
                [s for s in sets if not s.startswith("model.")]).epochs
            run_options["epochs"] = max(1, round(base * factor))
        return self._options(sets=sets, seed=seed, **run_options)


@dataclass
class TransferStudy(Study):
    """Fine-tune every pretrained checkpoint on every data set with one protocol (RSB figure 7)."""

    kind: ClassVar[str] = "transfer"
    recipe: str = "finetune"
    weights: list[list[str]] = field(default_factory=list)
    """[name, file, sha256] triples; the file 'none' trains from random initialisation (a baseline)."""
    datasets: list[list[str]] = field(default_factory=list)
    seed: int = 0

    def __post_init__(self) -> None:
        self.weights = [list(entry[:2]) + [entry[2] if len(entry) > 2 else _sha256(entry[1])]
                        for entry in self.weights]
        if not self.weights or not self.datasets:
            raise ResnetsError("a transfer study needs --weights NAME=FILE ... and --datasets NAME=DIR ...")

    def columns(self) -> list[str]:
        return ["weights", "dataset"]

    def _check_paths(self) -> None:
        super()._check_paths()
        for name, folder in self.datasets:
            _check_folder(folder, f"--datasets {name}")

    def _runs(self):
        runs = []
        for (wname, path, _), (dname, folder) in itertools.product(self.weights, self.datasets):
            model, arch_sets = _checkpoint_model(path, self.model, wname)
            weights = None if path == "none" else path
            options = self._options(data=folder, model=model, sets=arch_sets + list(self.sets), seed=self.seed,
                                    weights=weights, reset_head=weights is not None)
            runs.append((f"{wname}-on-{dname}", {"weights": wname, "dataset": dname}, options, False))
        return runs


KINDS: dict[str, type[Study]] = {cls.kind: cls for cls in (SeedsStudy, ScalingStudy, AblationStudy, TransferStudy)}


def load_study(data: dict[str, Any], origin: str = "study.json") -> Study:
    """A study from its recorded spec (study.json)."""
    if not isinstance(data, dict) or data.get("format") != STUDY_FORMAT:
        raise ResnetsError(f"{origin} is not a resnets study spec")
    if data.get("version") != STUDY_VERSION:
        raise ResnetsError(f"{origin} has study version {data.get('version')}; this resnets reads {STUDY_VERSION}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ResnetsError(f"{origin}: unknown study kind {kind!r}")
    cls = KINDS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k in names}
    try:
        return cls(**values)
    except (TypeError, ResnetsError) as exc:
        raise ResnetsError(f"{origin} is damaged ({exc})") from None


# --- helpers ------------------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_folder(path: str, flag: str) -> None:
    if path == "digits" or any(ch in path for ch in "{*?["):
        return  # the built-in set, or a shard pattern the data layer resolves
    if not Path(path).expanduser().exists():
        raise ResnetsError(f"{flag}: data path not found: {path}")


def _depth_of(spec: RunSpec) -> int | None:
    config = get_config(spec.model_name).replace(**{k: v for k, v in spec.model_overrides.items()
                                                   if k in ("block", "layers")})
    for depth, (block, layers) in depth_layouts().items():
        if block == config.block and tuple(layers) == tuple(config.layers):
            return depth
    return None


def _sha256(path: str) -> str:
    if path == "none":
        return ""
    file = Path(path)
    if not file.is_file():
        raise ResnetsError(f"--weights: file not found: {path}")
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Architecture fields a checkpoint's config may change on its preset (the rest is preprocessing or provenance).
_ARCH_FIELDS = ("block", "layers", "stage_planes", "stride_in_1x1", "cardinality", "base_width", "stem_type",
                "stem_width", "stem_pool", "shortcut", "se_ratio", "se_divisor", "act", "width_multiplier", "bn_eps",
                "in_chans")


def _checkpoint_model(path: str, model: str | None, name: str) -> tuple[str | None, list[str]]:
    """The preset and `model.*` sets that rebuild a checkpoint's architecture: ours carry their config;
    timm/torchvision files need --model to name it."""
    if path == "none":
        return model, []
    from ..models.config import ResNetConfig
    from ..weights.resolve import has_resnets_config

    if not has_resnets_config(path):
        if not model:
            raise ResnetsError(f"--weights {name}={path} carries no model config (not written by resnets): "
                               "name its architecture with --model")
        return model, []
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        config = ResNetConfig.from_json(handle.metadata()["config"])
    if not config.name:
        raise ResnetsError(f"--weights {name}={path}: its config names no preset")
    preset = get_config(config.name)
    sets = [f"model.{key}={json.dumps(_plain(getattr(config, key)))}" for key in _ARCH_FIELDS
            if getattr(config, key) != getattr(preset, key)]
    return config.name, sets
