"""One backend's benchmark sweep in its own process: ``python -m suite.bench.worker PLAN OUT``.

Reads PLAN/plan.json (spec, sizes, timing settings, threads) and OUT/task.json (the
backend, the indices of the sizes still to run), then times each size in turn and
appends its row to OUT/bench.jsonl as soon as it is done, so that a size that hangs
(the harness kills the process) or a crash never loses the sizes before it. Progress
events go to stdout, one JSON object a line.

Worker side: standard library and NumPy only, so it runs in other environments too.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Backend, Trainer
from suite import registry
from suite.bench.sizes import (
    DISTINCT_BATCHES,
    Size,
    describe,
    flops_per_step,
    sized_spec,
    synthetic_batches,
)
from suite.files import write_json
from suite.initializers import initial_params
from suite.spec import Spec, from_dict
from suite.worker import describe_exception, emit, serve, step_statistics, unsupported_features


def run(plan_dir: Path, out: Path) -> dict[str, Any]:
    plan = json.loads((plan_dir / "plan.json").read_text(encoding="utf-8"))
    task = json.loads((out / "task.json").read_text(encoding="utf-8"))
    info = task["backend"]
    t0 = time.perf_counter()
    backend = registry.import_target(info["target"])(**info.get("options", {}))
    backend.load(plan["threads"])
    result = {"backend": info["name"], "status": "ok", "reason": None,
              "import_s": time.perf_counter() - t0, "versions": backend.versions(),
              "runtime": backend.runtime_settings()}
    write_json(out / "backend.json", result)
    spec = from_dict(plan["spec"], source="plan")
    sizes = [Size(**raw) for raw in plan["sizes"]]
    for index in task["sizes"]:
        emit(phase="size", index=index, status="start")
        row = time_size(backend, sized_spec(spec, sizes[index]), plan)
        row["index"] = index
        with open(out / "bench.jsonl", "a", encoding="utf-8") as rows:
            rows.write(json.dumps(row) + "\n")
            rows.flush()
            os.fsync(rows.fileno())
        emit(phase="size", index=index, status=row["status"])
    return result


def time_size(backend: Backend, spec: Spec, plan: dict[str, Any]) -> dict[str, Any]:
    """One row of bench.csv: build the sized network, time its steps, measure its memory."""
    row: dict[str, Any] = {**describe(spec), "dtype": spec.training.dtype,
                           "gflop_per_step": flops_per_step(spec) / 1e9}
    missing = unsupported_features(backend, spec, plan.get("device", "cpu"))
    if missing:
        return {**row, "status": "unsupported", "reason": "; ".join(missing)}
    gc.collect()
    reset_peak_rss()
    try:
        dtype = np.dtype(spec.training.dtype)
        params = {k: v.astype(dtype) for k, v in initial_params(spec).items()}
        data = synthetic_batches(spec, DISTINCT_BATCHES, spec.training.seed)
        t0 = time.perf_counter()
        trainer = backend.build(spec, params, spec.training.dtype, plan.get("device", "cpu"))
        row["build_s"] = time.perf_counter() - t0
        del params
        times = timed_steps(trainer, data, plan["timing"])
    except MemoryError:
        return {**row, "status": "error", "reason": "out of memory (MemoryError)"}
    except Exception as exc:
        traceback.print_exc()
        return {**row, "status": "error", "reason": describe_exception(exc)}
    steady = np.asarray(times[1:]) * 1e3
    row.update(status="ok", reason=None, first_step_s=times[0],
               **step_statistics(steady, spec.training.batch_size), steps_timed=len(steady),
               peak_rss_mb=peak_rss_mb())
    row["gflops"] = row["gflop_per_step"] / (row["step_ms_median"] / 1e3)
    return row


def timed_steps(trainer: Trainer, data: list, timing: dict[str, Any]) -> list[float]:
    """The first step's time, then the timed steps after ``warmup`` untimed ones.

    Steps run until ``steps`` are timed or ``budget_s`` is spent (at least
    ``min_steps``), so that a size of a second per step does not take a minute. A
    backend that implements only ``time_steps`` gets ``warmup + steps`` in one call.
    """
    try:
        step = trainer.fast_step(data)
    except NotImplementedError:
        times = trainer.time_steps(data, 1 + timing["warmup"] + timing["steps"])
        return [times[0], *times[1 + timing["warmup"]:]]
    first = _clock(step)
    warm_end = time.perf_counter() + timing["budget_s"] / 4
    for _ in range(timing["warmup"]):
        if time.perf_counter() > warm_end:
            break
        step()
    times = [first]
    end = time.perf_counter() + timing["budget_s"]
    while len(times) <= timing["steps"] and (
            len(times) <= timing["min_steps"] or time.perf_counter() < end):
        times.append(_clock(step))
    return times


def _clock(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


# NOTE: Linux lets a process reset its own high-water mark (writing 5 to clear_refs),
# so each size's peak is its own and not the largest size's so far. Elsewhere the
# process-lifetime maximum is all there is: sizes run smallest first, so it is still
# an upper bound of each size's peak.
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> None:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def main(argv: list[str] | None = None) -> int:
    return serve(run, "suite.bench.worker", argv)


if __name__ == "__main__":
    sys.exit(main())
