"""A comparison run: plan it, run one worker process per backend, then the tables and
the report.

Backends run one after another, each in a fresh interpreter with the same thread
settings, so no two frameworks share a process or are timed at once. A backend that
crashes, raises or runs past its time limit is recorded as an error with its reason;
the others go on, and every finished result is kept. A worker whose record did not fit on
the disk is such an error too, and the run, once finished, raises ``DiskFull`` with its
reason.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import suite
from suite import data, machine, rundir
from suite.batches import count_steps
from suite.compare import comparison
from suite.compare.plan import Options, Task, plan_tasks, write_plan
from suite.errors import DiskFull, UserError
from suite.files import read_json, save_npz, write_json
from suite.initializers import initial_params
from suite.processes import (
    THREAD_VARIABLES,
    ProgressFn,
    ignore_progress,
    run_backend_worker,
    worker_env,
)
from suite.rundir import BackendEntry
from suite.session import Session
from suite.spec import Spec

WORKER = "suite.compare.worker"


def run(spec: Spec, options: Options, on_event: ProgressFn = ignore_progress) -> Path:
    """Run every backend on ``spec`` and write the run directory; returns its path."""
    prepared = data.load_for(spec)
    tasks, skipped = plan_tasks(spec, options.backends)
    threads = machine.threads_or_all(options.threads)
    dtype = np.dtype(spec.training.dtype)
    params = {k: v.astype(dtype) for k, v in initial_params(spec).items()}
    run_dir = rundir.create(spec.name, options.root, options.out, options.force)
    entries = {t.name: BackendEntry(t.role).to_dict() for t in tasks}
    entries.update({name: entry.to_dict() for name, entry in skipped.items()})
    record = {
        "suite_version": suite.__version__, "run": run_dir.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running", "spec": spec.to_dict(), "data": prepared.description,
        "seed": spec.training.seed, "dtype": spec.training.dtype, "device": options.device,
        "threads": threads, "thread_environment": {var: str(threads) for var in THREAD_VARIABLES},
        "steps": count_steps(len(prepared.x), spec.training),
        "environment": machine.environment(),
        "backends": entries, "ledger": [],
        "tolerances": comparison.TOLERANCES[spec.training.dtype],
    }
    disk_full: list[str] = []  # the workers' reasons, when a full disk was one
    with Session(run_dir, record, finish_and_point_latest) as session:
        save_npz(run_dir / "initial_params.npz", params)
        (run_dir / "workers").mkdir()
        write_plan(session.scratch, spec, prepared, params, options, threads)
        env = worker_env(threads)
        for task in tasks:
            on_event(task.name, {"phase": "start", "role": task.role})
            started = time.perf_counter()
            result = run_backend_worker(
                WORKER, task.name, task.env,
                {"backend": {"name": task.name, "target": task.target, "options": task.options},
                 "timing": {"enabled": task.timing}},
                session.scratch, session.scratch / task.name,
                rundir.worker_log(run_dir, task.name), env, options.timeout_s, on_event)
            result.setdefault("backend", task.name)
            if result.pop("disk_full", False):
                disk_full.append(result["reason"])
            result["wall_s"] = time.perf_counter() - started
            rundir.adopt_worker_files(run_dir, session.scratch / task.name, task.name)
            write_json(rundir.worker_result(run_dir, task.name), result)
            record["backends"][task.name] = backend_entry(task, result).to_dict()
            session.save()
            on_event(task.name, {"phase": "done", "status": result["status"],
                                 "reason": result.get("reason")})
    if disk_full:  # the run is whole, but a backend's record did not fit: not a pass
        raise DiskFull(disk_full[0])
    return run_dir


def backend_entry(task: Task, result: dict[str, Any]) -> BackendEntry:
    """run.json's entry for a finished worker's ``result``."""
    timing = result.get("timing") or {}
    lockstep = result.get("lockstep") or {}
    return BackendEntry(
        role=task.role, status=result["status"], reason=result.get("reason"),
        versions=result.get("versions", {}), options=task.options,
        runtime=result.get("runtime", {}), lockstep_s=lockstep.get("seconds"),
        lockstep_train_s=lockstep.get("train_s"), lockstep_export_s=lockstep.get("export_s"),
        lockstep_steps=len(lockstep.get("losses", [])),
        timing_status=timing.get("status", "off"), timing_reason=timing.get("reason"),
        wall_s=result.get("wall_s"))


def tabulate(run_dir: Path, record: dict[str, Any]) -> None:
    """The tables and the ledger entries that applied, from whatever finished; run.json
    last."""
    tables = comparison.build_tables(run_dir)
    comparison.write_tables(run_dir, tables)
    record["ledger"] = comparison.applied_entries(tables.summary)
    write_json(run_dir / rundir.RUN_JSON, record)


def finish(run_dir: Path, record: dict[str, Any]) -> None:
    """Tables, ledger and reports from whatever finished."""
    from suite.compare import render  # plotting and templates load only when needed

    tabulate(run_dir, record)
    render.render(run_dir)


def finish_and_point_latest(run_dir: Path, record: dict[str, Any]) -> None:
    finish(run_dir, record)
    rundir.point_latest(run_dir)


def rerender(run_dir: Path) -> None:
    """``suite report``: rebuild the tables and reports of a finished run."""
    if not (run_dir / rundir.RUN_JSON).exists():
        raise UserError(f"{run_dir} is not a run directory (no run.json)",
                        hint="give a folder that `suite compare` wrote, e.g. reports/latest")
    record = read_json(run_dir / rundir.RUN_JSON)
    finish(run_dir, record)
