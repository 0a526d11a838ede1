"""Run a benchmark sweep: the peak, then each backend's sizes in a fresh worker, one
backend at a time, then bench.csv, run.json and the report.

A size that runs past its time limit is killed with its worker and marked timeout; a
fresh worker goes on with the sizes after it. A crash marks the size it happened in as
error. Finished rows are kept in the worker's bench.jsonl as they come, and bench.csv
and run.json are rewritten after every backend, so an interrupted sweep keeps them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import suite
from suite import machine, processes, registry, rundir
from suite.bench import memory, results, standalone
from suite.bench.sizes import Size, describe, flops_per_step, sized_spec
from suite.errors import UserError
from suite.files import read_json, write_json
from suite.processes import ProgressFn, ignore_progress
from suite.registry import Selected
from suite.session import Session
from suite.spec import Spec
from suite.validation import (
    Constraint,
    non_negative_int,
    positive_int,
    positive_seconds,
    validate_fields,
)

WORKER = "suite.bench.worker"


@dataclass
class BenchOptions:
    """How ``suite bench`` runs; checked on creation (the CLI and the API alike)."""

    backends: list[str] | None = None  # None: every installed backend
    threads: int | None = None  # None: every core
    warmup: int = 5
    steps: int = 30
    min_steps: int = 5
    budget_s: float = 3.0  # timed seconds a size may use before `steps` are reached
    size_timeout_s: float = 300.0
    standalone: bool = False
    out: Path | None = None
    root: Path = Path("reports")
    force: bool = False
    memory_limit: int | None = None  # bytes; None: what the machine has available

    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "threads": positive_int("--threads", optional=True),
        "warmup": non_negative_int("--warmup"),
        "steps": positive_int("--steps"),
        "min_steps": positive_int(),
        "budget_s": positive_seconds("--budget"),
        "size_timeout_s": positive_seconds("--size-timeout"),
    }

    def __post_init__(self) -> None:
        validate_fields(self)


def run(spec: Spec, sizes: list[Size], options: BenchOptions,
        on_event: ProgressFn = ignore_progress) -> Path:
    """Sweep ``sizes`` with every backend; returns the output folder."""
    estimate = memory.check(spec, sizes, options.memory_limit)
    if options.standalone:
        standalone.check_spec(spec)
    chosen, skipped = registry.select(options.backends)
    threads = machine.threads_or_all(options.threads)
    out = rundir.create(f"bench-{spec.name}", options.root, options.out, options.force)
    env = processes.worker_env(threads)
    record = {
        "kind": results.KIND, "suite_version": suite.__version__, "run": out.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "status": "running",
        "spec": spec.to_dict(), "dtype": spec.training.dtype,
        "sizes": [size.to_dict() for size in sizes], "memory": estimate,
        "environment": machine.environment(),
        "threads": {"count": threads,
                    "environment": {k: env[k] for k in processes.THREAD_VARIABLES}},
        "timing": {"warmup": options.warmup, "steps": options.steps,
                   "min_steps": options.min_steps, "budget_s": options.budget_s,
                   "size_timeout_s": options.size_timeout_s},
        "backends": {b.name: {"status": "pending"} for b in chosen}, "peak": None,
    }
    record["backends"].update({name: {"status": "unavailable", "reason": reason}
                               for name, reason in skipped.items()})
    rows: list[dict[str, Any]] = []
    with Session(out, record, finish, prefix="fnn-suite-bench-") as session:
        on_event("peak", {"phase": "start", "role": "peak"})
        record["peak"] = measure_peak(env, chosen)
        on_event("peak", {"phase": "done", "status": "ok", "reason": None})
        _write_plan(session.scratch, spec, sizes, options, threads)
        (out / "workers").mkdir(exist_ok=True)
        for backend in chosen:
            on_event(backend.name, {"phase": "start", "role": "backend", "total": len(sizes)})
            try:
                python, task_env = processes.interpreter(backend.name, backend.env, env,
                                                         on_event, backend.target)
            except UserError as exc:  # its environment could not be built
                info = {"status": "error", "reason": str(exc)}
                found = error_rows(backend.name, spec, sizes, info["reason"])
            else:
                found, info = sweep(backend, python, task_env, spec, session.scratch,
                                    out / "workers", sizes, options, on_event)
                if options.standalone:
                    compare_standalone(backend, found, python, task_env, spec, sizes,
                                       threads, options, on_event)
            rows.extend(found)
            record["backends"][backend.name] = info
            results.write_rows(out, rows, record["peak"]["gflops"], threads)
            session.save()
            on_event(backend.name, {"phase": "done", "status": info["status"],
                                    "reason": info.get("reason")})
    return out


def finish(out: Path, record: dict[str, Any]) -> None:
    """run.json as it stands, then the report (plotting loads only here)."""
    from suite.bench import report

    write_json(out / rundir.RUN_JSON, record)
    report.render(out)


def _write_plan(folder: Path, spec: Spec, sizes: list[Size], options: BenchOptions,
                threads: int) -> None:
    write_json(folder / "plan.json", {
        "spec": spec.to_dict(), "sizes": [size.to_dict() for size in sizes],
        "threads": threads, "device": "cpu",
        "timing": {"warmup": options.warmup, "steps": options.steps,
                   "min_steps": options.min_steps, "budget_s": options.budget_s}})


def measure_peak(env: dict[str, str], chosen: list[Selected]) -> dict[str, Any]:
    """The float32 matmul peak: NumPy's BLAS, and torch's too when torch is benchmarked."""
    libraries = ["numpy"] + (["torch"] if any(b.name == "torch" for b in chosen) else [])
    found = {}
    for library in libraries:
        done = subprocess.run([sys.executable, "-m", "suite.bench.peak", library],
                              capture_output=True, text=True, env=env, timeout=600)
        if done.returncode == 0:
            found[library] = json.loads(done.stdout.strip().splitlines()[-1])
    if not found:
        raise UserError("could not measure the matrix-multiply peak (python -m "
                        "suite.bench.peak failed)")
    best = max(found.values(), key=lambda r: r["gflops"])
    return {"gflops": best["gflops"], "library": best["library"], "by_library": found,
            "method": "best float32 n x n matmul, n in 1024, 2048, 4096, 2 n^3 flops"}


# ---------------------------------------------------------------------------- one backend


def sweep(backend: Selected, python: str, env: dict[str, str], spec: Spec, plan_dir: Path,
          logs: Path, sizes: list[Size], options: BenchOptions, on_event: ProgressFn
          ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every size of one backend, run by ``python`` with ``env``: its rows (one per size)
    and its run.json entry."""
    work = plan_dir / backend.name
    work.mkdir(parents=True, exist_ok=True)
    done: dict[int, dict[str, Any]] = {}
    info: dict[str, Any] = {"status": "ok", "reason": None, "workers": 0}
    pending = list(range(len(sizes)))
    while pending:
        info["workers"] += 1
        write_json(work / "task.json", {
            "backend": {"name": backend.name, "target": backend.target, "options": {}},
            "sizes": pending})
        log = logs / f"{backend.name}-{info['workers']}.log"
        stopped = _run_sizes(python, work, log, env, options.size_timeout_s,
                             lambda e: on_event(backend.name, e))
        done.update(_read_rows(work / "bench.jsonl"))
        pending = [i for i in pending if i not in done]
        if stopped.index is not None and stopped.index in pending:  # killed or crashed in it
            done[stopped.index] = {"status": stopped.status, "reason": stopped.reason}
            pending.remove(stopped.index)
            on_event(backend.name, {"phase": "size", "index": stopped.index,
                                    "status": stopped.status})
        elif pending:  # it failed before its first size: load() or an import
            result = _read_json(work / "result.json")
            reason = result.get("reason") or stopped.reason
            info.update(status="error", reason=reason)
            for i in pending:
                done[i] = {"status": "error", "reason": reason}
            pending = []
    loaded = _read_json(work / "backend.json")
    info.update({k: loaded[k] for k in ("versions", "runtime", "import_s") if k in loaded})
    rows = [{**row, **done.get(i, {})}
            for i, row in enumerate(error_rows(backend.name, spec, sizes, info["reason"]))]
    if rows and all(row["status"] != "ok" for row in rows) and info["status"] == "ok":
        info.update(status=rows[0]["status"], reason=rows[0].get("reason"))
    return rows, info


