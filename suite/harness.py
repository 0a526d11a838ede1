"""Run a comparison: plan it, run one worker process per backend, collect the results.

Backends run one after another, each in a fresh interpreter with the same thread
settings, so no two frameworks share a process or are timed at once. A backend that
crashes, raises or runs past its time limit is recorded as an error with its reason;
the others go on, and every finished result is kept.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import suite
from suite import comparison, data, envs, ledger, registry, rundir
from suite.batches import count_steps, epoch_orders
from suite.errors import UserError
from suite.initializers import initial_params
from suite.spec import Spec

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass
class Options:
    backends: list[str] | None = None  # None: every installed backend
    device: str = "cpu"
    threads: int | None = None  # None: every core
    timeout_s: float = 600.0  # per backend
    timing: bool = True
    timing_warmup: int = 10
    timing_steps: int = 50
    out: Path | None = None
    root: Path = Path("reports")
    force: bool = False


@dataclass
class Task:
    name: str
    target: str
    role: str  # "reference", "backend" or "variant"
    options: dict[str, Any] = field(default_factory=dict)
    timing: bool = True
    env: envs.EnvSpec | None = None  # None: the main environment


# Progress callback: (backend, event) where event is the worker's JSON progress line, or
# {"phase": "done", "status": ...} when the backend has finished.
ProgressFn = Callable[[str, dict[str, Any]], None]


def plan_tasks(spec: Spec, requested: list[str] | None) -> tuple[list[Task], dict[str, dict]]:
    """The workers to run (reference first, its ledger variants last) and skipped ones."""
    skipped: dict[str, dict] = {}
    if requested is None:
        names = []
        for info in registry.all_backends():
            own = envs.spec_for(info.name) if info.available else None
            if own is not None and not own.path.exists():
                # Not built yet: building takes minutes, so only when asked for by name.
                skipped[info.name] = {"role": "backend", "status": "unavailable",
                                      "reason": f"its environment is not built yet (suite env "
                                                f"create {info.name}, or name it in --backends)"}
            elif info.available:
                names.append(info.name)
            else:
                skipped[info.name] = {"role": "backend", "status": "unavailable",
                                      "reason": info.reason}
    else:
        for name in requested:
            registry.resolve(name)  # an unknown name is the user's mistake: stop here
        names = list(dict.fromkeys(requested))
    names = [n for n in names if n != registry.REFERENCE]
    tasks = [Task(registry.REFERENCE, registry.resolve(registry.REFERENCE), "reference")]
    variants = []
    for backend in names:
        name = registry.name_of(backend)
        tasks.append(Task(name, registry.resolve(backend), "backend",
                          env=envs.spec_for(backend) if not registry.is_target(backend)
                          else None))
        conventions = ledger.conventions_for(spec, name)
        if conventions:
            variants.append(Task(comparison.variant_name(name), tasks[0].target, "variant",
                                 {"conventions": conventions}, timing=False))
    return tasks + variants, skipped


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def worker_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({var: str(threads) for var in THREAD_VARIABLES})
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_worker(task: Task, plan_dir: Path, work_dir: Path, log: Path, env: dict[str, str],
               timeout_s: float, on_event: ProgressFn) -> dict[str, Any]:
    """Run one worker process; always returns a result dict, never raises for its failure."""
    try:
        python, env = interpreter(task.name, task.env, env, on_event)
    except UserError as exc:  # this backend's environment could not be had: its row only
        return {"status": "error", "reason": str(exc)}
    return run_process("suite.worker", task.name, {
        "backend": {"name": task.name, "target": task.target, "options": task.options},
        "timing": {"enabled": task.timing}}, plan_dir, work_dir, log, env, timeout_s, on_event,
        python)


def interpreter(name: str, spec: envs.EnvSpec | None, env: dict[str, str],
                on_event: ProgressFn) -> tuple[str, dict[str, str]]:
    """The Python and the environment variables a backend's worker runs with.

    The main interpreter, or the backend's own environment (built on first use, with
    progress events), whose PYTHONPATH holds a fresh copy of the worker side only.
    """
    if spec is None:
        return sys.executable, env
    if not spec.path.exists():
        on_event(name, {"phase": "env", "message": f"building environment {spec.name}"})
    python = envs.ensure(spec, lambda line: on_event(name, {"phase": "env", "message": line}))
    return str(python), {**env, "PYTHONPATH": str(envs.worker_path(spec))}


def run_process(module: str, name: str, task: dict[str, Any], plan_dir: Path, work_dir: Path,
                log: Path, env: dict[str, str], timeout_s: float,
                on_event: ProgressFn, python: str = sys.executable) -> dict[str, Any]:
    """``python -m MODULE PLAN_DIR WORK_DIR`` with WORK_DIR/task.json; reads its result.json.

    Its stdout carries JSON progress events (relayed to ``on_event``), its stderr goes to
    ``log``. It runs in its own process group, killed whole at ``timeout_s``.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_json(work_dir / "task.json", task)
    command = [python, "-m", module, str(plan_dir), str(work_dir)]
    with open(log, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True,
                                env=env, start_new_session=True)
        reader = threading.Thread(target=relay, args=(proc, name, on_event), daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill(proc)
            return {"status": "error", "reason": f"worker timed out after {timeout_s:g} s"}
        except BaseException:
            kill(proc)
            raise
        finally:
            reader.join(timeout=5)
    result_file = work_dir / "result.json"
    if code != 0 or not result_file.exists():
        return {"status": "error",
                "reason": f"worker exited with code {code}: {last_line(log) or 'no message'}"}
    return rundir.read_json(result_file)


def relay(proc: subprocess.Popen, name: str, on_event: ProgressFn) -> None:
    """Pass each JSON object a worker prints on stdout to ``on_event``, until it closes."""
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a framework printing to stdout: not ours
        if isinstance(event, dict):
            on_event(name, event)


def kill(proc: subprocess.Popen) -> None:
    """Kill a worker's whole process group (it was started with start_new_session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def last_line(log: Path) -> str:
    """The last non-blank line of a worker's log: usually its error."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines()
             if line.strip()]
    return lines[-1] if lines else ""


