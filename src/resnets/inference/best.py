"""`--mode best`: time the candidate (mode, precision) pairs on this machine, keep the fastest whose outputs
agree with fp32 eager.

Timing: every candidate is prepared, called once untimed, then `rounds` times interleaved (each round
calls every candidate in turn, the order reversed on alternate rounds), so a noisy neighbour slows all of
them alike; the median decides. Then, fastest first, each is checked until one passes:

- top-1 agreement with fp32 eager on the check set (the `calib` folder's images, else a fixed set of
  random images, seed 0) of at least AGREEMENT_MIN % (fp32 modes pass by construction; bf16/fp16 must
  earn it);
- int8 in addition: top-1 on a labelled folder (class folders named like the model's classes) may drop
  by at most INT8_MAX_TOP1_DROP points against fp32 eager. int8 is a candidate only when asked for
  (`allow_int8`, or precision int8) and such a folder is given.

The chosen candidate and every other one's speed, agreement and verdict are kept in a `Selection` that
the commands print and `--json` records.
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from ..errors import ResnetsError
from ..models.resnet import ResNet

AGREEMENT_MIN = 99.5
"""% of check images whose top-1 must equal fp32 eager's."""
INT8_MAX_TOP1_DROP = 0.5
"""Points of top-1 (on a labelled folder) int8 may lose against fp32 eager."""
CHECK_IMAGES = 200
"""Check-set size: at 200 images one disagreement is still >= 99.5 %."""
INT8_VAL_IMAGES = 1000
"""Labelled images at most for int8's top-1 check (spread over the folder's classes)."""
ROUNDS = 3
CHECK_BATCH = 16
"""Batch size of the check passes (every candidate takes any batch size)."""

# model -> {(img_size, check-set description, device): (weights fingerprint, fp32 eager top-1 of the check set)}
_REFERENCE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, tuple[tuple, torch.Tensor]]] = weakref.WeakKeyDictionary()


def weights_fingerprint(model: nn.Module) -> tuple:
    """Changes whenever a weight or BN statistic is replaced or updated in place (optimizer step, load)."""
    return tuple((t.data_ptr(), t._version) for t in model.state_dict(keep_vars=True).values())


@dataclass
class BestOptions:
    """What `best` may pick and what it checks against."""

    precision: str | None = None
    """Only candidates in this precision (fp32 = exact modes only); None: every precision native here."""
    calib: str | None = None
    """Image folder: int8 calibration, and the check set (else random images)."""
    allow_int8: bool = False
    int8_val: str | None = None
    """Labelled folder (DIR/<class>/<image>) for int8's top-1 check; default: the calib folder."""
    check_images: int = CHECK_IMAGES
    rounds: int = ROUNDS

    def __post_init__(self) -> None:
        if self.check_images < 1:
            raise ResnetsError(f"the check set needs at least one image, got {self.check_images}")
        if self.rounds < 1:
            raise ResnetsError(f"best needs at least one timing round, got {self.rounds}")

    @property
    def labelled(self) -> str | None:
        return self.int8_val or self.calib

    def int8_ineligible(self) -> str | None:
        """Why int8 is not a candidate under these options (None: it is)."""
        if not self.allow_int8 and self.precision != "int8":
            return "left out: it changes outputs, so best uses it only with --allow-int8 and a labelled folder"
        if not self.calib:
            return "needs calibration images (--calib DIR)"
        return None


@dataclass
class Candidate:
    mode: str
    precision: str
    img_s: float | None = None
    latency_ms: float | None = None
    prepare_s: float | None = None
    agreement: float | None = None
    """% of check images whose top-1 equals fp32 eager's."""
    top1_fp32: float | None = None
    top1: float | None = None
    """int8: top-1 % of fp32 eager and of this candidate on the labelled folder."""
    verdict: str = ""
    forward: Callable | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return f"{self.mode} {self.precision}"

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "forward"}


