"""Run a benchmark sweep: the peak, then each backend's sizes in a fresh worker, one
backend at a time, then bench.csv, run.json and the report.

A size that runs past its time limit is killed with its worker and marked timeout; a
fresh worker goes on with the sizes after it. A crash marks the size it happened in as
error. Finished rows are kept in the worker's bench.jsonl as they come, and bench.csv
and run.json are rewritten after every backend, so an interrupted sweep keeps them.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import suite
from suite import harness, rundir
from suite.bench import memory, standalone
from suite.bench.sizes import Size, describe, flops_per_step, sized_spec
from suite.errors import UserError
from suite.spec import Spec

ProgressFn = Callable[[str, dict[str, Any]], None]


@dataclass
class BenchOptions:
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


def run(spec: Spec, sizes: list[Size], options: BenchOptions,
        on_event: ProgressFn | None = None) -> Path:
    """Sweep ``sizes`` with every backend; returns the output folder."""
    on_event = on_event or (lambda name, event: None)
    estimate = memory.check(spec, sizes, options.memory_limit)
    if options.standalone:
        standalone.check_spec(spec)
    tasks, skipped = harness.plan_tasks(spec, options.backends)
    tasks = [task for task in tasks if task.role != "variant"]
    threads = options.threads or os.cpu_count() or 1
    out = rundir.create(f"bench-{spec.name}", options.root, options.out, options.force)
    env = harness.worker_env(threads)
    record = {
        "kind": "bench", "suite_version": suite.__version__, "run": out.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "status": "running",
        "spec": spec.to_dict(), "dtype": spec.training.dtype,
        "sizes": [size.to_dict() for size in sizes], "memory": estimate,
        "environment": harness.environment(),
        "threads": {"count": threads,
                    "environment": {k: env[k] for k in harness.THREAD_VARIABLES}},
        "timing": {"warmup": options.warmup, "steps": options.steps,
                   "min_steps": options.min_steps, "budget_s": options.budget_s,
                   "size_timeout_s": options.size_timeout_s},
        "backends": {t.name: {"status": "pending"} for t in tasks}, "peak": None,
    }
    record["backends"].update({name: {"status": info["status"], "reason": info["reason"]}
                               for name, info in skipped.items()})
    rundir.write_json(out / "run.json", record)
    rows: list[dict[str, Any]] = []
    scratch = Path(tempfile.mkdtemp(prefix="fnn-suite-bench-"))
    try:
        on_event("peak", {"phase": "start", "role": "peak"})
        record["peak"] = measure_peak(env, tasks)
        on_event("peak", {"phase": "done", "status": "ok", "reason": None})
        _write_plan(scratch, spec, sizes, options, threads)
        (out / "workers").mkdir(exist_ok=True)
        for task in tasks:
            on_event(task.name, {"phase": "start", "role": task.role, "total": len(sizes)})
            try:
                python, task_env = harness.interpreter(task.name, task.env, env, on_event)
            except UserError as exc:  # its environment could not be built
                info = {"status": "error", "reason": str(exc)}
                found = error_rows(task.name, spec, sizes, info["reason"])
            else:
                found, info = sweep(task, python, task_env, spec, scratch, out / "workers",
                                    sizes, options, on_event)
                if options.standalone:
                    compare_standalone(task, found, python, task_env, spec, sizes, threads,
                                       options, on_event)
            rows.extend(found)
            record["backends"][task.name] = info
            write_rows(out, rows, record["peak"]["gflops"], threads)
            rundir.write_json(out / "run.json", record)
            on_event(task.name, {"phase": "done", "status": info["status"],
                                 "reason": info.get("reason")})
        record["status"] = "complete"
    except BaseException:
        record["status"] = "interrupted"
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        rundir.write_json(out / "run.json", record)
        from suite.bench import report  # plotting loads only when needed

        report.render(out)
    return out


def _write_plan(folder: Path, spec: Spec, sizes: list[Size], options: BenchOptions,
                threads: int) -> None:
    rundir.write_json(folder / "plan.json", {
        "spec": spec.to_dict(), "sizes": [size.to_dict() for size in sizes],
        "threads": threads, "device": "cpu",
        "timing": {"warmup": options.warmup, "steps": options.steps,
                   "min_steps": options.min_steps, "budget_s": options.budget_s}})


def measure_peak(env: dict[str, str], tasks: list[harness.Task]) -> dict[str, Any]:
    """The float32 matmul peak: NumPy's BLAS, and torch's too when torch is benchmarked."""
    libraries = ["numpy"] + (["torch"] if any(t.name == "torch" for t in tasks) else [])
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


def sweep(task: harness.Task, python: str, env: dict[str, str], spec: Spec, plan_dir: Path,
          logs: Path, sizes: list[Size], options: BenchOptions, on_event: ProgressFn
          ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every size of one backend, run by ``python`` with ``env``: its rows (one per size)
    and its run.json entry."""
    work = plan_dir / task.name
    work.mkdir(parents=True, exist_ok=True)
    done: dict[int, dict[str, Any]] = {}
    info: dict[str, Any] = {"status": "ok", "reason": None, "workers": 0}
    pending = list(range(len(sizes)))
    while pending:
        info["workers"] += 1
        rundir.write_json(work / "task.json", {
            "backend": {"name": task.name, "target": task.target, "options": task.options},
            "sizes": pending})
        log = logs / f"{task.name}-{info['workers']}.log"
        stopped = _watch(python, work, log, env, options.size_timeout_s,
                         lambda e: on_event(task.name, e))
        done.update(_read_rows(work / "bench.jsonl"))
        pending = [i for i in pending if i not in done]
        if stopped.index is not None and stopped.index in pending:  # killed or crashed in it
            done[stopped.index] = {"status": stopped.status, "reason": stopped.reason}
            pending.remove(stopped.index)
            on_event(task.name, {"phase": "size", "index": stopped.index,
                                 "status": stopped.status})
        elif pending:  # it failed before its first size: load() or an import
            result = _read_json(work / "result.json")
            reason = result.get("reason") or stopped.reason
            info.update(status="error", reason=reason)
            for i in pending:
                done[i] = {"status": "error", "reason": reason}
            pending = []
    backend = _read_json(work / "backend.json")
    info.update({k: backend[k] for k in ("versions", "runtime", "import_s") if k in backend})
    rows = [{**row, **done.get(i, {})}
            for i, row in enumerate(error_rows(task.name, spec, sizes, info["reason"]))]
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


