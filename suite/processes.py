"""Worker processes: the environment they run in, starting one, watching it, ending it.

Every feature (compare, bench, kit) runs each backend in a worker process of its own: a
fresh interpreter (the main one, or the backend's own environment), the same thread
settings, its own process group. The worker prints JSON progress events on stdout (one
object a line) and diagnostics on stderr (kept in a log file); it is killed, whole, when
it passes its time limit or when the harness is interrupted.

A run stops the same way on Ctrl-C, SIGTERM (a CI time-out, ``kill``, a container that
stops) and SIGHUP (a closed terminal): inside :class:`StopSignals` each raises
``Interrupted``, a KeyboardInterrupt, and every worker still running is killed. A worker
also dies with the suite when nothing could run in the suite (SIGKILL): see
``suite.worker.die_with_parent``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from suite import envs, isolation
from suite.errors import Interrupted, UserError
from suite.files import read_json, write_json
from suite.worker import PARENT_VARIABLE

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

#: Progress callback: (backend, event) where event is a worker's JSON progress line, or
#: one of the harness's own ({"phase": "start" | "env" | "done", ...}).
ProgressFn = Callable[[str, dict[str, Any]], None]


def ignore_progress(name: str, event: dict[str, Any]) -> None:
    """The progress callback of a caller that shows none."""


def worker_env(threads: int) -> dict[str, str]:
    """The environment variables of every worker: the thread counts pinned."""
    env = dict(os.environ)
    env.update({var: str(threads) for var in THREAD_VARIABLES})
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    env["PYTHONUNBUFFERED"] = "1"
    # `python -m` would put the user's folder first on sys.path: a torch.py there (a
    # reproducer, a script of theirs) would be imported as torch. Python 3.11+ leaves it
    # off; the harness, a console script, never had it either.
    env["PYTHONSAFEPATH"] = "1"
    # NOTE: one hash seed for every worker (unless the user chose one): the same set and
    # dict iteration orders in every run, so a framework's graph rewrites run in the same
    # order each time. Theano 1.0.5 also puts a str hash into DimShuffle's compile-cache
    # key, so with a random seed it runs g++ again in every process (docs/performance.md,
    # section "Theano: one hash seed").
    env.setdefault("PYTHONHASHSEED", "0")
    env[PARENT_VARIABLE] = str(os.getpid())  # a worker whose parent is gone ends itself
    return env


def interpreter(name: str, spec: envs.EnvSpec | None, env: dict[str, str],
                on_event: ProgressFn, target: str | None = None) -> tuple[str, dict[str, str]]:
    """The Python and the environment variables a backend's worker runs with.

    The main interpreter, where the worker of ``target`` hides the packages its framework
    does not need (suite.isolation), or the backend's own environment (built on first
    use, with progress events), whose PYTHONPATH holds a fresh copy of the worker side
    only.
    """
    if spec is None:
        return sys.executable, {**env, **(isolation.worker_variables(target) if target else {})}
    if not spec.path.exists():
        on_event(name, {"phase": "env", "message": f"building environment {spec.name}"})
    python = envs.ensure(spec, lambda line: on_event(name, {"phase": "env", "message": line}))
    return str(python), {**env, "PYTHONPATH": str(envs.worker_path(spec))}


@dataclass(frozen=True)
class Ended:
    """How a watched process ended: its exit code, or None when it was killed at its
    time limit."""

    code: int | None

    @property
    def timed_out(self) -> bool:
        return self.code is None


def watch(command: list[str], log: Path, env: dict[str, str], timeout_s: float,
          on_event: Callable[[dict[str, Any]], None],
          restarts_clock: Callable[[dict[str, Any]], bool] | None = None) -> Ended:
    """Run ``command`` in its own process group, stderr to ``log``; relay its events.

    Each JSON object it prints on stdout goes to ``on_event``. It is killed, whole, once
    ``timeout_s`` pass, counted from the start or from the last event for which
    ``restarts_clock`` says True (a bench worker's next size); and when the caller is
    interrupted, before the interruption goes on.
    """
    events: queue.Queue = queue.Queue()
    with open(log, "w", encoding="utf-8") as err:
        proc = start(command, err, env)

        def read() -> None:
            relay(proc, events.put)
            events.put(None)  # stdout closed: the worker has ended

        try:
            threading.Thread(target=read, daemon=True).start()
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    event = events.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    kill(proc)
                    return Ended(None)
                if event is None:
                    break
                on_event(event)
                if restarts_clock is not None and restarts_clock(event):
                    deadline = time.monotonic() + timeout_s
            return Ended(proc.wait(timeout=max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:  # stdout closed, yet the process lives on
            kill(proc)
            return Ended(None)
        except BaseException:
            kill(proc)
            raise
        finally:
            with _lock:
                _live.discard(proc)


def run_worker(module: str, name: str, task: dict[str, Any], plan_dir: Path, work_dir: Path,
               log: Path, env: dict[str, str], timeout_s: float, on_event: ProgressFn,
               python: str = sys.executable) -> dict[str, Any]:
    """``python -m MODULE PLAN_DIR WORK_DIR`` with WORK_DIR/task.json; returns its
    result.json, or an error result that says why there is none. Never raises for the
    worker's own failure."""
    work_dir.mkdir(parents=True, exist_ok=True)
    write_json(work_dir / "task.json", task)
    command = [python, "-m", module, str(plan_dir), str(work_dir)]
    ended = watch(command, log, env, timeout_s, lambda event: on_event(name, event))
    if ended.timed_out:
        return {"status": "error", "reason": f"worker timed out after {timeout_s:g} s"}
    result_file = work_dir / "result.json"
    if ended.code != 0 or not result_file.exists():
        return {"status": "error", "reason": f"worker exited with code {ended.code}: "
                                             f"{last_line(log) or 'no message'}"}
    return read_json(result_file)


def run_backend_worker(module: str, name: str, env_spec: envs.EnvSpec | None,
                       task: dict[str, Any], plan_dir: Path, work_dir: Path, log: Path,
                       env: dict[str, str], timeout_s: float,
                       on_event: ProgressFn) -> dict[str, Any]:
    """:func:`run_worker` in the backend's own interpreter; a backend whose environment
    cannot be had gets an error result with the reason, like any other failure."""
    try:
        python, env = interpreter(name, env_spec, env, on_event, task["backend"]["target"])
    except UserError as exc:
        return {"status": "error", "reason": str(exc)}
    return run_worker(module, name, task, plan_dir, work_dir, log, env, timeout_s, on_event,
                      python)


def relay(proc: subprocess.Popen, on_event: Callable[[dict[str, Any]], Any]) -> None:
    """Pass each JSON object a worker prints on stdout to ``on_event``, until it closes."""
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a framework printing to stdout: not ours
        if isinstance(event, dict):
            on_event(event)


def kill(proc: subprocess.Popen) -> None:
    """Kill a worker's whole process group (it was started with start_new_session)."""
    _kill_group(proc)
    proc.wait()


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def last_line(log: Path) -> str:
    """The last non-blank line of a worker's log: usually its error."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines()
             if line.strip()]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------- stopping

#: the signals that stop a run as Ctrl-C does
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_lock = threading.Lock()
_live: set[subprocess.Popen] = set()  # the workers running now, in any thread
_stopping: int | None = None  # the signal that stopped the run: no worker starts after it
_held: list[int] | None = None  # signals that came while the main thread started a worker


def start(command: list[str], stderr: Any, env: dict[str, str]) -> subprocess.Popen:
    """Start a worker in a process group of its own and count it among the live ones.

    A stop signal that comes meanwhile waits until the worker is counted, so that no
    worker escapes the kill; once a run is stopping, none starts.
    """
    global _held
    main = threading.current_thread() is threading.main_thread()
    with _lock:
        if _stopping is not None:
            raise Interrupted(_stopping)
        if main:
            _held = []
        try:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                    env=env, start_new_session=True)
            _live.add(proc)
        finally:
            held, _held = (_held or [], None) if main else ([], _held)
    if held:
        kill(proc)
        with _lock:
            _live.discard(proc)
        raise Interrupted(held[0])
    return proc


def stop_all(signum: int = signal.SIGINT) -> None:
    """Kill every live worker (each thread's) and start no more: a run is stopping."""
    global _stopping
    with _lock:
        _stopping = signum
        running = list(_live)
    for proc in running:
        _kill_group(proc)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    if _held is not None:  # the main thread is starting a worker: see start()
        _held.append(signum)
        return
    raise Interrupted(signum)


class StopSignals:
    """While it is entered, SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` in the main
    thread; on the way out by an exception, every live worker is killed.

    Only signals left at their default are taken (one ignored under ``nohup``, or handled
    by an embedding program, stays so); the previous handlers come back on the way out.
    Outside the main thread no handler can be set, and it only kills on the way out.
    """

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                handler = signal.getsignal(signum)
                if handler in (signal.SIG_DFL, signal.default_int_handler):
                    self.previous[signum] = signal.signal(signum, _raise_interrupted)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        global _stopping
        try:
            if error is not None:
                stop_all(getattr(error, "signum", signal.SIGINT))
        finally:
            for signum, handler in self.previous.items():
                signal.signal(signum, handler)
            self.previous = {}
            _stopping = None
