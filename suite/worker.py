"""What every worker process shares: ``serve`` (its main), progress events, and the
answers every feature asks of a backend. ``suite.compare.worker``, ``suite.kit.worker`` and
``suite.bench.worker`` are the workers.

Worker side: standard library and NumPy only, so it runs in other environments too.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Backend
from suite.errors import DiskFull, UserError
from suite.files import write_json
from suite.spec import Spec

#: the suite's process id, in each worker's environment (see die_with_parent)
PARENT_VARIABLE = "FNN_SUITE_PARENT_PID"
#: the distributions this worker hides, and their top-level modules, comma-separated
#: (see suite.isolation, which names them)
HIDDEN_DISTRIBUTIONS = "FNN_SUITE_HIDDEN_DISTRIBUTIONS"
HIDDEN_MODULES = "FNN_SUITE_HIDDEN_MODULES"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def emit(**event: Any) -> None:
    """One progress event on stdout, as the harness's ``processes.relay`` reads it."""
    print(json.dumps(event), flush=True)


def describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def step_statistics(steady_ms: np.ndarray, batch_size: int) -> dict[str, float]:
    """The median step (ms), its interquartile range, and samples per second at it."""
    q1, median, q3 = np.percentile(steady_ms, [25, 50, 75])
    return {"step_ms_median": float(median), "step_ms_iqr": float(q3 - q1),
            "samples_per_s": float(batch_size / (median / 1e3))}


def unsupported_features(backend: Backend, spec: Spec, device: str) -> list[str]:
    """'feature: reason' for each feature of ``spec`` (and ``device``) the backend lacks."""
    reasons = []
    for feature in spec.features() + [f"device:{device}"]:
        answer = backend.supports(feature)
        if answer is not True:
            reasons.append(f"{feature}: {answer}")
    return reasons


def die_with_parent() -> None:
    """End this worker when the suite's process ends, however it ends (SIGKILL included).

    Linux: the kernel sends SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG);
    elsewhere a thread looks at the parent's id every half second. If the parent is gone
    already (before this could be set up), the worker ends at once.
    """
    expected = os.environ.get(PARENT_VARIABLE)
    if expected is None:  # not started by the suite (a test, a debugging session)
        return
    parent = int(expected)
    armed = False
    if sys.platform.startswith("linux"):
        try:
            # NOTE: "parent" is the thread that started the worker; every feature starts
            # a worker from a thread that outlives it (the caller's, or a pool's).
            armed = ctypes.CDLL(None, use_errno=True).prctl(
                _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if not _parent_alive(parent):
        os._exit(1)
    if not armed:
        threading.Thread(target=_end_without_parent, args=(parent,), daemon=True).start()


def _parent_alive(parent: int) -> bool:
    """Whether the suite still runs (its child, or through a wrapper that forked)."""
    if os.getppid() == parent:
        return True
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    return True


def _end_without_parent(parent: int) -> None:
    while _parent_alive(parent):
        time.sleep(0.5)
    os._exit(1)


def canonical_name(distribution: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


class _Hiding:
    """A finder of ``sys.meta_path`` that finds nothing of the hidden distributions.

    Every finder is wrapped, so that each way a framework probes for an optional package
    answers "not installed": an import fails with ModuleNotFoundError,
    ``importlib.util.find_spec`` returns None, and ``importlib.metadata`` finds no
    distribution (torch reads optree's version before it imports it).
    """

    def __init__(self, finder: Any, modules: frozenset[str], distributions: frozenset[str]):
        self._finder, self._modules, self._distributions = finder, modules, distributions

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.partition(".")[0] in self._modules:
            return None
        return self._finder.find_spec(fullname, path, target)

    def find_distributions(self, context: Any = None) -> Any:
        found = getattr(self._finder, "find_distributions", None)
        if found is None:
            return
        name = getattr(context, "name", None)
        if name is not None and canonical_name(name) in self._distributions:
            return
        for dist in found() if context is None else found(context):
            if canonical_name(dist.metadata["Name"] or "") not in self._distributions:
                yield dist

    def __getattr__(self, name: str) -> Any:  # invalidate_caches, ...
        return getattr(self._finder, name)


def hide_distributions() -> None:
    """Hide what the harness named in this worker's environment, if anything."""
    def names(variable: str) -> frozenset[str]:
        return frozenset(n for n in os.environ.get(variable, "").split(",") if n)

    modules, distributions = names(HIDDEN_MODULES), names(HIDDEN_DISTRIBUTIONS)
    if modules or distributions:
        sys.meta_path[:] = [_Hiding(finder, modules, distributions)
                            if hasattr(finder, "find_spec") else finder
                            for finder in sys.meta_path]


def serve(run_fn: Callable[[Path, Path], dict[str, Any]], module: str,
          argv: list[str] | None = None) -> int:
    """``python -m MODULE PLAN_DIR OUT_DIR``: run, and write OUT_DIR/result.json always.

    Whatever ``run_fn`` raises (an import that fails, a ``load()`` that fails) becomes an
    error result with its reason; the harness reads it like any other.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(f"usage: python -m {module} PLAN_DIR OUT_DIR", file=sys.stderr)
        return 2
    die_with_parent()
    hide_distributions()
    plan_dir, out = Path(args[0]), Path(args[1])
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = run_fn(plan_dir, out)
    except UserError as exc:  # a full disk: its one line is the reason
        result = {"status": "error", "reason": str(exc)}
        if isinstance(exc, DiskFull):
            result["disk_full"] = True
    except Exception as exc:
        traceback.print_exc()
        result = {"status": "error", "reason": describe_exception(exc)}
    try:
        write_json(out / "result.json", result)
    except DiskFull as exc:  # the harness reads the log's last line instead
        print(exc, file=sys.stderr)
        return 1
    return 0