def _watch(python: str, work: Path, log: Path, env: dict[str, str], size_timeout_s: float,
           on_event: Callable[[dict[str, Any]], None]) -> _Stopped:
    """Run one worker; kill it when a size (or its start-up) passes ``size_timeout_s``."""
    command = [python, "-m", "suite.bench.worker", str(work.parent), str(work)]
    events: queue.Queue = queue.Queue()
    current: int | None = None
    with open(log, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True,
                                env=env, start_new_session=True)
        def read() -> None:
            harness.relay(proc, "", lambda _name, event: events.put(event))
            events.put(None)  # stdout closed: the worker has ended

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + size_timeout_s
        try:
            while True:
                try:
                    event = events.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    harness.kill(proc)
                    what = f"size {current}" if current is not None else "start-up"
                    return _Stopped(current, "timeout",
                                    f"timed out after {size_timeout_s:g} s ({what})")
                if event is None:
                    break
                on_event(event)
                if event.get("phase") == "size":
                    current = event["index"] if event["status"] == "start" else None
                    deadline = time.monotonic() + size_timeout_s
        except BaseException:
            harness.kill(proc)
            raise
        code = proc.wait()
    if current is not None:
        return _Stopped(current, "error", f"worker exited with code {code} in this size: "
                                          f"{harness.last_line(log) or 'no message'}")
    return _Stopped(None, "ok" if code == 0 else "error",
                    f"worker exited with code {code}: {harness.last_line(log) or 'no message'}")


def _read_rows(path: Path) -> dict[int, dict[str, Any]]:
    rows = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row.pop("index")] = row
    return rows


def _read_json(path: Path) -> dict[str, Any]:
    return rundir.read_json(path) if path.exists() else {}


# ---------------------------------------------------------------------------- standalone


def compare_standalone(task: harness.Task, rows: list[dict[str, Any]], python: str,
                       env: dict[str, str], spec: Spec, sizes: list[Size], threads: int,
                       options: BenchOptions, on_event: ProgressFn) -> None:
    """Add the standalone script's median, run by the backend's ``python`` with its
    ``env``, to each finished row of ``task``."""
    script = standalone.script_for(task.name)
    if script is None:
        for row in rows:
            row["standalone_status"] = f"no script backends/standalone/" \
                                       f"{task.name.replace('-', '_')}_loop.py"
        return
    for row, size in zip(rows, sizes, strict=True):
        if row["status"] != "ok":
            continue
        on_event(task.name, {"phase": "standalone", "index": row["size_index"]})
        timing = {"warmup": options.warmup, "steps": row["steps_timed"]}
        result = standalone.run_script(script, python, env, spec, size, threads,
                                       timing, options.size_timeout_s)
        row["standalone_status"] = result["status"]
        if result["status"] == "ok":
            row["standalone_ms_median"] = result["step_ms_median"]
            row["suite_vs_standalone"] = row["step_ms_median"] / result["step_ms_median"]
        else:
            row["standalone_reason"] = result["reason"]


# ---------------------------------------------------------------------------- bench.csv

COLUMNS = ("backend", "size_index", "layers", "input_dim", "width", "depth", "outputs",
           "batch_size", "dtype", "threads", "status", "reason", "first_step_s", "step_ms_median",
           "step_ms_iqr", "steps_timed", "samples_per_s", "gflop_per_step", "gflops",
           "peak_share", "peak_rss_mb", "build_s", "standalone_ms_median",
           "suite_vs_standalone", "standalone_status", "standalone_reason")


def write_rows(out: Path, rows: list[dict[str, Any]], peak_gflops: float, threads: int) -> None:
    """bench.csv, written whole or not at all."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["threads"] = threads
    if "gflops" in frame:
        frame["peak_share"] = frame["gflops"] / peak_gflops
    frame = frame.reindex(columns=list(COLUMNS))
    rundir.atomic_write_text(out / "bench.csv", frame.to_csv(index=False))
