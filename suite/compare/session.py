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

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import suite
from suite import data, ledger, machine, registry, rundir
from suite import record as record_files
from suite.batches import count_steps
from suite.compare import attribution, comparison, determinism, noise, repro
from suite.compare.plan import (
    Options,
    Task,
    plan_record,
    plan_tasks,
    twin_runs,
    wide_runs,
    write_plan,
)
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
from suite.record_policy import Policy
from suite.rundir import BackendEntry, SummaryRow
from suite.session import Session
from suite.spec import Spec, from_dict

WORKER = "suite.compare.worker"
SCRATCH_PREFIX = "fnn-suite-"


def run(spec: Spec, options: Options, on_event: ProgressFn = ignore_progress) -> Path:
    """Run every backend on ``spec`` and write the run directory; returns its path."""
    prepared = data.load_for(spec)
    tasks, skipped = plan_tasks(spec, options.backends)
    threads = machine.threads_or_all(options.threads)
    dtype = np.dtype(spec.training.dtype)
    params = {k: v.astype(dtype) for k, v in initial_params(spec).items()}
    steps = count_steps(len(prepared.x), spec.training)
    record_plan = plan_record(spec, options.recording_runs(tasks) + twin_runs(tasks, spec),
                              steps, options, wide_runs(tasks, spec))
    on_event("", {"phase": "record", "message": record_plan.describe()})
    run_dir = rundir.create(spec.name, options.root, options.out, options.force)
    entries = {t.name: BackendEntry(t.role, target=t.target).to_dict() for t in tasks}
    entries.update({name: entry.to_dict() for name, entry in skipped.items()})
    record = {
        "suite_version": suite.__version__, "run": run_dir.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running", "spec": spec.to_dict(), "data": prepared.description,
        "seed": spec.training.seed, "dtype": spec.training.dtype, "device": options.device,
        "threads": threads, "thread_environment": {var: str(threads) for var in THREAD_VARIABLES},
        "steps": steps, "record": record_plan.to_dict(),
        "timing": {"enabled": options.timing, "warmup": options.timing_warmup,
                   "steps": options.timing_steps},
        "repeat": options.repeat, "attribution": options.attribution,
        "timeout_s": options.timeout_s,
        "environment": machine.environment(),
        "backends": entries, "ledger": [],
        "tolerances": noise.settings(spec.training.dtype),
    }
    _run_workers(run_dir, record, spec, prepared, params, tasks, tasks, options,
                 record_plan.policy, on_event)
    return run_dir


def resume(run_dir: Path, on_event: ProgressFn = ignore_progress) -> Path:
    """``suite compare --resume``: run the backends of ``run_dir`` that did not finish
    (after a crash, Ctrl-C, SIGTERM or a power loss), with the run's own spec, data,
    initial parameters and options, then the tables and the report of every backend."""
    record = _readable_run(run_dir)
    spec = from_dict(record["spec"], source=str(run_dir / rundir.RUN_JSON))
    prepared = data.load_for(spec)
    if prepared.description.get("sha256") != record["data"].get("sha256"):
        raise UserError(f"the data of {run_dir} changed since the run started (its hash was "
                        f"{record['data'].get('sha256')}, it is now "
                        f"{prepared.description.get('sha256')})",
                        hint="restore the data file, or start a new run")
    with np.load(run_dir / "initial_params.npz") as stored:
        params = {key: stored[key] for key in stored.files}
    entries = {name: BackendEntry.from_dict(raw) for name, raw in record["backends"].items()}
    builtins = registry.builtin_names()
    requested = [name if name in builtins or not e.target else e.target
                 for name, e in entries.items() if e.role not in rundir.REFERENCE_RUNS
                 and e.status != "unavailable"]
    timing = record.get("timing", {})
    options = Options(backends=requested, device=record.get("device", "cpu"),
                      threads=record["threads"], timeout_s=record.get("timeout_s", 600.0),
                      timing=timing.get("enabled", True),
                      timing_warmup=timing.get("warmup", 10),
                      timing_steps=timing.get("steps", 50), repeat=record.get("repeat", 1),
                      attribution=record.get("attribution", "auto"))
    tasks, _ = plan_tasks(spec, requested)
    todo = [t for t in tasks if entries.get(t.name, BackendEntry(t.role)).status == "pending"]
    for task in todo:
        record["backends"][task.name] = BackendEntry(task.role, target=task.target).to_dict()
    on_event("", {"phase": "record", "message": f"resuming {run_dir}: "
                  f"{len(todo)} of {len(tasks)} workers left to run"})
    policy = Policy.from_dict((record.get("record") or {}).get("policy"))
    for leftover in run_dir.glob(f".{SCRATCH_PREFIX}*"):  # a killed run's scratch
        shutil.rmtree(leftover, ignore_errors=True)
    _run_workers(run_dir, record, spec, prepared, params, tasks, todo, options, policy,
                 on_event)
    return run_dir


def _readable_run(run_dir: Path) -> dict[str, Any]:
    if not (run_dir / rundir.RUN_JSON).exists():
        raise UserError(f"{run_dir} is not a run directory (no run.json)",
                        hint="give a folder that `suite compare` wrote, e.g. reports/latest")
    try:
        return read_json(run_dir / rundir.RUN_JSON)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the run's record ({exc})",
                        where=str(run_dir / rundir.RUN_JSON)) from None


