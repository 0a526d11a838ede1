"""Verdicts: each check's from its comparison rows, the trajectory's with what the
backend's parts run found (suite.compare.attribution)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from operator import attrgetter
from pathlib import Path
from typing import Any

import pandas as pd

from suite import rundir
from suite.compare import attribution
from suite.compare.noise import NOISE_FACTOR
from suite.files import read_json
from suite.rundir import COMPARISON_COLUMNS, ComparisonRow, PartsRow, SummaryRow, parts_name
from suite.spec import Spec

#: check -> the comparison rows it judges
CHECK_ROWS = {
    "forward": lambda df: df[df.kind == "output"],
    "loss": lambda df: df[(df.kind == "loss") & (df.step == 0)],
    "gradients": lambda df: df[(df.kind == "grad") & (df.step == 0)],
    "update": lambda df: df[df.kind == "update"],
    "trajectory": lambda df: df[df.kind.isin(["loss", "grad", "param"]) & (df.step > 0)],
}


def verdict(backend: str, check: str, rows: pd.DataFrame, status: str, reason: str | None,
            entries: list[str], optimizer: str = "the optimizer") -> SummaryRow:
    """The verdict of one check from its comparison rows and the worker's status.

    pass: every row within its tolerance and none closer to the ledger variant by more
    than the noise; known difference: not so, but every row within the tolerance of the
    variant; fail: neither. ``optimizer`` names the update's author in a failed update.
    """
    base: dict[str, Any] = {"backend": backend, "check": check, "rel_l2_error": math.nan,
                            "noise": math.nan, "tolerance": math.nan, "ledger": "",
                            "reason": ""}
    if status == "unsupported":
        return SummaryRow(**base | {"verdict": "unsupported", "reason": reason or ""})
    incomplete = status == "error" and (check == "trajectory" or rows.empty)
    if rows.empty or incomplete:
        return SummaryRow(**base | {"verdict": "error",
                                    "reason": reason or "no results to compare"})
    # NOTE: a NaN difference is worse than any number (and never within tolerance); the
    # worst row is the one furthest out of its tolerance
    ratio = (rows.rel_l2_error / rows.tolerance).fillna(math.inf)
    worst = rows.loc[ratio.idxmax()]
    base.update(rel_l2_error=float(worst.rel_l2_error), noise=float(worst.noise),
                tolerance=float(worst.tolerance))
    favours = rows.favours_variant.astype(bool)
    if rows.within.all() and not favours.any():
        return SummaryRow(**base | {"verdict": "pass"})
    flagged = rows[~rows.within | favours].sort_values("step", kind="stable")
    outside = flagged.iloc[0]
    base.update(step=int(outside.step), tensor=f"{outside.kind} {outside.tensor}")
    broken = rows[~rows.finite.astype(bool)].sort_values("step", kind="stable")
    if not broken.empty:  # NaN or inf is the backend's error, not a numerical difference
        first = broken.iloc[0]
        return SummaryRow(**base | {
            "step": int(first.step), "tensor": f"{first.kind} {first.tensor}",
            "verdict": "error", "reason": f"non-finite values (NaN or inf) in {first.kind} "
                                          f"{first.tensor} at step {int(first.step)}"})
    explained = rows.variant_rel_l2_error.notna().all() and bool(
        ((rows.variant_rel_l2_error <= rows.tolerance) | rows.within).all())
    if entries and explained:
        return SummaryRow(**base | {
            "verdict": "known difference", "ledger": " ".join(entries),
            "reason": "agrees with the reference under the ledger's conventions, not "
                      "without them"})
    outside_rows = rows[~rows.within].sort_values("step", kind="stable")
    if outside_rows.empty:  # within the noise, only closer to a variant that explains less
        return SummaryRow(**base | {"step": None, "tensor": None, "verdict": "pass"})
    first = outside_rows.iloc[0]
    what = f"{first.kind} {first.tensor}"
    if first.kind == "update":
        what = f"the update of {first.tensor} by {optimizer}"
    if not math.isfinite(first.noise):
        measured = f"tolerance {first.tolerance:.3g}"
    elif first.noise * NOISE_FACTOR < first.tolerance:  # the floor set the tolerance
        measured = (f"the measured noise {first.noise:.3g} is under the dtype's floor: "
                    f"tolerance {first.tolerance:.3g}")
    else:
        measured = (f"{first.rel_l2_error / first.noise:.3g} x the measured noise "
                    f"{first.noise:.3g}, tolerance {first.tolerance:.3g}")
    reason = (f"{what} differs by {first.rel_l2_error:.3g} (relative L2) at step "
              f"{int(first.step)}: {measured}")
    return SummaryRow(**base | {"step": int(first.step), "tensor": f"{first.kind} "
                                f"{first.tensor}", "verdict": "fail", "reason": reason})


def verdicts(backend: str, rows: list[ComparisonRow], status: str, reason: str | None,
             entries: list[str], optimizer: str = "the optimizer",
             parts: Parts | None = None, twin: Twin | None = None) -> list[SummaryRow]:
    """One verdict per check (rundir.CHECKS) from a backend's comparison rows; a fail that
    its twin does not share is a known difference (Twin); the trajectory's verdict says
    what its parts run found (suite.compare.attribution)."""
    frame = table(rows, COMPARISON_COLUMNS)
    found = []
    for check, select in CHECK_ROWS.items():
        row = verdict(backend, check, select(frame), status, reason, entries, optimizer)
        if twin is not None:
            row = twin.explain(row)
        if check == "trajectory" and parts is not None:
            row = attribution.apply(row, parts.finding, parts.why_not, entries)
        found.append(row)
    return found


@dataclass
class Twin:
    """A backend's twin, judged: its verdicts with its ledger entries' switches on."""

    entries: list[str]  # the twin entries' ids
    environment: dict[str, str]
    checks: dict[str, SummaryRow]  # the twin's own verdict of each check

    def explain(self, row: SummaryRow) -> SummaryRow:
        """A fail whose twin is within the noise (or only a known difference) is a known
        difference, named by the twin's entries; any other verdict stands."""
        mine = self.checks.get(row.check)
        if row.verdict != "fail" or mine is None or mine.verdict not in (
                "pass", "known difference"):
            return row
        switches = ", ".join(f"{k}={v}" for k, v in self.environment.items())
        return replace(row, verdict="known difference",
                       ledger=" ".join([*self.entries, *mine.entries]),
                       reason=f"{row.reason}; run again with {switches} it is "
                              f"{'within the noise' if mine.verdict == 'pass' else mine.verdict}"
                              f" (worst {mine.rel_l2_error:.3g} against "
                              f"{mine.tolerance:.3g})")


