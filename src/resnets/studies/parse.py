"""Parsing the study command lines' lists: seed ranges, grids, NAME=VALUE pairs and ablation steps.

Every malformed value is one `ResnetsError` line naming the flag and showing a valid form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ResnetsError

_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?$")
# A step's changes are split at the commas that start a new `key=` (values may hold commas: `step_epochs=[3,6]`).
_CHANGE_SPLIT = re.compile(r",(?=\s*[A-Za-z_][\w.]*\s*=)")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """'0-99', '7' or '0,3,5-7' -> a list of distinct non-negative seeds, in the order given."""
    seeds: list[int] = []
    parts = [p for p in text.split(",")] if text.strip() else []
    if not parts:
        raise ResnetsError(f"{flag}: no seeds given (e.g. {flag} 0-9 or {flag} 0,3,5-7)")
    for part in parts:
        match = _RANGE.match(part)
        if not match:
            raise ResnetsError(f"{flag} {text!r}: {part.strip()!r} is not a seed or a range (e.g. 0-9 or 0,3,5-7)")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if low < 0 or high < low:
            raise ResnetsError(f"{flag} {text!r}: {part.strip()!r} is not an increasing range of seeds >= 0")
        seeds.extend(range(low, high + 1))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ResnetsError(f"{flag} {text!r}: seed {repeated[0]} is given twice")
    return seeds


def parse_numbers(text: str, flag: str, kind: type = int, minimum: float = 1) -> list:
    """'26,50,101' -> [26, 50, 101] (or floats); empty, malformed, repeated or too small values are refused."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ResnetsError(f"{flag}: the grid is empty (give comma-separated values, e.g. {flag} "
                           f"{'0.5,1.0' if kind is float else '26,50'})")
    values = []
    for part in parts:
        try:
            value = kind(part)
        except ValueError:
            word = "a number" if kind is float else "an integer"
            raise ResnetsError(f"{flag} {text!r}: {part!r} is not {word}") from None
        if value < minimum:
            raise ResnetsError(f"{flag} {text!r}: {part} is below the minimum {minimum:g}")
        values.append(value)
    if len(set(values)) != len(values):
        raise ResnetsError(f"{flag} {text!r}: a value is given twice")
    return values


def parse_named(items: list[str], flag: str, what: str) -> list[tuple[str, str]]:
    """['a=x', 'b=y'] -> [('a', 'x'), ('b', 'y')]: names unique and plain (they become column names)."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ResnetsError(f"{flag} {item!r}: expected NAME={what}")
        if not _NAME.match(name):
            raise ResnetsError(f"{flag} {item!r}: the name {name!r} may hold only letters, digits and _ . + -")
        if any(name == other for other, _ in pairs):
            raise ResnetsError(f"{flag}: the name {name!r} is given twice")
        pairs.append((name, value))
    return pairs


@dataclass
class Step:
    """One rung of an ablation ladder: a name and the changes it adds to the previous rung."""

    name: str
    changes: dict[str, str] = field(default_factory=dict)
    """key -> value text: recipe fields, `model.FIELD`, or `epochs`/`img_size`/`batch_size` (run options)."""
    paper_top1: float | None = None
    """The published top-1 after this step (shipped ladders only)."""
    epochs_factor: float | None = None
    """Shipped ladders: scale the run's epochs by this (the paper's longer training, at any budget)."""

    def to_dict(self) -> dict:
        return {"name": self.name, "changes": dict(self.changes), "paper_top1": self.paper_top1,
                "epochs_factor": self.epochs_factor}

    @classmethod
    def from_dict(cls, data: dict) -> Step:
        return cls(name=data["name"], changes=dict(data["changes"]), paper_top1=data.get("paper_top1"),
                   epochs_factor=data.get("epochs_factor"))

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.changes.items()]
        if self.epochs_factor:
            parts.append(f"epochs x{self.epochs_factor:.3g}")
        return ", ".join(parts) or "(the recipe as given)"


def parse_steps(items: list[str]) -> list[Step]:
    """['cosine:schedule=cosine', 'ls:label_smoothing=0.1,ema_decay=0.999'] -> Steps (names unique)."""
    if not items:
        raise ResnetsError("--steps: no steps given (e.g. --steps cosine:schedule=cosine ls:label_smoothing=0.1)")
    steps: list[Step] = []
    for item in items:
        name, sep, body = item.partition(":")
        name = name.strip()
        if not sep or not name or not body.strip():
            raise ResnetsError(f"--steps {item!r}: expected NAME:key=value[,key=value]")
        if not _NAME.match(name):
            raise ResnetsError(f"--steps {item!r}: the name {name!r} may hold only letters, digits and _ . + -")
        if name == "baseline" or any(name == s.name for s in steps):
            raise ResnetsError(f"--steps: the step name {name!r} is {'reserved' if name == 'baseline' else 'repeated'}")
        changes: dict[str, str] = {}
        for change in _CHANGE_SPLIT.split(body):
            key, eq, value = change.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ResnetsError(f"--steps {item!r}: {change.strip()!r} is not key=value")
            changes[key] = value.strip()
        steps.append(Step(name, changes))
    return steps
