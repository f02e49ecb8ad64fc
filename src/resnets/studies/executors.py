"""Where a study's runs execute: local child processes, or Ray tasks on a cluster.

Every run gets a process of its own, so a run that crashes (or is killed) cannot take the study down, and its
threads and GPU are set for it alone. Locally the children come from a forkserver that imported torch and
the engine once (fork after the study process used OpenMP would hang; spawning would re-import torch for every
run); on Ray each run is a task with `max_calls=1`, so no state leaks from one run into the next.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

from ..errors import ResnetsError
from .job import LOG_FILE, RunJob, child_main, ray_main

PRELOAD = ["torch", "torchvision", "resnets.train.engine", "resnets.evaluate_folder", "resnets.inference.bench",
           "resnets.studies.job", "torch.utils.tensorboard"]
"""What the forkserver imports once, so a child starts in a fraction of a second."""


@dataclass
class Outcome:
    status: str
    """finished or failed"""
    error: str | None = None
    host: str | None = None


Started = Callable[[RunJob], None]
Done = Callable[[RunJob, Outcome], None]


def log_path(job: RunJob) -> str:
    return str(Path(job.run_dir) / LOG_FILE)


def _log_offset(job: RunJob) -> int:
    path = Path(log_path(job))
    return path.stat().st_size if path.is_file() else 0


def failure_line(job: RunJob, offset: int, exitcode: int | None) -> str:
    """The error a failed child left: its `error:` line, or how it died and the last thing it printed."""
    try:
        with open(log_path(job), "rb") as handle:
            handle.seek(offset)
            lines = [ln.strip() for ln in handle.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    errors = [ln for ln in lines if ln.startswith("error: ")]
    if errors:
        return errors[-1][len("error: "):]
    last = lines[-1] if lines else "no output"
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name} (last output: {last})"[:300]
    return f"exit status {exitcode}: {last}"[:300]


class LocalExecutor:
    """`parallel` runs at a time on this machine, each with `threads` CPU threads and, given GPUs, one each."""

    name = "local"

    def __init__(self, parallel: int = 1, threads: int | None = None, gpus: list[int] | None = None) -> None:
        if parallel < 1:
            raise ResnetsError(f"--parallel must be at least 1, got {parallel}")
        self.gpus = list(gpus or [])
        if self.gpus and parallel > len(self.gpus):
            parallel = len(self.gpus)  # one run per GPU
        self.parallel = parallel
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.threads = threads if threads is not None else max(1, cpus // parallel)
        if self.threads < 1:
            raise ResnetsError(f"--threads must be at least 1, got {self.threads}")

    def describe(self) -> str:
        gpus = f", GPUs {','.join(map(str, self.gpus))} (one run each)" if self.gpus else ""
        return f"local: {self.parallel} run(s) at a time, {self.threads} thread(s) each{gpus}"

    def prepare(self, job: RunJob) -> None:
        job.threads, job.executor = self.threads, self.name

    def run(self, jobs: list[RunJob], on_start: Started, on_done: Done) -> None:
        context = _process_context()
        pending = deque(jobs)
        active: dict[int, tuple[multiprocessing.process.BaseProcess, RunJob, int]] = {}
        free_gpus = list(self.gpus)
        try:
            while pending or active:
                while pending and len(active) < self.parallel:
                    job = pending.popleft()
                    self.prepare(job)
                    job.gpu = free_gpus.pop(0) if free_gpus else None
                    offset = _log_offset(job)
                    on_start(job)
                    process = context.Process(target=child_main, args=(job.to_dict(), log_path(job)),
                                              name=f"resnets-study-{job.run_id}")
                    process.start()
                    active[process.sentinel] = (process, job, offset)
                for sentinel in wait(list(active)):
                    process, job, offset = active.pop(sentinel)
                    process.join()
                    if job.gpu is not None:
                        free_gpus.append(job.gpu)
                    if process.exitcode == 0:
                        on_done(job, Outcome("finished"))
                    else:
                        on_done(job, Outcome("failed", failure_line(job, offset, process.exitcode)))
        finally:
            for process, _, _ in active.values():  # interrupted: stop the runs (their checkpoints are intact)
                process.terminate()
            for process, _, _ in active.values():
                process.join(30)

    def close(self) -> None:
        pass


def _process_context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)  # takes effect when the server starts (once per process)
        return context
    return multiprocessing.get_context("spawn")


class RayExecutor:
    """Each run is a Ray task with `cpus_per_run` CPUs and `gpus_per_run` GPUs. `address`: None starts a local
    cluster (or uses the one this process already joined), `auto` or HOST:PORT joins a running one."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_run: float = 1, gpus_per_run: float = 0) -> None:
        if cpus_per_run <= 0 or gpus_per_run < 0:
            raise ResnetsError(f"--cpus-per-run must be > 0 and --gpus-per-run >= 0, got {cpus_per_run}, "
                               f"{gpus_per_run}")
        try:
            import ray
        except ImportError:
            raise ResnetsError("--executor ray needs Ray: pip install 'resnets[cluster]'") from None
        self.ray = ray
        self.cpus_per_run, self.gpus_per_run = cpus_per_run, gpus_per_run
        self.started = False
        if not ray.is_initialized():
            if address not in (None, "auto"):
                _check_reachable(address)
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = "a running Ray cluster (--ray-address auto)" if address == "auto" else f"Ray at {address}"
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ResnetsError(f"could not join {where}: {message}") from None
            self.started = True
        self.address = address or "local"

    def describe(self) -> str:
        resources = self.ray.cluster_resources()
        return (f"ray ({self.address}): {resources.get('CPU', 0):g} CPU(s), {resources.get('GPU', 0):g} GPU(s) in the "
                f"cluster; {self.cpus_per_run:g} CPU(s) and {self.gpus_per_run:g} GPU(s) per run")

    def run(self, jobs: list[RunJob], on_start: Started, on_done: Done) -> None:
        ray = self.ray
        task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_calls=1)(ray_main)
        pending: dict = {}
        for job in jobs:
            job.threads, job.executor, job.gpu = max(1, int(self.cpus_per_run)), self.name, None
            on_start(job)
            pending[task.remote(job.to_dict(), log_path(job))] = (job, _log_offset(job))
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    job, offset = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                        on_done(job, Outcome(outcome["status"], outcome.get("error"), outcome.get("host")))
                    except Exception as exc:  # noqa: BLE001 - a crashed worker is one failed run
                        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
                        detail = failure_line(job, offset, None) if Path(log_path(job)).is_file() else ""
                        on_done(job, Outcome("failed", f"Ray task failed: {lines[-1] if lines else exc!r}"
                                                       + (f" ({detail})" if detail else "")))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def _check_reachable(address: str) -> None:
    """One line, at once, when nothing answers at HOST:PORT (Ray itself retries for a long time)."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ResnetsError(f"--ray-address {address!r}: expected auto or HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as exc:
        raise ResnetsError(f"no Ray cluster answers at {address} ({exc.strerror or exc})") from None