def write_plan(folder: Path, spec: Spec, prepared: data.Prepared, params: dict,
               options: Options, threads: int) -> None:
    orders = epoch_orders(len(prepared.x), spec.training)
    arrays = {"x": prepared.x, "y": prepared.y, "orders": orders}
    arrays.update({f"params/{k}": v for k, v in params.items()})
    np.savez(folder / "plan.npz", **arrays)
    rundir.write_json(folder / "plan.json", {
        "spec": spec.to_dict(), "device": options.device, "threads": threads,
        "timing": {"enabled": options.timing, "warmup": options.timing_warmup,
                   "steps": options.timing_steps, "distinct_batches": 8}})


def run(spec: Spec, options: Options, on_event: ProgressFn | None = None) -> Path:
    """Run every backend on ``spec`` and write the run directory; returns its path."""
    on_event = on_event or (lambda name, event: None)
    prepared = data.load_for(spec)
    tasks, skipped = plan_tasks(spec, options.backends)
    threads = options.threads or os.cpu_count() or 1
    dtype = np.dtype(spec.training.dtype)
    params = {k: v.astype(dtype) for k, v in initial_params(spec).items()}
    run_dir = rundir.create(spec.name, options.root, options.out, options.force)
    record = {
        "suite_version": suite.__version__, "run": run_dir.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running", "spec": spec.to_dict(), "data": prepared.description,
        "seed": spec.training.seed, "dtype": spec.training.dtype, "device": options.device,
        "threads": threads, "thread_environment": {var: str(threads) for var in THREAD_VARIABLES},
        "steps": count_steps(len(prepared.x), spec.training),
        "environment": environment(),
        "backends": {t.name: {"role": t.role, "status": "pending"} for t in tasks},
        "ledger": [], "tolerances": comparison.TOLERANCES[spec.training.dtype],
    }
    record["backends"].update(skipped)
    rundir.write_json(run_dir / "run.json", record)
    rundir.save_npz(run_dir / "initial_params.npz", params)
    (run_dir / "workers").mkdir()
    scratch = Path(tempfile.mkdtemp(prefix="fnn-suite-"))
    try:
        write_plan(scratch, spec, prepared, params, options, threads)
        env = worker_env(threads)
        for task in tasks:
            on_event(task.name, {"phase": "start", "role": task.role})
            started = time.perf_counter()
            result = run_worker(task, scratch, scratch / task.name,
                                run_dir / "workers" / f"{task.name}.log", env,
                                options.timeout_s, on_event)
            result.setdefault("backend", task.name)
            result["wall_s"] = time.perf_counter() - started
            rundir.adopt_worker_files(run_dir, scratch / task.name, task.name)
            rundir.write_json(run_dir / "workers" / f"{task.name}.json", result)
            record["backends"][task.name] = _backend_record(task, result)
            rundir.write_json(run_dir / "run.json", record)
            on_event(task.name, {"phase": "done", "status": result["status"],
                                 "reason": result.get("reason")})
        record["status"] = "complete"
    except BaseException:
        record["status"] = "interrupted"
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        finish(run_dir, record)
        rundir.point_latest(run_dir)
    return run_dir


def _backend_record(task: Task, result: dict[str, Any]) -> dict[str, Any]:
    timing = result.get("timing") or {}
    return {
        "role": task.role, "status": result["status"], "reason": result.get("reason"),
        "versions": result.get("versions", {}), "options": task.options,
        "runtime": result.get("runtime", {}),
        "lockstep_s": (result.get("lockstep") or {}).get("seconds"),
        "lockstep_train_s": (result.get("lockstep") or {}).get("train_s"),
        "lockstep_export_s": (result.get("lockstep") or {}).get("export_s"),
        "lockstep_steps": len((result.get("lockstep") or {}).get("losses", [])),
        "timing_status": timing.get("status", "off"), "timing_reason": timing.get("reason"),
        "wall_s": result.get("wall_s"),
    }


def finish(run_dir: Path, record: dict[str, Any]) -> None:
    """Tables, ledger and reports from whatever finished; the run.json status last."""
    from suite import report  # plotting and templates load only when needed

    tables = comparison.build_tables(run_dir)
    comparison.write_tables(run_dir, tables)
    record["ledger"] = comparison.applied_entries(tables.summary)
    rundir.write_json(run_dir / "run.json", record)
    report.render(run_dir)


def rerender(run_dir: Path) -> None:
    """``suite report``: rebuild the tables and reports of a finished run."""
    if not (run_dir / "run.json").exists():
        raise UserError(f"{run_dir} is not a run directory (no run.json)",
                        hint="give a folder that `suite compare` wrote, e.g. reports/latest")
    record = rundir.read_json(run_dir / "run.json")
    finish(run_dir, record)

