"""The papers' data the studies apply: block layouts per depth, ResNet-RS's regularisation per model size,
and ResNet-RS Table 1's training ladder. Sources in docs/studies.md and docs/reference.md §1.8, §3.2."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ResnetsError
from ..models.registry import DEPTHS, get_config, list_models
from .parse import Step


def depth_layouts() -> dict[int, tuple[str, tuple[int, ...]]]:
    """Depth -> (block, blocks per stage): the torchvision/timm layouts (basic blocks for 10/18/34,
    bottlenecks otherwise) and ResNet-RS's deeper bottleneck layouts (270, 350, 420), read from the presets."""
    layouts = dict(DEPTHS)
    for name in list_models("resnetrs*"):
        depth = int(name[len("resnetrs"):])
        layouts.setdefault(depth, ("bottleneck", get_config(name).layers))
    return dict(sorted(layouts.items()))


def layout_for(depth: int) -> tuple[str, tuple[int, ...]]:
    layouts = depth_layouts()
    if depth not in layouts:
        raise ResnetsError(f"no published block layout for depth {depth}; known depths: "
                           f"{', '.join(str(d) for d in layouts)}")
    return layouts[depth]


@dataclass(frozen=True)
class RegularisationRow:
    """Fields set on every run whose size reaches these thresholds; later rows override earlier ones."""

    drop_rate: float
    drop_path_rate: float
    min_depth: int = 0
    min_width: float = 0.0
    min_img_size: int = 0
    min_epochs: int = 0
    source: str = ""

    def matches(self, depth: int, width: float, img_size: int, epochs: int) -> bool:
        return (depth >= self.min_depth and width >= self.min_width and img_size >= self.min_img_size
                and epochs >= self.min_epochs)

    def to_dict(self) -> dict:
        return dict(vars(self))


# ResNet-RS's shipped configs (tensorflow/tpu resnet_rs/configs and TF2 Model Garden imagenet_resnetrs*.yaml,
# docs/reference.md §3.2): dropout 0.25 up to RS-350 @256, 0.4 for RS-350/420 @320; stochastic depth 0.1
# from RS-200 on. The paper's scaling-study table of dropout by width (its Table 12) could not be read from
# any source available here: give such rows with --regularisation FILE.
RESNET_RS_REGULARISATION = (
    RegularisationRow(drop_rate=0.25, drop_path_rate=0.0, source="RS-50 ... RS-152 configs"),
    RegularisationRow(drop_rate=0.25, drop_path_rate=0.1, min_depth=200, source="RS-200, RS-270, RS-350 @256"),
    RegularisationRow(drop_rate=0.4, drop_path_rate=0.1, min_depth=350, min_img_size=320,
                      source="RS-350 @320, RS-420 @320"),
)

REGULARISATION_TABLES = {"resnet-rs": RESNET_RS_REGULARISATION, "none": ()}


def regularisation_rows(name_or_path: str) -> tuple[RegularisationRow, ...]:
    """A shipped table by name, or a YAML list of rows (`drop_rate`, `drop_path_rate`, `min_*`, `source`)."""
    if name_or_path in REGULARISATION_TABLES:
        return REGULARISATION_TABLES[name_or_path]
    from pathlib import Path

    import yaml

    path = Path(name_or_path)
    if not path.is_file():
        raise ResnetsError(f"--regularisation {name_or_path!r}: not a table ({', '.join(REGULARISATION_TABLES)}) "
                           "and no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ResnetsError(f"--regularisation {path}: cannot read it ({exc})") from None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise ResnetsError(f"--regularisation {path}: expected a YAML list of rows with drop_rate, drop_path_rate")
    try:
        return tuple(RegularisationRow(**row) for row in data)
    except TypeError as exc:
        raise ResnetsError(f"--regularisation {path}: {exc}") from None


def regularisation_for(rows: tuple[RegularisationRow, ...], depth: int, width: float, img_size: int,
                       epochs: int) -> RegularisationRow | None:
    """The last row that matches (rows grow stronger down the table), or None."""
    chosen = None
    for row in rows:
        if row.matches(depth, width, img_size, epochs):
            chosen = row
    return chosen


# ResNet-RS Table 1 (arXiv 2103.07579): ResNet-200 at 256 px, each method added to the previous rung. The
# abstract states the end points (79.0 -> 82.2 by training methods -> 83.4 with SE and ResNet-D); the table
# itself could not be read from any stored source, so the rungs in between are UNVERIFIED (recalled from
# the paper; `PAPER_VERIFIED` lists the ones that are confirmed) and reports mark them so. The changes
# are the paper's values as the ResNet-RS code sets them (docs/reference.md §1.7, §3.2); "longer training"
# is 90 -> 350 epochs, applied as a factor so that a short budget keeps the ratio.
RESNET_RS_BASELINE = {
    "epochs": "90", "schedule": "step", "step_epochs": "[30,60,80]", "step_gamma": "0.1", "warmup_epochs": "5",
    "ema_decay": "0.0", "label_smoothing": "0.0", "drop_path_rate": "0.0", "auto_augment": "null",
    "drop_rate": "0.0", "weight_decay": "1.0e-4", "model.se_ratio": "0.0", "model.stem_type": "conv7",
    "model.shortcut": "conv", "model.stem_pool": "max",
}
RESNET_RS_LADDER = (
    Step("cosine", {"schedule": "cosine"}, paper_top1=79.3),
    Step("longer-training", {}, paper_top1=78.8, epochs_factor=350 / 90),
    Step("ema", {"ema_decay": "0.9999", "ema_warmup": "true"}, paper_top1=79.1),
    Step("label-smoothing", {"label_smoothing": "0.1"}, paper_top1=80.4),
    Step("stochastic-depth", {"drop_path_rate": "0.1", "model.drop_path_schedule": "stage"}, paper_top1=80.6),
    Step("randaugment", {"auto_augment": "randtf-m15-n2"}, paper_top1=81.0),
    Step("dropout", {"drop_rate": "0.25"}, paper_top1=80.7),
    Step("lower-weight-decay", {"weight_decay": "4.0e-5"}, paper_top1=82.2),
    Step("squeeze-excitation", {"model.se_ratio": "0.25"}, paper_top1=82.9),
    Step("resnet-d", {"model.stem_type": "deep", "model.stem_width": "32", "model.shortcut": "avg",
                      "model.stem_pool": "conv"}, paper_top1=83.4),
)
RESNET_RS_BASELINE_TOP1 = 79.0
PAPER_VERIFIED = {"resnet-rs": {"baseline", "lower-weight-decay", "resnet-d"}}
"""Rungs whose published top-1 a stored source confirms (the abstract's 79.0, 82.2 and 83.4)."""
LADDERS = {"resnet-rs": (RESNET_RS_BASELINE, RESNET_RS_BASELINE_TOP1, RESNET_RS_LADDER)}
LADDER_SOURCES = {"resnet-rs": "ResNet-RS (arXiv 2103.07579) Table 1: ResNet-200 @256, ImageNet top-1"}


def ladder(name: str) -> tuple[dict[str, str], float, tuple[Step, ...]]:
    if name not in LADDERS:
        raise ResnetsError(f"unknown ladder {name!r}; shipped: {', '.join(LADDERS)}")
    return LADDERS[name]
