"""The studies' figures (PNG, matplotlib's Agg backend: no display needed), each written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..weights.io import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    _pyplot().close(fig)


def histogram(path: Path, values: Sequence[float], title: str, xlabel: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.hist(values, bins=min(20, max(5, len(values) // 2)), color="#4C72B0", edgecolor="white")
    ax.set(title=title, xlabel=xlabel, ylabel="runs")
    _save(fig, path)


def scatter(path: Path, x: Sequence[float], y: Sequence[float], labels: Sequence[str], title: str, xlabel: str,
            ylabel: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(x, y, color="#4C72B0")
    if len(labels) <= 30:
        for xi, yi, label in zip(x, y, labels, strict=True):
            ax.annotate(label, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    _save(fig, path)


def pareto(path: Path, points: Sequence[tuple[float, float]], labels: Sequence[str], front: Sequence[int],
           title: str, xlabel: str) -> None:
    """Top-1 against a cost (lower is better) with the Pareto front drawn through its points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.scatter([p[0] for p in points], [p[1] for p in points], color="#999999", label="run")
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "o-", color="#C44E52",
            label="Pareto front")
    for (x, y), label in zip(points, labels, strict=True):
        ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(title=title, xlabel=xlabel, ylabel="val top-1 (%)")
    ax.legend(fontsize=8)
    _save(fig, path)


def bars(path: Path, names: Sequence[str], means: Sequence[float], stds: Sequence[float | None],
         paper: Sequence[float | None] | None, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(names) + 2), 4))
    positions = range(len(names))
    ax.bar(positions, means, yerr=[s or 0 for s in stds], capsize=3, color="#4C72B0", label="ours")
    if paper and any(p is not None for p in paper):
        ax.plot([i for i, p in zip(positions, paper, strict=True) if p is not None], [p for p in paper if p is not None],
                "D", color="#C44E52", label="paper")
        ax.legend(fontsize=8)
    ax.set_xticks(list(positions), names, rotation=40, ha="right", fontsize=8)
    ax.set(title=title, ylabel="val top-1 (%)")
    low = min([m - (s or 0) for m, s in zip(means, stds, strict=True)] + [p for p in (paper or []) if p is not None])
    ax.set_ylim(bottom=max(0.0, low - 5))
    _save(fig, path)


def matrix(path: Path, rows: Sequence[str], cols: Sequence[str], values: Sequence[Sequence[float | None]],
           ranks: Sequence[Sequence[float | None]], title: str) -> None:
    """Top-1 per pretraining (rows) and data set (columns), each cell with its rank in the column."""
    import numpy as np

    plt = _pyplot()
    data = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 2.5, 0.6 * len(rows) + 1.8))
    ax.imshow(data, cmap="viridis", aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            text = "failed" if values[i][j] is None else f"{values[i][j]:.1f}\n(#{ranks[i][j]:g})"
            ax.text(j, i, text, ha="center", va="center", color="white", fontsize=8)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(title)
    _save(fig, path)