def error_rows(name: str, spec: Spec, sizes: list[Size], reason: str | None
               ) -> list[dict[str, Any]]:
    """One row per size that names it and says error: what a size without a result gets."""
    rows = []
    for i, size in enumerate(sizes):
        sized = sized_spec(spec, size)
        rows.append({"backend": name, **describe(sized), "dtype": sized.training.dtype,
                     "gflop_per_step": flops_per_step(sized) / 1e9, "status": "error",
                     "reason": reason, "size_index": i})
    return rows


@dataclass
class _Stopped:
    index: int | None = None  # the size it was in when it stopped, if any
    status: str = "ok"
    reason: str | None = None


def _run_sizes(python: str, work: Path, log: Path, env: dict[str, str], size_timeout_s: float,
               on_event: Callable[[dict[str, Any]], None]) -> _Stopped:
    """Run one worker; kill it when a size (or its start-up) passes ``size_timeout_s``."""
    current: int | None = None

    def follow(event: dict[str, Any]) -> None:
        nonlocal current
        on_event(event)
        if event.get("phase") == "size":
            current = event["index"] if event["status"] == "start" else None

    command = [python, "-m", WORKER, str(work.parent), str(work)]
    ended = processes.watch(command, log, env, size_timeout_s, follow,
                            restarts_clock=lambda event: event.get("phase") == "size")
    if ended.timed_out:
        what = f"size {current}" if current is not None else "start-up"
        return _Stopped(current, "timeout", f"timed out after {size_timeout_s:g} s ({what})")
    message = processes.last_line(log) or "no message"
    if current is not None:
        return _Stopped(current, "error",
                        f"worker exited with code {ended.code} in this size: {message}")
    return _Stopped(None, "ok" if ended.code == 0 else "error",
                    f"worker exited with code {ended.code}: {message}")


