"""Run ids: a readable label plus a hash of the run's resolved configuration.

The hash covers what decides a run's result, resolved (`resnets.train.spec.RunSpec`): the options except the
runtime ones and `out`, the fully resolved recipe and the model overrides. It is the sha256 of the canonical
JSON (sorted keys, no whitespace, floats in Python's shortest round-trip form), so it is the same in every
process and on every machine, and a run directory's own `run.json` hashes to the id it lives under.
`--set` strings are left out: their effect is in the resolved recipe and overrides (lr=0.1 and lr=1e-1 agree).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..train.options import RUNTIME_OPTIONS
from ..train.spec import RunSpec

HASH_CHARS = 12
_EXCLUDED = frozenset(RUNTIME_OPTIONS) | {"out", "sets"}


def fingerprint(spec: RunSpec) -> dict[str, Any]:
    """The parts of a resolved spec that decide the run's result."""
    options = {k: v for k, v in spec.options.to_dict().items() if k not in _EXCLUDED}
    return {"options": options, "recipe": spec.recipe.to_dict(), "model_overrides": spec.model_overrides}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def spec_hash(spec: RunSpec) -> str:
    return hashlib.sha256(canonical_json(fingerprint(spec)).encode("ascii")).hexdigest()[:HASH_CHARS]


def run_id(label: str, spec: RunSpec) -> str:
    return f"{label}-{spec_hash(spec)}"


def hash_of(run_id_text: str) -> str:
    return run_id_text.rsplit("-", 1)[-1]
