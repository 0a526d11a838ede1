"""Attribution, harness side: which backends get a parts run, how its rows are judged, and
what they say about a trajectory that left the noise.

A parts run (suite.compare.parts, worker side) measures a backend's forward, backward and
optimizer each alone, fed the reference's own state. Judged against the measured noise
as the lockstep rows are (the same NOISE_FACTOR, envelope and floors), it answers the
question a trajectory outside the noise raises: *which part left first?*

- a part outside the noise at some step: that part, its tensor and step, first in step
  order (forward, then backward, then optimizer within a step, as a step runs them);
- every part within the noise at every step: *compounding*. The trajectories
  parted although no part of the step differs by more than correct implementations do;
  the run's own chaos (a ReLU that flips, a loss landscape that amplifies), not a bug.
  The trajectory's verdict is then pass, with that said.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from suite.compare.noise import NOISE_FACTOR, Envelope
from suite.rundir import PartsRow, SummaryRow

#: --attribution: which backends get a parts run after the lockstep runs
MODES = ("auto", "always", "never")
PART_ORDER = {"contract": -1, "forward": 0, "backward": 1, "optimizer": 2}


def wanted(mode: str, summary: Iterable[SummaryRow], verdicts: tuple[str, ...] = (
        "fail", "known difference")) -> list[str]:
    """The backends whose parts run ``mode`` asks for: under auto, those with a check of
    one of ``verdicts`` whose worst row is outside the noise (a known difference only
    for being closer to its variant needs no parts), and no error; under always, every
    backend that ran."""
    if mode == "never":
        return []
    by_backend: dict[str, list[SummaryRow]] = {}
    for row in summary:
        by_backend.setdefault(row.backend, []).append(row)
    chosen = []
    for backend, checks in by_backend.items():
        if {c.verdict for c in checks} & {"error", "unsupported"}:
            continue
        if mode == "always" or any(c.verdict in verdicts and _outside(c) for c in checks):
            chosen.append(backend)
    return chosen


def _outside(check: SummaryRow) -> bool:
    error, tolerance = check.rel_l2_error, check.tolerance
    if error is None or tolerance is None or math.isnan(tolerance):
        return True  # no measure to go by: look
    return bool(not error <= tolerance)


def judge(backend: str, rows: list[list], dtype: str) -> list[PartsRow]:
    """A parts run's raw rows (step, part, tensor, error, noise, max_abs, finite, and the
    error against the ledger variant), judged against the noise envelope of each part
    and tensor."""
    envelope = Envelope(dtype)
    judged = []
    for step, part, tensor, error, noise, max_abs, finite, *more in sorted(
            rows, key=lambda r: (r[0], PART_ORDER[r[1]])):
        # (rows written before these fields: no variant, the plain floor)
        variant = more[0] if more else math.nan
        floor_scale = more[1] if len(more) > 1 else 1.0
        level, tolerance = envelope.tolerance(part, tensor, float(noise), float(floor_scale))
        within = bool(error <= tolerance or max_abs <= envelope.atol)
        judged.append(PartsRow(backend, int(step), part, tensor, float(max_abs),
                               float(error), level, tolerance, within, bool(finite),
                               float(variant)))
    return judged


def variant_explains(row: PartsRow) -> bool:
    """Within the noise of the ledger variant fed the same: the ledger explains it."""
    return bool(row.variant_rel_l2_error <= row.tolerance)


@dataclass(frozen=True)
class Finding:
    """What a parts run says: the first part outside the noise that the ledger does not
    explain, or none (compounding); and the first that the ledger explains, if any."""

    first: PartsRow | None
    recorded: int  # the steps it measured (every step of the run)
    explained: PartsRow | None = None

    @property
    def label(self) -> str:
        row = self.first or self.explained
        if row is None:
            return "compounding"
        where = "" if row.part == "forward" else f" {row.tensor}"
        return f"{row.part}{where} at step {row.step}"

    def sentence(self) -> str:
        if self.first is None and self.explained is None:
            return (f"each part alone (forward, backward, optimizer, fed the reference's "
                    f"state) is within {NOISE_FACTOR:g} x the noise at all {self.recorded} "
                    "steps: the trajectories part by compounding")
        if self.first is None:
            return (f"{_part(self.explained)} left the noise first, at step "
                    f"{self.explained.step}, and is within it of the ledger variant, as is "
                    f"every part alone at all {self.recorded} steps: the entry "
                    "explains the part, the rest of the trajectory's distance is compounding")
        row = self.first
        what = _part(row)
        if row.noise * NOISE_FACTOR < row.tolerance:  # the dtype's floor set it
            against = f"over the tolerance {row.tolerance:.3g} (the noise under the floor)"
        else:
            against = f"{row.rel_l2_error / row.noise:.3g} x the noise {row.noise:.3g}"
        return (f"{what} left first, at step {row.step}: {row.rel_l2_error:.3g} (relative "
                f"L2), {against}")


def _part(row: PartsRow) -> str:
    return {"forward": "the forward (loss at the reference's parameters)",
            "backward": f"the backward ({row.tensor}'s gradient at the reference's "
                        "parameters)",
            "optimizer": f"the optimizer ({row.tensor} after the update of the reference's "
                         "gradients)"}[row.part]



def broken_contract(rows: list[PartsRow]) -> str | None:
    """Why the parts cannot be trusted, where the run's first steps showed apply_grads
    making another update than train_step (suite.compare.parts.CONTRACT_STEPS)."""
    broken = [r for r in rows if r.part == "contract" and not r.within]
    if not broken:
        return None
    first = broken[0]
    return (f"its apply_grads, fed its own gradients, does not make train_step's update: "
            f"{first.tensor} differs by {first.rel_l2_error:.3g} (relative L2) at step "
            f"{first.step}")


def find(rows: list[PartsRow], recorded: int) -> Finding:
    """The first row outside the noise: by step, then part, then the furthest out."""
    outside = [r for r in rows if not r.within and r.part != "contract"]

    def earliest(found: list[PartsRow]) -> PartsRow | None:
        return min(found, key=lambda r: (r.step, PART_ORDER[r.part],
                                         -r.rel_l2_error / max(r.tolerance, 1e-300)),
                   default=None)

    return Finding(earliest([r for r in outside if not variant_explains(r)]), recorded,
                   earliest([r for r in outside if variant_explains(r)]))


def apply(row: SummaryRow, finding: Finding | None, why_not: str | None,
          entries: list[str] = ()) -> SummaryRow:
    """The trajectory's verdict with what the parts run found (or why there is none).

    A fail whose parts are each within the noise is a pass by compounding; one whose
    parts outside the noise are each within it of the ledger variant (``entries``) is a
    known difference; any other verdict keeps its word and gains the attribution.
    """
    if finding is None:
        if row.verdict == "fail" and why_not:
            return replace(row, reason=f"{row.reason}; no attribution: {why_not}")
        return row
    if row.verdict == "fail" and finding.first is None and finding.explained is None:
        return replace(row, verdict="pass", attribution=finding.label,
                       reason=f"outside the noise from step {row.step} ({row.tensor}), but "
                              f"{finding.sentence()}")
    if row.verdict == "fail" and finding.first is None and entries:
        return replace(row, verdict="known difference", ledger=" ".join(entries),
                       attribution=finding.label,
                       reason=f"outside the noise, and of the ledger variant, from step "
                              f"{row.step} ({row.tensor}), but {finding.sentence()}")
    if row.verdict in ("fail", "known difference"):
        return replace(row, attribution=finding.label,
                       reason=f"{row.reason}; {finding.sentence()}")
    if finding.first is None and finding.explained is None:  # nothing to attribute
        return replace(row, attribution="within noise")
    return replace(row, attribution=finding.label)

