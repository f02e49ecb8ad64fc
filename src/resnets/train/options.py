"""`TrainOptions`: everything `resnets train` takes besides the recipe's own hyper-parameters.

Options split in two: those that decide the result (data, model, batch, seed, ...) are recorded in the run
directory and never change on resume; the runtime ones (`RUNTIME_OPTIONS`: progress, workers, device,
logging destinations) may differ between the start of a run and its resumption.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import ResnetsError

RUNTIME_OPTIONS = ("progress", "workers", "device", "log_to_stderr", "retain_memory", "tensorboard", "mlflow",
                   "log_every", "save_every", "save_every_minutes", "cache", "cache_budget")
"""Options a resumed run may change: they change how a run is watched and checkpointed, not its result."""

AUGMENT_ON = ("device", "workers")
DEFAULT_SAVE_EVERY_MINUTES = 5.0
DEFAULT_LOG_EVERY = 50


@dataclass
class TrainOptions:
    """The command line of one training run (the recipe supplies everything else)."""

    data: str | None = None
    """Data set spec; None: the recipe's own (the demo recipe uses the built-in `digits`)."""
    recipe: str = "demo"
    model: str | None = None
    out: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    """Global batch (all ranks together); the recipe's lr is scaled to it by the recipe's rule."""
    img_size: int | None = None
    """Training resolution; the evaluation size follows by the recipe's train:test ratio."""
    eval_img_size: int | None = None
    """Evaluation resolution; None: the recipe's, moved by the train:test ratio when the training size changes."""
    lr: float | None = None
    """An explicit lr at the actual batch size: no scaling is applied."""
    seed: int | None = None
    """None: the recipe's seed."""
    sets: list[str] = field(default_factory=list)
    """`key=value` recipe overrides; `model.key=value` changes the model config."""
    workers: int | None = None
    """Data-loading processes; None: 0 for the in-memory `digits` set, else min(4, CPU count)."""
    cache: str = "auto"
    """Decoded-in-memory data (data/cache.py): auto | ram | disk | off. The pixels are the same either way."""
    cache_budget: float | None = None
    """Largest decoded data set (GB) `--cache` keeps; None: half of the available memory."""
    augment_on: str = "device"
    """Where training augmentation runs: "device" (whole batches, data/batch_augment.py) or "workers"
    (per sample in the loader processes). Changes the random streams, so it is recorded and fixed on resume."""
    decode: str = "auto"
    """JPEG decoding: auto | cpu | gpu | dali (data/decode.py)."""
    device: str = "auto"
    weights: str | None = None
    reset_head: bool = False
    teacher: str | None = None
    """Weight file of a frozen teacher to distil from (needs a distillation mode: --distill or the recipe's)."""
    teacher_model: str | None = None
    """The teacher's preset; None: the architecture its file records (our files carry their config)."""
    distill: str | None = None
    """kd or ssld; None: the recipe's `distill` (none for most recipes)."""
    distill_alpha: float | None = None
    """kd only: the weight of the distillation term; None: the recipe's."""
    temperature: float | None = None
    """kd only: the softmax temperature; None: the recipe's."""
    teacher_bn: str | None = None
    """eval (running statistics) or train (batch statistics, PaddleClas' SSLD); None: the recipe's."""
    unlabeled: list[str] = field(default_factory=list)
    """Folders of images (flat or nested, labels ignored) added to the training stream for the teacher."""
    unlabeled_ratio: float | None = None
    """Unlabelled images per labelled image in each epoch; None: all of them, every epoch."""
    strict: bool = False
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    deterministic: bool = False
    save_every: int = 0
    """Also checkpoint every N optimiser steps inside an epoch (0: not by steps)."""
    save_every_minutes: float = DEFAULT_SAVE_EVERY_MINUTES
    """Also checkpoint when this many minutes passed since the last checkpoint (0: not by time)."""
    log_every: int = DEFAULT_LOG_EVERY
    """Read the loss from the device (and check it is finite) every N optimiser steps; the only host syncs."""
    progress: bool = True
    log_to_stderr: bool = False
    """Send progress lines to stderr (keeps stdout clean for `--json`)."""
    tensorboard: bool = True
    """Write TensorBoard event files into <run>/tensorboard."""
    mlflow: str | None = None
    """MLflow tracking URI (optional extra `resnets[mlflow]`); None: no MLflow."""
    retain_memory: bool = True
    """Reuse freed host memory instead of handing it back to the kernel every step (see resnets.host_memory):
    ~1.2x faster CPU steps for a process that keeps its peak footprint. Off: the C library's default."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainOptions:
        """Options from a run record; unknown keys (a newer version's) are an error, missing ones take defaults."""
        names = {f.name for f in fields(cls)}
        extra = sorted(set(data) - names)
        if extra:
            raise ResnetsError(f"unknown option(s) {', '.join(extra)} (written by a newer resnets?)")
        if "augment_on" not in data:  # recorded before batched augmentation existed: the per-sample path
            data = {**data, "augment_on": "workers"}
        return cls(**data)

    def with_runtime(self, runtime: TrainOptions) -> TrainOptions:
        """These (recorded) options with the runtime options of `runtime` (the resuming command line)."""
        values = self.to_dict()
        values.update({name: getattr(runtime, name) for name in RUNTIME_OPTIONS})
        return TrainOptions(**values)


def check_options(options: TrainOptions) -> None:
    """Reject values no run can use, before any work starts."""
    minimums = (("epochs", 1), ("batch_size", 1), ("img_size", 32), ("eval_img_size", 32), ("workers", 0),
                ("save_every", 0), ("log_every", 1))
    for name, minimum in minimums:
        value = getattr(options, name)
        if value is not None and value < minimum:
            raise ResnetsError(f"--{name.replace('_', '-')} must be at least {minimum}, got {value}")
    if options.save_every_minutes < 0:
        raise ResnetsError(f"--save-every-minutes must be >= 0 (0: only at epoch ends), got "
                           f"{options.save_every_minutes}")
    if options.augment_on not in AUGMENT_ON:
        raise ResnetsError(f"unknown --augment-on {options.augment_on!r}; choose from {', '.join(AUGMENT_ON)}")
    from ..data.cache import CacheConfig
    from ..data.decode import DECODERS

    CacheConfig(options.cache, options.cache_budget)  # one-line errors for a bad mode or budget
    if options.decode not in DECODERS:
        raise ResnetsError(f"unknown --decode {options.decode!r}; choose from {', '.join(DECODERS)}")
    if options.lr is not None and not options.lr > 0:
        raise ResnetsError(f"--lr must be positive, got {options.lr}")
    if options.distill is not None and options.distill not in ("kd", "ssld"):
        raise ResnetsError(f"--distill must be kd or ssld, got {options.distill!r}")
    if options.distill_alpha is not None and not 0.0 <= options.distill_alpha <= 1.0:
        raise ResnetsError(f"--distill-alpha must be in [0, 1], got {options.distill_alpha}")
    if options.temperature is not None and not options.temperature > 0:
        raise ResnetsError(f"--temperature must be positive, got {options.temperature}")
    if options.teacher_bn is not None and options.teacher_bn not in ("eval", "train"):
        raise ResnetsError(f"--teacher-bn must be eval or train, got {options.teacher_bn!r}")
    if options.unlabeled_ratio is not None:
        if not options.unlabeled:
            raise ResnetsError("--unlabeled-ratio sets the share of --unlabeled images: add --unlabeled DIR")
        if not options.unlabeled_ratio > 0:
            raise ResnetsError(f"--unlabeled-ratio must be positive, got {options.unlabeled_ratio}")


def model_overrides(sets: list[str]) -> dict[str, Any]:
    """`--set model.key=value` pairs, parsed with YAML rules (numbers, booleans, lists)."""
    import yaml

    overrides: dict[str, Any] = {}
    for assignment in sets:
        key, sep, value = assignment.partition("=")
        key = key.strip()
        if not key.startswith("model."):
            continue
        if not sep:
            raise ResnetsError(f"--set {assignment!r}: expected key=value")
        try:
            overrides[key[len("model."):]] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ResnetsError(f"--set {assignment!r}: cannot parse the value ({exc})") from None
    return overrides


def recipe_sets(sets: list[str]) -> list[str]:
    """The `--set` assignments that change the recipe (not the model config)."""
    return [s for s in sets if not s.split("=", 1)[0].strip().startswith("model.")]
