"""Run contenders that each need their own process, one step at a time, alternating between them.

Used where the process set-up is part of what is compared (the host-memory policy is process-wide and
cannot be undone). Each contender is built in a fresh spawned process and warmed up there, one after the
other so warm-up and compilation run on a quiet machine; then the parent asks each in turn for one timed
step, so a noisy machine penalises all of them alike.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from resnets.host_memory import retain_freed_memory

Step = Callable[[], object]


@dataclass(frozen=True)
class ProcessContender:
    label: str
    build: Callable[..., Step]
    """A module-level function (it is pickled by name), called in the child: returns the step to time."""
    args: tuple[Any, ...]
    retain_memory: bool


@dataclass(frozen=True)
class StepStats:
    seconds: float
    kernel_seconds: float
    page_faults: int


def _serve(conn, contender: ProcessContender, threads: int, warmup: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if contender.retain_memory:
        retain_freed_memory()  # before anything is built, as `resnets train` and the CLI do
    step = contender.build(*contender.args)
    for _ in range(warmup):
        step()
    conn.send("ready")
    while conn.recv() == "step":
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        step()
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        conn.send((wall, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt))
    conn.close()


def measure_in_processes(contenders: list[ProcessContender], *, reps: int, warmup: int,
                         threads: int) -> dict[str, StepStats]:
    """Median wall time, kernel time and page faults of one step, per contender label."""
    context = multiprocessing.get_context("spawn")
    workers = []
    try:
        for contender in contenders:
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, contender, threads, warmup), daemon=True)
            process.start()
            child.close()  # so a crashed child reads as EOFError here, not a hang
            if parent.recv() != "ready":
                raise RuntimeError(f"{contender.label} did not start")
            workers.append((contender, parent, process))
        samples: dict[str, list[tuple[float, float, int]]] = {c.label: [] for c in contenders}
        for _ in range(reps):
            for contender, conn, _process in workers:
                conn.send("step")
                samples[contender.label].append(conn.recv())
    finally:
        for _contender, conn, process in workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send("stop")
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return {label: StepStats(statistics.median(s[0] for s in rows), statistics.median(s[1] for s in rows),
                             int(statistics.median(s[2] for s in rows)))
            for label, rows in samples.items()}