@dataclass
class Parts:
    """A backend's parts run, judged: its rows and finding, or why there is none."""

    rows: list[PartsRow]
    finding: attribution.Finding | None
    why_not: str | None = None

    @classmethod
    def load(cls, run_dir: Path, backend: str, dtype: str) -> Parts | None:
        """workers/<backend>+parts.json judged, or None where no parts run was made."""
        path = rundir.worker_result(run_dir, parts_name(backend))
        if not path.exists():
            return None
        try:
            result = read_json(path)
        except (OSError, ValueError) as exc:
            return cls([], None, f"cannot read its parts run ({exc})")
        if result.get("status") != "ok" or "parts" not in result:
            return cls([], None, result.get("reason") or "its parts run did not finish")
        measured = result["parts"]
        rows = attribution.judge(backend, measured["rows"], dtype)
        broken = attribution.broken_contract(rows)
        if broken:
            return cls(rows, None, broken)
        return cls(rows, attribution.find(rows, measured.get("recorded", 0)))


def optimizer_label(spec: Spec) -> str:
    """``sgd (learning_rate=0.1, momentum=0.9, nesterov=False)``: who makes the update."""
    params = ", ".join(f"{k}={v}" for k, v in spec.optimizer.params.items())
    return f"{spec.optimizer.name} ({params})" if params else spec.optimizer.name


def table(rows: list, columns: Sequence[str]) -> pd.DataFrame:
    """A frame of dataclass rows, one column a field.

    NOTE: pandas turns dataclasses into dicts with dataclasses.asdict, a deep copy of
    every row: 0.4 s for a default run's 14,000 comparison rows, against 0.03 s from
    tuples.
    """
    values = attrgetter(*columns)
    return pd.DataFrame([values(row) for row in rows], columns=list(columns))
