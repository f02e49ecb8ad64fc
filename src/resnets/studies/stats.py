"""The few statistics the reports need. Written here because scipy is not a dependency: Spearman is
Pearson on average ranks (ties share the mean of their positions), which is all scipy.stats.spearmanr does."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def summary(values: Sequence[float]) -> dict[str, float | None]:
    """n, mean, sample std (ddof 1; None for one value), min, max, median."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "median": None}
    return {"n": int(a.size), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else None,
            "min": float(a.min()), "max": float(a.max()), "median": float(np.median(a))}


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """None when undefined (fewer than 3 pairs, or a constant series)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return None
    value = float(np.corrcoef(a, b)[0, 1])
    return None if math.isnan(value) else value


def ranks(values: Sequence[float], *, descending: bool = False) -> list[float]:
    """1-based ranks; ties get the average of the positions they span."""
    order = sorted(range(len(values)), key=lambda i: -values[i] if descending else values[i])
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return result


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    return pearson(ranks(list(x)), ranks(list(y)))


def slope(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Least-squares slope of y on x (None for fewer than 2 distinct x)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 2 or np.unique(a).size < 2:
        return None
    return float(np.polyfit(a, b, 1)[0])