@dataclass
class Selection:
    chosen: Candidate
    candidates: list[Candidate]
    """Timed candidates fastest first, then those that could not run."""
    left_out: list[str]
    check_set: str
    batch_size: int
    img_size: int
    seconds: float

    def lines(self) -> list[str]:
        head = (f"best: timed {sum(c.img_s is not None for c in self.candidates)} candidate(s) at batch "
                f"{self.batch_size}, {self.img_size} px; checked against fp32 eager on {self.check_set} "
                f"({self.seconds:.0f} s in all)")
        lines = [head]
        width = max(len(c.name) for c in self.candidates)
        for c in self.candidates:
            speed = f"{c.img_s:8.1f} img/s" if c.img_s is not None else " " * 14
            lines.append(f"  {c.name:<{width}}  {speed}  {c.verdict}")
        lines += [f"  not tried: {why}" for why in self.left_out]
        lines.append(f"best -> {self.chosen.name}: {self.chosen.verdict}")
        return lines

    def to_dict(self) -> dict:
        return {"chosen": self.chosen.to_dict(), "candidates": [c.to_dict() for c in self.candidates],
                "left_out": self.left_out, "check_set": self.check_set, "batch_size": self.batch_size,
                "img_size": self.img_size, "seconds": self.seconds}


def _time_interleaved(candidates: list[Candidate], images: torch.Tensor, rounds: int) -> None:
    times: dict[int, list[float]] = {id(c): [] for c in candidates}
    with torch.inference_mode():
        for c in candidates:
            c.forward(images)  # warm-up (first-call allocations, lazy kernels)
        for index in range(rounds):
            order = candidates if index % 2 == 0 else list(reversed(candidates))
            for c in order:
                time.sleep(0.005)  # ONNX Runtime's and OpenVINO's threads spin briefly after a run
                start = time.perf_counter()
                c.forward(images)
                times[id(c)].append(time.perf_counter() - start)
    for c in candidates:
        median = statistics.median(times[id(c)])
        c.latency_ms, c.img_s = median * 1000, len(images) / median


def check_set(model: ResNet, options: BestOptions, img_size: int, batch_size: int) -> tuple[list[torch.Tensor], str]:
    """(batches, description): up to `check_images` images of the calib folder, else random ones (seed 0)."""
    from ..evaluate import file_batches, image_files

    if options.calib:
        try:
            files = image_files(options.calib, options.check_images)
            batches = list(file_batches(files, model.config, img_size=img_size, batch_size=batch_size))
        except ResnetsError as exc:
            batches, note = [], f" ({exc})"
        else:
            note = ""
        if batches:
            return batches, f"{sum(len(b) for b in batches)} images of {options.calib}"
    else:
        note = ""
    generator = torch.Generator().manual_seed(0)
    count, batches = options.check_images, []
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        batches.append(torch.randn(n, model.config.in_chans, img_size, img_size, generator=generator))
    return batches, f"{count} random images (seed 0){note}"