def _run_workers(run_dir: Path, record: dict[str, Any], spec: Spec, prepared: data.Prepared,
                 params: dict, planned: list[Task], tasks: list[Task], options: Options,
                 policy: Policy, on_event: ProgressFn) -> None:
    """One worker process per task, one after another, run.json after each; then the parts
    runs that attribution asks for (of ``planned``'s backends)."""
    disk_full: list[str] = []  # the workers' reasons, when a full disk was one
    with Session(run_dir, record, finish_and_point_latest, prefix=SCRATCH_PREFIX) as session:
        if not (run_dir / "initial_params.npz").exists():  # a new run, not a resumed one
            save_npz(run_dir / "initial_params.npz", params)
        (run_dir / "workers").mkdir(exist_ok=True)
        threads = record["threads"]
        write_plan(session.scratch, spec, prepared, params, options, threads, policy)
        reference = planned[0].target
        for task in tasks:
            _run_task(session, task, options, reference, disk_full, on_event)
        # the verdicts so far decide the runs still to make: twins and parts, then (with
        # what those found) the reproducers
        rows = comparison.summary_rows(run_dir)
        followups = followup_tasks(rows, record, spec, planned, options) if rows else []
        for task in followups:
            _run_followup(session, task, options, reference, disk_full, on_event)
        rows = comparison.summary_rows(run_dir) if followups else rows
        for task in repro.tasks(run_dir, rows, record, spec, planned) if rows else []:
            _run_followup(session, task, options, reference, disk_full, on_event)
            repro.finish(run_dir, record, task, planned, options.timeout_s)
    if disk_full:  # the run is whole, but a backend's record did not fit: not a pass
        raise DiskFull(disk_full[0])


def _run_followup(session: Session, task: Task, options: Options, reference: str,
                  disk_full: list[str], on_event: ProgressFn) -> None:
    """A run decided once the lockstep runs were judged: in run.json before it starts."""
    session.record["backends"][task.name] = BackendEntry(task.role,
                                                         target=task.target).to_dict()
    session.save()
    _run_task(session, task, options, reference, disk_full, on_event)


def _run_task(session: Session, task: Task, options: Options, reference: str,
              disk_full: list[str], on_event: ProgressFn) -> None:
    """One worker: its result, files and run.json entry kept, whatever became of it."""
    run_dir, record = session.folder, session.record
    on_event(task.name, {"phase": "start", "role": task.role})
    started = time.perf_counter()
    order = {"backend": {"name": task.name, "target": task.target, "options": task.options},
             "timing": {"enabled": task.timing}, "repeat": options.repeats(task)}
    if task.role == "parts":
        order.update(mode="parts", reference=reference, variant=task.variant)
    if task.role == "repro":
        order.update(mode="repro", repro=task.repro)
    result = run_backend_worker(
        WORKER, task.name, task.env, order, session.scratch, session.scratch / task.name,
        rundir.worker_log(run_dir, task.name),
        {**worker_env(record["threads"]), **task.environment}, options.timeout_s, on_event)
    result.setdefault("backend", task.name)
    if result.get("reason"):  # name the record's place in the run, not the scratch's
        result["reason"] = result["reason"].replace(
            str(session.scratch / task.name / rundir.RECORD),
            str(rundir.record_dir(run_dir, task.name)))
    if result.pop("disk_full", False):
        disk_full.append(result["reason"])
    result["wall_s"] = time.perf_counter() - started
    rundir.adopt_worker_files(run_dir, session.scratch / task.name, task.name)
    write_json(rundir.worker_result(run_dir, task.name), result)
    record["backends"][task.name] = backend_entry(task, result).to_dict()
    session.save()
    on_event(task.name, {"phase": "done", "status": result["status"],
                         "reason": result.get("reason")})


def followup_tasks(rows: list[SummaryRow], record: dict[str, Any], spec: Spec,
                   planned: list[Task], options: Options) -> list[Task]:
    """The runs still to make once the lockstep runs are judged: for each backend outside
    the noise (suite.compare.attribution.wanted), its twin where a ledger entry has one
    (suite.ledger.twins) and its parts run where --attribution asks for one."""
    by_name = {task.name: task for task in planned if task.role == "backend"}
    todo = []
    for name in attribution.wanted("auto", rows, ("fail",)):  # a twin explains fails only
        twin_env = ledger.twin_env_for(spec, name)
        if name in by_name and twin_env:
            todo.append(by_name[name].twin(twin_env))
    for name in attribution.wanted(options.attribution, rows):
        conventions = ledger.conventions_for(spec, name)
        if name in by_name:
            todo.append(by_name[name].parts(noise.variant_options(spec.training.dtype,
                                                                  conventions)
                                            if conventions else None))
    return [task for task in todo
            if record["backends"].get(task.name, {}).get("status", "pending") == "pending"]


def backend_entry(task: Task, result: dict[str, Any]) -> BackendEntry:
    """run.json's entry for a finished worker's ``result``."""
    timing = result.get("timing") or {}
    lockstep = result.get("lockstep") or {}
    return BackendEntry(
        role=task.role, status=result["status"], reason=result.get("reason"),
        target=task.target,
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
    record["determinism"] = repeated_runs(run_dir, record)
    record["tolerances"] = {**record.get("tolerances", {}), "description": tables.noise}
    write_json(run_dir / rundir.RUN_JSON, record)


def repeated_runs(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """run.json's ``determinism``: each backend that made repeats, against its first run."""
    found = {}
    for name in record["backends"]:
        path = rundir.worker_result(run_dir, name)
        if not path.exists():
            continue
        try:
            entry = determinism.compare_repeats(run_dir, name, read_json(path))
        except (OSError, ValueError, record_files.DamagedRecord) as exc:
            entry = {"runs": None, "bit_identical": None, "reason": str(exc)}
        if entry is not None:
            found[name] = entry
    return found


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
    finish(run_dir, _readable_run(run_dir))
