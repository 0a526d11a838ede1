"""What every worker process shares: ``serve`` (its main), progress events, and the
answers every feature asks of a backend. ``suite.compare.worker``, ``suite.kit.worker`` and
``suite.bench.worker`` are the workers.

Worker side: standard library and NumPy only, so it runs in other environments too.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Backend
from suite.files import write_json
from suite.spec import Spec


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
    plan_dir, out = Path(args[0]), Path(args[1])
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = run_fn(plan_dir, out)
    except Exception as exc:
        traceback.print_exc()
        result = {"status": "error", "reason": describe_exception(exc)}
    write_json(out / "result.json", result)
    return 0
