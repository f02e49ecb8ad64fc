"""report.md for each study kind, built from results rows (and the figures beside it).

Seeds: per evaluation set mean/std/min/max/median and the best and worst seed, Pearson and Spearman between
val and each other set, a histogram per set and a scatter of val against each (RSB figures 5, 6). Scaling:
per epoch regime, accuracy against training time and against latency with the Pareto front, whether depth
or width scaling gains more per doubling of compute, and the regularisation each run got. Ablation: each
step's mean and std, its change against the previous step and the baseline, the paper's values beside, a bar
chart. Transfer: the top-1 matrix with each pretraining's rank per data set (RSB figure 7).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..inference.plot import pareto_front
from . import plots, stats
from .results import RunEntry

REPORT_FILE = "report.md"


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def _table(header: list[str], lines: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in line) + " |" for line in lines]
    return "\n".join(out)


def build_report(study: dict[str, Any], entries: list[RunEntry], rows: list[dict[str, Any]], out: Path, *,
                 write_plots: bool) -> str:
    kind = study["kind"]
    finished = [r for r in rows if r["status"] == "finished"]
    parts = [f"# Study: {kind}", "", _describe(study), "", _status_line(rows), ""]
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        parts += ["## Failed runs (a re-run retries them)", "",
                  _table(["run", "error"], [[r["run_id"], r.get("error") or "—"] for r in failed]), ""]
    builder = {"seeds": _seeds, "scaling": _scaling, "ablation": _ablation, "transfer": _transfer}[kind]
    if finished:
        parts += builder(study, rows, finished, out, write_plots)
    else:
        parts += ["No run has finished yet.", ""]
    return "\n".join(parts).rstrip() + "\n"


def _describe(study: dict[str, Any]) -> str:
    fields = [("recipe", study.get("recipe")), ("model", study.get("model") or "the recipe's"),
              ("data", study.get("data") or ("per run" if study["kind"] == "transfer" else "the recipe's")),
              ("epochs", study.get("epochs") or "the recipe's"), ("batch", study.get("batch_size") or "the recipe's"),
              ("img size", study.get("img_size") or "the recipe's")]
    if study.get("sets"):
        fields.append(("--set", " ".join(study["sets"])))
    if study.get("eval_data"):
        fields.append(("extra evaluations", ", ".join(f"{n} = {d}" for n, d in study["eval_data"])))
    return "; ".join(f"{k}: `{v}`" for k, v in fields) + "."


def _status_line(rows: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"{len(rows)} runs: {shown}."


def _eval_sets(study: dict[str, Any]) -> list[str]:
    return ["val"] + [name for name, _ in study.get("eval_data", [])]


# --- seeds ----------------------------------------------------------------------------------------------------------
def _seeds(study, rows, finished, out, write_plots) -> list[str]:
    sets = _eval_sets(study)
    lines, corr, figures = [], [], []
    val = [r["val_top1"] for r in finished]
    for name in sets:
        values = [r[f"{name}_top1"] for r in finished if r.get(f"{name}_top1") is not None]
        s = stats.summary(values)
        ordered = sorted((r for r in finished if r.get(f"{name}_top1") is not None), key=lambda r: r[f"{name}_top1"])
        best = f"{ordered[-1]['seed']} ({ordered[-1][f'{name}_top1']:.2f})" if ordered else "—"
        worst = f"{ordered[0]['seed']} ({ordered[0][f'{name}_top1']:.2f})" if ordered else "—"
        lines.append([name, s["n"], s["mean"], s["std"], s["min"], s["max"], s["median"], best, worst])
        figures.append(f"![top-1 on {name} over seeds](hist-{name}.png)")
        if write_plots and values:
            plots.histogram(out / f"hist-{name}.png", values, f"{name}: top-1 over {len(values)} seeds", "top-1 (%)")
        if name != "val":
            pairs = [(r["val_top1"], r[f"{name}_top1"]) for r in finished if r.get(f"{name}_top1") is not None]
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
            corr.append([f"val vs {name}", len(pairs), stats.pearson(xs, ys), stats.spearman(xs, ys)])
            figures.append(f"![val against {name}](scatter-val-vs-{name}.png)")
            if write_plots and pairs:
                plots.scatter(out / f"scatter-val-vs-{name}.png", xs, ys,
                              [str(r["seed"]) for r in finished if r.get(f"{name}_top1") is not None],
                              f"top-1: val against {name} (one point per seed)", "val top-1 (%)", f"{name} top-1 (%)")
    parts = ["## Top-1 over seeds (best weights of each run)", "",
             _table(["set", "runs", "mean", "std", "min", "max", "median", "best seed", "worst seed"], lines), ""]
    if corr:
        parts += ["## Correlation between val and the other sets", "",
                  _table(["pair", "runs", "Pearson r", "Spearman ρ"], corr), ""]
    parts += ["## Figures", "", *figures, "", "## Runs", "",
              _table(["seed", *[f"{s} top-1" for s in sets], "val top-5"],
                     [[r["seed"], *[r.get(f"{s}_top1") for s in sets], r["val_top5"]] for r in finished]), ""]
    del val
    return parts


# --- scaling --------------------------------------------------------------------------------------------------------
def _scaling(study, rows, finished, out, write_plots) -> list[str]:
    parts = []
    for epochs in sorted({r["epochs"] for r in finished}):
        regime = [r for r in finished if r["epochs"] == epochs]
        labels = [_point_label(r) for r in regime]
        time_points = [(r["train_wall_s"], r["val_top1"]) for r in regime]
        time_front = pareto_front(time_points, higher_x_is_better=False)
        lat = [(i, r) for i, r in enumerate(regime) if r.get("latency_ms") is not None]
        lat_points = [(r["latency_ms"], r["val_top1"]) for _, r in lat]
        lat_front_local = pareto_front(lat_points, higher_x_is_better=False) if lat_points else []
        lat_front = {lat[i][0] for i in lat_front_local}
        if write_plots:
            plots.pareto(out / f"scaling-e{epochs}-time.png", time_points, labels, time_front,
                         f"{epochs} epochs: top-1 against training time", "training time (s)")
            if lat_points:
                plots.pareto(out / f"scaling-e{epochs}-latency.png", lat_points, [labels[i] for i, _ in lat],
                             lat_front_local, f"{epochs} epochs: top-1 against latency (batch 1)", "latency (ms)")
        lines = []
        for i, r in enumerate(sorted(range(len(regime)), key=lambda k: regime[k]["macs"])):
            del i
            row = regime[r]
            marks = ("T" if r in time_front else "") + ("L" if r in lat_front else "")
            lines.append([_f(row["depth"]), f"{row['width']:g}", row["img_size"], row["params"] / 1e6,
                          row["macs"] / 1e6, row["val_top1"], row["train_wall_s"], row.get("latency_ms"),
                          row.get("throughput_img_s"), row.get("drop_rate"), row.get("drop_path_rate"), marks or "—"])
        parts += [f"## {epochs} epochs", "",
                  _table(["depth", "width", "img", "params (M)", "MMACs", "top-1", "train s", "latency ms (b1)",
                          "img/s", "dropout", "drop path", "front"], lines), "",
                  "front: T = on the Pareto front of top-1 against training time, L = against latency.", "",
                  _depth_vs_width(regime), "",
                  f"![{epochs} epochs: top-1 against training time](scaling-e{epochs}-time.png)",
                  f"![{epochs} epochs: top-1 against latency](scaling-e{epochs}-latency.png)", ""]
    parts += ["## Regularisation by model size", "",
              f"Table `{study.get('regularisation')}` (each run gets the last row its size reaches; "
              "an explicit --set wins):", "",
              _table(["min depth", "min width", "min img", "min epochs", "dropout", "drop path", "source"],
                     [[r["min_depth"], f"{r['min_width']:g}", r["min_img_size"], r["min_epochs"], r["drop_rate"],
                       r["drop_path_rate"], r.get("source") or "—"] for r in study.get("regularisation_table", [])])
              if study.get("regularisation_table") else "No regularisation table (`none`): the recipe's own values.",
              "", "What each run got is in the dropout and drop path columns above (from its resolved spec).", ""]
    return parts


def _point_label(row: dict[str, Any]) -> str:
    return f"d{_f(row['depth'])} w{row['width']:g} r{row['img_size']}"


def _depth_vs_width(regime: list[dict[str, Any]]) -> str:
    """Top-1 gained per doubling of MACs along the depth axis (at the smallest width) and along the width
    axis (at the smallest depth), over every resolution: the larger slope is the scaling that is ahead."""
    depths = sorted({r["depth"] for r in regime if r["depth"] is not None})
    widths = sorted({r["width"] for r in regime})
    if len(depths) < 2 and len(widths) < 2:
        return "Depth against width: neither is varied in this regime."
    results = {}
    for axis, fixed_key, fixed in (("depth", "width", widths[0] if widths else None),
                                   ("width", "depth", depths[0] if depths else None)):
        family = [r for r in regime if r[fixed_key] == fixed]
        if len({r[axis] for r in family}) < 2:
            continue
        results[axis] = stats.slope([math.log2(r["macs"]) for r in family], [r["val_top1"] for r in family])
    if not results or any(v is None for v in results.values()):
        return "Depth against width: not enough runs on both axes to compare."
    described = "; ".join(f"{axis} scaling {value:+.2f} top-1 per doubling of MACs" for axis, value in results.items())
    if len(results) < 2:
        return f"Depth against width: only {next(iter(results))} varies here ({described})."
    ahead = max(results, key=lambda k: results[k])
    if results[ahead] <= 0:
        return f"Depth against width: neither gains here; **{ahead} scaling loses less** ({described})."
    return f"Depth against width: **{ahead} scaling is ahead** in this regime ({described})."


# --- ablation -------------------------------------------------------------------------------------------------------
def _ablation(study, rows, finished, out, write_plots) -> list[str]:
    steps = study["steps"]
    ladder = [{"name": "baseline", "changes": {}, "paper_top1": None}] + steps
    if study.get("ladder"):
        from .published import ladder as shipped

        changes, top1, _ = shipped(study["ladder"])
        ladder[0] = {"name": "baseline", "changes": changes, "paper_top1": top1}
    lines, names, means, stds, paper = [], [], [], [], []
    base_mean = prev_mean = None
    prev_paper = None
    for index, step in enumerate(ladder):
        values = [r["val_top1"] for r in finished if r["step_index"] == index]
        s = stats.summary(values)
        mean = s["mean"]
        p = step.get("paper_top1")
        lines.append([index, step["name"], _changes(step), s["n"], mean, s["std"],
                      _signed(None if mean is None or prev_mean is None else mean - prev_mean),
                      _signed(None if mean is None or base_mean is None else mean - base_mean),
                      _paper(p, step["name"], study.get("ladder")),
                      _signed(None if p is None or prev_paper is None else p - prev_paper)])
        if index == 0:
            base_mean = mean
        if mean is not None:
            prev_mean = mean
            names.append(step["name"])
            means.append(mean)
            stds.append(s["std"])
            paper.append(p)
        prev_paper = p if p is not None else prev_paper
    if write_plots and means:
        plots.bars(out / "ablation.png", names, means, stds, paper if study.get("ladder") else None,
                   "ablation ladder: mean val top-1 per step (± std over seeds)")
    source = ""
    if study.get("ladder"):
        from .published import LADDER_SOURCES

        source = (f"Paper values: {LADDER_SOURCES[study['ladder']]}; ours: this study's data and budget. Values "
                  "marked * are unverified: no stored source holds the paper's table, only its abstract's end "
                  "points.")
    return ["## Ladder (each step adds its changes to the previous one)", "",
            _table(["#", "step", "adds", "runs", "mean top-1", "std", "Δ previous", "Δ baseline", "paper top-1",
                    "paper Δ"], lines), "", source, "", "![ablation ladder](ablation.png)", ""]


def _paper(value: float | None, name: str, ladder_name: str | None) -> str:
    from .published import PAPER_VERIFIED

    if value is None:
        return _f(value, 1)
    verified = ladder_name is None or name in PAPER_VERIFIED.get(ladder_name, set())
    return _f(value, 1) + ("" if verified else "*")


def _changes(step: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in step.get("changes", {}).items()]
    if step.get("epochs_factor"):
        parts.append(f"epochs ×{step['epochs_factor']:.3g}")
    return "`" + ", ".join(parts) + "`" if parts else "(the recipe as given)"


# --- transfer -------------------------------------------------------------------------------------------------------
def _transfer(study, rows, finished, out, write_plots) -> list[str]:
    weights = [w[0] for w in study["weights"]]
    datasets = [d[0] for d in study["datasets"]]
    by_cell = {(r["weights"], r["dataset"]): r["val_top1"] for r in finished}
    values = [[by_cell.get((w, d)) for d in datasets] for w in weights]
    ranks: list[list[float | None]] = [[None] * len(datasets) for _ in weights]
    for j in range(len(datasets)):
        present = [i for i in range(len(weights)) if values[i][j] is not None]
        column = stats.ranks([values[i][j] for i in present], descending=True)
        for k, i in enumerate(present):
            ranks[i][j] = column[k]
    lines = []
    for i, name in enumerate(weights):
        known = [r for r in ranks[i] if r is not None]
        cells = [f"{values[i][j]:.2f} (#{ranks[i][j]:g})" if values[i][j] is not None else "—"
                 for j in range(len(datasets))]
        lines.append([name, *cells, sum(known) / len(known) if known else None])
    if write_plots:
        plots.matrix(out / "transfer.png", weights, datasets, values, ranks,
                     "fine-tuned val top-1 (rank per data set)")
    files = "; ".join(f"{n} = `{f}`" for n, f, *_ in study["weights"])
    return ["## Top-1 after fine-tuning (rank per data set)", "",
            _table(["pretraining", *datasets, "mean rank"], lines), "", f"Checkpoints: {files}.", "",
            "![transfer matrix](transfer.png)", ""]
