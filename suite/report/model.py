"""A run directory as plain data: :func:`load` reads it, :func:`build` says what to show.

:func:`load` reads run.json (required) and the CSV tables (optional: a run that was
interrupted, or whose backend errored, lacks some of them) into a :class:`Run`.
:func:`build` turns a Run into a :class:`Report` whose every number is already
formatted, so that report.md and report.html say exactly the same thing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from suite import __version__, catalogue
from suite.errors import UserError

CHECKS = ("forward", "loss", "gradients", "update", "trajectory")
# Worst first: a backend's headline sentence follows its worst verdict.
SEVERITY = ("error", "fail", "known difference", "unsupported", "pass")
CSS = {"pass": "pass", "known difference": "known", "unsupported": "unsupported",
       "fail": "fail", "error": "error"}
TABLES = {
    "losses": ("backend", "epoch", "step", "loss"),
    "comparison": ("backend", "step", "kind", "tensor", "max_abs_diff", "rel_l2_error",
                   "tolerance", "within", "variant_rel_l2_error"),
}


# ---------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class BackendInfo:
    """One entry of run.json's ``backends``; role is reference, backend or variant."""

    name: str
    role: str
    status: str
    reason: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    timing_status: str | None = None
    timing_reason: str | None = None


@dataclass(frozen=True)
class Check:
    """One row of summary.csv: a backend's verdict on one check."""

    backend: str
    check: str
    verdict: str
    step: int | None = None
    tensor: str | None = None
    rel_l2_error: float | None = None
    tolerance: float | None = None
    ledger: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    title: str
    feature: str
    reference: str
    backend: str
    source: str
    applied_to: tuple[str, ...]


@dataclass(frozen=True)
class Timing:
    """One row of timing.csv; every measurement may be missing (None)."""

    backend: str
    threads: int | None = None
    import_s: float | None = None
    build_s: float | None = None
    first_step_s: float | None = None
    step_ms_median: float | None = None
    step_ms_iqr: float | None = None
    samples_per_s: float | None = None
    predict_ms: float | None = None
    steps_timed: int | None = None
    status: str | None = None
    reason: str | None = None


@dataclass
class Run:
    """Everything a report needs from one run directory."""

    path: Path
    meta: dict[str, Any]
    backends: dict[str, BackendInfo]
    ledger: list[LedgerEntry]
    checks: list[Check]
    timings: list[Timing]
    losses: pd.DataFrame  # backend, epoch, step, loss
    comparison: pd.DataFrame  # one row per backend, step and tensor; see TABLES

    @property
    def spec(self) -> dict[str, Any]:
        return self.meta.get("spec", {})

    @property
    def dtype(self) -> str:
        return self.meta.get("dtype") or self.spec.get("training", {}).get("dtype", "float32")

    @property
    def reference(self) -> str:
        return next((n for n, b in self.backends.items() if b.role == "reference"), "numpy")

    @property
    def compared(self) -> list[str]:
        """Backends checked against the reference, in run.json's order."""
        return [n for n, b in self.backends.items() if b.role == "backend"]


def load(run_dir: Path) -> Run:
    """Read a run directory; only run.json is required."""
    run_dir = Path(run_dir)
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("not a run directory: run.json is missing", where=str(run_dir)) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"run.json is not valid JSON ({exc})", where=str(run_dir)) from None
    backends = {name: _backend(name, raw) for name, raw in meta.get("backends", {}).items()}
    return Run(
        path=run_dir,
        meta=meta,
        backends=backends,
        ledger=[_ledger(raw) for raw in meta.get("ledger", [])],
        checks=[Check(**_record(row, Check)) for row in _rows(run_dir / "summary.csv")],
        timings=[Timing(**_record(row, Timing)) for row in _rows(run_dir / "timing.csv")],
        losses=_table(run_dir / "losses.csv", TABLES["losses"]),
        comparison=_table(run_dir / "comparison.csv", TABLES["comparison"]),
    )


def _backend(name: str, raw: dict[str, Any]) -> BackendInfo:
    return BackendInfo(
        name=name, role=raw.get("role", "backend"), status=raw.get("status", "ok"),
        reason=raw.get("reason"), versions=dict(raw.get("versions") or {}),
        timing_status=raw.get("timing_status"), timing_reason=raw.get("timing_reason"))


def _ledger(raw: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        id=raw.get("id", "?"), title=raw.get("title", ""), feature=raw.get("feature", ""),
        reference=raw.get("reference", ""), backend=raw.get("backend", ""),
        source=raw.get("source", ""),
        applied_to=tuple(raw.get("applied_to") or raw.get("backends") or ()))


def _table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A CSV table, or an empty one with the contract's columns when absent or empty."""
    try:
        frame = pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        frame = pd.DataFrame(columns=list(columns))
    return frame


def _rows(path: Path) -> list[dict[str, Any]]:
    return _table(path, ()).to_dict(orient="records")


def _record(row: dict[str, Any], kind: type) -> dict[str, Any]:
    """The row's fields that ``kind`` has, with NaN and empty cells as None, ints as int."""
    wanted = kind.__dataclass_fields__
    out = {}
    for key, value in row.items():
        if key not in wanted:
            continue
        value = _missing_as_none(value)
        if value is not None and wanted[key].type in ("int | None", "int"):
            value = int(value)
        if value is not None and wanted[key].type == "str | None":
            value = str(value)
        out[key] = value
    return out


def _missing_as_none(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value.item() if hasattr(value, "item") else value


# ---------------------------------------------------------------------------- formatting


def sci(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.1e}"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f} s" if value >= 1 else millis(value * 1e3)


def millis(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.3g} ms"


def count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def hyper(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def component(raw: dict[str, Any] | str | None) -> str:
    """``adam (learning_rate=0.001, beta_1=0.9, ...)`` from a normalized spec component."""
    if not isinstance(raw, dict):
        return str(raw or "—")
    params = ", ".join(f"{k}={hyper(v)}" for k, v in raw.items() if k != "name")
    return f"{raw.get('name', '?')} ({params})" if params else str(raw.get("name", "?"))