def _read_rows(path: Path) -> dict[int, dict[str, Any]]:
    rows = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # blank, or torn by a full disk: that size has none
                continue
            rows[row.pop("index")] = row
    return rows


def _read_json(path: Path) -> dict[str, Any]:
    return read_json(path) if path.exists() else {}


# ---------------------------------------------------------------------------- standalone


def compare_standalone(backend: Selected, rows: list[dict[str, Any]], python: str,
                       env: dict[str, str], spec: Spec, sizes: list[Size], threads: int,
                       options: BenchOptions, on_event: ProgressFn) -> None:
    """Add the standalone script's median, run by the backend's ``python`` with its
    ``env``, to each finished row of ``backend``."""
    script = standalone.script_for(backend.name)
    if script is None:
        for row in rows:
            row["standalone_status"] = f"no script backends/standalone/" \
                                       f"{backend.name.replace('-', '_')}_loop.py"
        return
    for row, size in zip(rows, sizes, strict=True):
        if row["status"] != "ok":
            continue
        on_event(backend.name, {"phase": "standalone", "index": row["size_index"]})
        timing = {"warmup": options.warmup, "steps": row["steps_timed"]}
        result = standalone.run_script(script, python, env, spec, size, threads,
                                       timing, options.size_timeout_s)
        row["standalone_status"] = result["status"]
        if result["status"] == "ok":
            row["standalone_ms_median"] = result["step_ms_median"]
            row["suite_vs_standalone"] = row["step_ms_median"] / result["step_ms_median"]
        else:
            row["standalone_reason"] = result["reason"]