def _top1(forward: Callable, batches: list[torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([forward(b).float().argmax(1).cpu() for b in batches])


def _labelled_top1(model: ResNet, folder: str, img_size: int, batch_size: int):
    """(top-1 function of a forward, image count) on a labelled folder, or a ResnetsError saying why not."""
    from ..data.datasets import FolderDataset
    from ..evaluate import image_files, image_loader, label_map, normaliser, run_accuracy

    classes = FolderDataset(folder).classes  # DIR/<class>/<image>, or a one-line error
    names = getattr(model, "class_names", None)
    if not names:
        raise ResnetsError(f"the model's weights carry no class names to match {folder}'s class folders")
    mapping = label_map(classes, names, model.config.num_classes)
    index = {c: i for i, c in enumerate(classes)}
    files = [p for p in image_files(folder, INT8_VAL_IMAGES) if p.parent.name in index]
    targets = [index[p.parent.name] for p in files]
    prepare = normaliser(model.config)

    def top1(forward: Callable) -> float:
        loader = image_loader(files, model.config, img_size=img_size, batch_size=batch_size, targets=targets)
        return run_accuracy(forward, loader, model.config.num_classes, prepare, label_map=mapping).top(1)

    return top1, len(files)


def choose(pairs: list[tuple[str, str]], build: Callable[[str, str], Callable], reference: Callable,
           model: ResNet, *, img_size: int, batch_size: int, options: BestOptions, left_out: list[str],
           device: torch.device) -> Selection:
    """Prepare and time every (mode, precision) in `pairs`, then keep the fastest that passes its checks."""
    start_all = time.perf_counter()
    left_out = list(left_out)
    candidates, failed = [], []
    labelled = None
    if any(p == "int8" for _, p in pairs):
        try:
            labelled = _labelled_top1(model, options.labelled, img_size, CHECK_BATCH)
        except ResnetsError as exc:
            pairs = [(m, p) for m, p in pairs if p != "int8"]
            left_out.append(f"int8: needs a labelled folder for its top-1 check: {exc}")
    for mode, precision in pairs:
        candidate = Candidate(mode, precision)
        start = time.perf_counter()
        try:
            candidate.forward = build(mode, precision)
        except (ResnetsError, RuntimeError, MemoryError) as exc:
            candidate.verdict = f"could not run: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            failed.append(candidate)
            continue
        candidate.prepare_s = time.perf_counter() - start
        candidates.append(candidate)
    if not candidates:
        raise ResnetsError("best: no candidate could run: " + "; ".join(f"{c.name}: {c.verdict}" for c in failed))
    images = torch.randn(batch_size, model.config.in_chans, img_size, img_size,
                         generator=torch.Generator().manual_seed(1)).to(device)
    _time_interleaved(candidates, images, options.rounds)
    candidates.sort(key=lambda c: -c.img_s)
    batches, description = check_set(model, options, img_size, CHECK_BATCH)
    batches = [b.to(device) for b in batches]
    entries = _REFERENCE.setdefault(model, {})
    key, fingerprint = (img_size, description, str(device)), weights_fingerprint(model)
    if key not in entries or entries[key][0] != fingerprint:  # eager fp32 is the slowest pass: once per model
        entries[key] = (fingerprint, _top1(reference, batches))
    expected = entries[key][1]
    reference_top1 = None
    chosen = None
    for c in candidates:
        if chosen is not None:
            c.verdict = f"slower than {chosen.name}"
            continue
        c.agreement = 100.0 * float((_top1(c.forward, batches) == expected).float().mean())
        if c.agreement < AGREEMENT_MIN:
            c.verdict = f"rejected: top-1 agrees with fp32 eager on {c.agreement:.1f}% (< {AGREEMENT_MIN}%)"
            continue
        if c.precision == "int8" and labelled is not None:
            top1, count = labelled
            if reference_top1 is None:
                reference_top1 = top1(reference)
            c.top1_fp32, c.top1 = reference_top1, top1(c.forward)
            drop = c.top1_fp32 - c.top1
            if drop > INT8_MAX_TOP1_DROP:
                c.verdict = (f"rejected: top-1 {c.top1_fp32:.2f}% -> {c.top1:.2f}% on {count} images of "
                             f"{options.labelled} (drop {drop:.2f} > {INT8_MAX_TOP1_DROP} points)")
                continue
        chosen = c
        why = f"fastest whose top-1 agrees with fp32 eager ({c.agreement:.1f}% >= {AGREEMENT_MIN}%)"
        if c.top1 is not None:
            why += f"; top-1 {c.top1_fp32:.2f}% -> {c.top1:.2f}% on {options.labelled}"
        c.verdict = why
    if chosen is None:
        raise ResnetsError("best: every candidate disagreed with fp32 eager: "
                           + "; ".join(f"{c.name}: {c.verdict}" for c in candidates))
    seconds = time.perf_counter() - start_all
    return Selection(chosen, candidates + failed, left_out, description, batch_size, img_size, seconds)


__all__ = ["AGREEMENT_MIN", "INT8_MAX_TOP1_DROP", "BestOptions", "Candidate", "Selection", "check_set", "choose"]
