"""Running a study: the directory's bookkeeping, resume, and the outputs after every finished run.

Running the same command on an existing directory resumes it: finished runs are reused, interrupted runs
resume from their checkpoints (the engine's own `--resume`), failed and missing runs start. A different spec
is refused in one line. results.csv, report.md and the plots are rewritten after every run, so a study
stopped at any point shows what it has.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ResnetsError
from ..train.spec import read_run_record
from ..weights.io import atomic_write
from .job import RESULT_FILE, RunJob
from .report import REPORT_FILE, build_report
from .results import RESULTS_FILE, RUNS_DIR, RunEntry, collect_rows, columns, run_status, write_results
from .runid import hash_of, spec_hash
from .spec import STUDY_FORMAT, PlannedRun, ScalingStudy, Study, load_study

SPEC_FILE = "study.json"


def _entry(run: PlannedRun) -> RunEntry:
    spec = run.spec
    facts = {"model": spec.model_name, "img_size": spec.recipe.img_size, "eval_img_size": spec.eval_img_size,
             "epochs": spec.recipe.epochs, "drop_rate": spec.model_overrides.get("drop_rate"),
             "drop_path_rate": spec.model_overrides.get("drop_path_rate")}
    return RunEntry(run.run_id, run.label, run.settings, facts)


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


def _identity(spec: dict) -> dict:
    """What makes two studies the same: everything but the published numbers they are compared with, so a
    corrected paper value updates an existing study instead of orphaning its finished runs."""
    steps = [{k: v for k, v in step.items() if k != "paper_top1"} for step in spec.get("steps", [])]
    return {**spec, "steps": steps} if "steps" in spec else spec


def prepare_directory(study: Study, out: Path, runs: list[PlannedRun]) -> list[RunEntry]:
    """Create DIR/study.json, or check that the existing one records this same study and these same runs."""
    entries = [_entry(r) for r in runs]
    spec = study.to_dict()
    path = out / SPEC_FILE
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ResnetsError(f"{path} is unreadable ({exc}); the runs beside it are untouched") from None
        if not isinstance(recorded, dict) or recorded.get("format") != STUDY_FORMAT:
            raise ResnetsError(f"{path} is not a resnets study spec")
        old = {k: v for k, v in recorded.items() if k != "runs"}
        if _identity(old) != _identity(spec):
            keys = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
            raise ResnetsError(f"{out} holds a different {old.get('kind')} study ({', '.join(keys)} differ); "
                               "repeat its own command to resume it, or choose another --out")
        recorded_ids = [r["id"] for r in recorded.get("runs", [])]
        if recorded_ids != [e.run_id for e in entries]:
            changed = next((e for e, rid in zip(entries, recorded_ids, strict=False) if e.run_id != rid), entries[0])
            raise ResnetsError(f"{out}: run {changed.label} now resolves to another configuration than when the study "
                               "started (recipe file or resnets changed?); use another --out")
        if old != spec:  # only the published reference values moved (a corrected table): keep the new ones
            _write_json(path, {**spec, "runs": recorded["runs"]})
        return entries
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ResnetsError(f"{out} exists and is not a study directory (no {SPEC_FILE}); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    _write_json(path, {**spec, "runs": [e.to_dict() for e in entries]})
    return entries


def _check_identity(run_dir: Path, run_id: str) -> None:
    """A run directory must hold the configuration its id names (its own run.json hashes to it)."""
    if not (run_dir / "run.json").is_file():
        return
    recorded = read_run_record(run_dir).spec
    if spec_hash(recorded) != hash_of(run_id):
        raise ResnetsError(f"{run_dir} holds a run whose configuration does not match its id; move it away")


def _bench_settings(study: Study) -> dict[str, Any] | None:
    if not isinstance(study, ScalingStudy):
        return None
    return {"modes": ["fused"], "batch_sizes": [1, study.bench_batch], "warmup": 2, "reps": 5}


class StudyOutputs:
    """Writes results.csv, report.md and the plots from what the run directories hold."""

    def __init__(self, study: Study, out: Path, entries: list[RunEntry]) -> None:
        self.study, self.out, self.entries = study, out, entries
        self.eval_names = [name for name, _ in study.eval_data]
        self.bench = isinstance(study, ScalingStudy)

    def rows(self) -> list[dict[str, Any]]:
        return collect_rows(self.out, self.entries, self.eval_names, bench=self.bench, regularisation=self.bench)

    def write(self, *, plots: bool = True) -> list[dict[str, Any]]:
        rows = self.rows()
        write_results(self.out / RESULTS_FILE, rows, columns(self.study.columns(), self.eval_names, bench=self.bench,
                                                            regularisation=self.bench))
        report = build_report(self.study.to_dict(), self.entries, rows, self.out, write_plots=plots)
        atomic_write(self.out / REPORT_FILE, lambda tmp: Path(tmp).write_text(report))
        return rows


def run_study(study: Study, out: str | Path, executor, *, runtime: dict[str, Any] | None = None,
              say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or resume) `study` in `out` with `executor`; returns counts and per-run timings."""
    say = say or (lambda text: print(text, flush=True))
    shown = Path(out)  # messages name the directory as it was given
    out = Path(out).absolute()
    runs = study.plan()
    entries = prepare_directory(study, out, runs)
    outputs = StudyOutputs(study, out, entries)
    states = {}
    for run in runs:
        run_dir = out / RUNS_DIR / run.run_id
        _check_identity(run_dir, run.run_id)
        states[run.run_id] = run_status(run_dir)[0]
    counts = {s: sum(1 for v in states.values() if v == s) for s in ("finished", "trained", "interrupted", "failed",
                                                                     "missing")}
    say(f"study {study.kind} in {shown}: {len(runs)} runs: {counts['finished']} finished (reused), "
        f"{counts['interrupted'] + counts['trained']} resume, {counts['failed']} failed before (retried), "
        f"{counts['missing']} to start")
    say(executor.describe())
    runtime = dict(runtime or {})
    cwd = os.getcwd()
    bench = _bench_settings(study)
    jobs = []
    for run in runs:
        if states[run.run_id] == "finished":
            continue
        run_dir = out / RUNS_DIR / run.run_id
        options = {**run.options.to_dict(), **runtime, "out": str(run_dir)}
        jobs.append(RunJob(run_id=run.run_id, run_dir=str(run_dir), options=options,
                           evals=[list(pair) for pair in study.eval_data], bench=bench, cwd=cwd))
    outputs.write()
    timings: dict[str, dict[str, float]] = {}
    position = {run.run_id: i + 1 for i, run in enumerate(runs)}
    total = len(runs)

    def on_start(job: RunJob) -> None:
        timings[job.run_id] = {"start": time.perf_counter()}
        verb = {"interrupted": "resuming", "trained": "measuring", "failed": "retrying"}.get(states[job.run_id],
                                                                                             "starting")
        say(f"[{position[job.run_id]}/{total}] {job.run_id}: {verb}")

    def on_done(job: RunJob, outcome) -> None:
        run_dir = Path(job.run_dir)
        if outcome.status != "finished":
            _write_json(run_dir / RESULT_FILE, {"status": "failed", "run_id": job.run_id, "error": outcome.error,
                                                "executor": job.executor, "host": outcome.host})
        outputs.write()
        elapsed = time.perf_counter() - timings[job.run_id]["start"]
        timings[job.run_id]["elapsed_s"] = elapsed
        status, result = run_status(run_dir)
        if status == "finished" and result:
            timings[job.run_id]["job_s"] = result.get("job_s", 0.0)
            say(f"[{position[job.run_id]}/{total}] {job.run_id}: done, val top-1 {result['val']['top1']:.2f} "
                f"({elapsed:.1f} s)")
        else:
            say(f"[{position[job.run_id]}/{total}] {job.run_id}: FAILED: {outcome.error}")

    try:
        if jobs:
            executor.run(jobs, on_start, on_done)
    finally:
        executor.close()
    rows = outputs.write()
    failed = [r for r in rows if r["status"] != "finished"]
    say(f"{len(rows) - len(failed)}/{len(rows)} runs finished; results {shown / RESULTS_FILE}, report "
        f"{shown / REPORT_FILE}")
    if failed:
        say(f"{len(failed)} run(s) did not finish: `resnets study show {shown}` lists them; run the same command "
            "again to retry")
    return {"runs": len(rows), "finished": len(rows) - len(failed), "failed": len(failed),
            "timings": {k: {kk: vv for kk, vv in v.items() if kk != "start"} for k, v in timings.items()}}


def read_study(out: str | Path) -> tuple[Study, list[RunEntry], Path]:
    out = Path(out)
    path = out / SPEC_FILE
    if not path.is_file():
        raise ResnetsError(f"{out} is not a study directory (no {SPEC_FILE})")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResnetsError(f"{path} is unreadable ({exc})") from None
    study = load_study(data, origin=str(path))
    return study, [RunEntry.from_dict(r) for r in data.get("runs", [])], out


def show_study(out: str | Path, *, as_json: bool = False, stream=None) -> int:
    """Print the report (or the rows as JSON) of a finished or partial study; writes nothing."""
    study, entries, out = read_study(out)
    outputs = StudyOutputs(study, out, entries)
    rows = outputs.rows()
    stream = stream or sys.stdout
    if as_json:
        stream.write(json.dumps({"study": study.to_dict(), "rows": rows}, indent=2) + "\n")
    else:
        stream.write(build_report(study.to_dict(), entries, rows, out, write_plots=False))
    return 0
