"""Compare every backend against the reference, step by step, tensor by tensor.

Reads a run directory (workers/<backend>.json, its record, the parts runs) and builds
the tables: losses, comparison (per backend, step, tensor), summary (a verdict per
backend and check, suite.compare.verdicts), timing and parts, with the columns of
:mod:`suite.rundir`. Pure data in, pandas out; ``write_tables`` stores them.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from suite import ledger, rundir
from suite import record as record_files
from suite.compare import noise
from suite.compare.distance import RunningSize, max_abs_diff, rel_l2_error, stored_rounding
from suite.compare.lockstep import Lockstep
from suite.compare.noise import FIXED_TOLERANCES, Baseline
from suite.compare.verdicts import Parts, Twin, optimizer_label, table, verdicts
from suite.files import atomic_write_text, read_json
from suite.rundir import (
    COMPARISON_COLUMNS,
    LOSS_COLUMNS,
    PARTS_COLUMNS,
    REFERENCE,
    REFERENCE_RUNS,
    SUMMARY_COLUMNS,
    TIMING_COLUMNS,
    BackendEntry,
    ComparisonRow,
    PartsRow,
    SummaryRow,
    TimingRow,
    noise_name,
    twin_name,
    variant_name,
)
from suite.spec import Spec, from_dict


def tensor_names(spec: Spec) -> list[str]:
    return [f"dense_{i}/{p}" for i in range(len(spec.layers)) for p in ("kernel", "bias")]

def compare_lockstep(backend: Lockstep, baseline: Baseline, variant: Lockstep | None,
                     tensors: list[str], repeat: Lockstep | None = None
                     ) -> list[ComparisonRow]:
    """One row per step, kind and tensor: the backend's error against the baseline, the
    noise there, and its error against the ledger variant (suite.compare.noise), each
    relative to the largest the baseline's tensor has been so far (RunningSize).

    ``repeat``, the backend's own lockstep run made again (--repeat) where it was not
    bit-identical: its distance to the first run joins the noise (the larger of the two).
    """
    rows = []
    baseline = baseline.fresh()  # this backend's own noise envelope
    base, noise_run = baseline.base, baseline.noise
    size = RunningSize()

    def add(step, kind, tensor, value, reference, noise_value, variant_value,
            floor_scale=1.0, again=None):
        value = np.asarray(value, np.float64)
        reference = np.asarray(reference, np.float64)
        if value.shape != reference.shape:
            raise ValueError(f"{kind} {tensor} at step {step} has shape {value.shape}, "
                             f"expected {reference.shape}")
        scale = size((kind, tensor), reference)
        max_abs = max_abs_diff(value, reference)
        error = rel_l2_error(value, reference, scale)
        measured = (rel_l2_error(noise_value, reference, scale) if noise_value is not None
                    else math.nan)
        if again is not None:  # NOTE: the backend's run-to-run spread is noise too
            spread = rel_l2_error(again, value, scale)
            measured = spread if math.isnan(measured) else max(measured, spread)
        noise, limit = baseline.tolerance(step, kind, tensor, measured, floor_scale)
        within = bool(error <= limit or max_abs <= baseline.atol)
        vs_variant = (rel_l2_error(value, np.asarray(variant_value, np.float64), scale)
                      if variant_value is not None else math.nan)
        # NOTE: closer to the variant than to the baseline by more than the noise: the
        # ledger entry changes this number, even where it is within the tolerance
        margin = max(noise, baseline.floor() * floor_scale) if baseline.measured else limit
        favours = bool(vs_variant + margin < error) if variant_value is not None else False
        rows.append(ComparisonRow(backend.name, step, kind, tensor, max_abs, error, noise,
                                  limit, within, vs_variant, favours,
                                  bool(np.all(np.isfinite(value)))))

    def update(run: Lockstep | None, tensor: str):
        """The first update of ``tensor``: its parameters after step 0 minus before."""
        if run is None:
            return None
        return np.asarray(run.params[f"0/{tensor}"], np.float64) - baseline.initial[tensor]

    def loss(run: Lockstep | None, step: int):
        return run.losses[step] if run is not None and step < len(run.losses) else None

    if backend.outputs is not None and base.outputs is not None:
        add(0, "output", "outputs", backend.outputs, base.outputs,
            noise_run.outputs if noise_run else None, variant.outputs if variant else None,
            again=repeat.outputs if repeat else None)
    steps = min(len(backend.losses), len(base.losses))
    # NOTE: steps in order, so that each record reads each of its shards once, and each
    # tensor's noise envelope grows step by step
    recorded = set(backend.record.steps) & set(base.record.steps)
    for step in range(steps):
        add(step, "loss", "loss", backend.losses[step], base.losses[step],
            loss(noise_run, step), loss(variant, step), again=loss(repeat, step))
        if step not in recorded:
            continue
        for kind, store in (("grad", "grads"), ("param", "params")):
            for tensor in tensors:
                key = f"{step}/{tensor}"
                add(step, kind, tensor, getattr(backend, store)[key],
                    getattr(base, store)[key],
                    getattr(noise_run, store).get(key) if noise_run else None,
                    getattr(variant, store).get(key) if variant else None,
                    again=getattr(repeat, store).get(key) if repeat else None)
        if step == 0:
            for tensor in tensors:
                delta = update(base, tensor)
                add(0, "update", tensor, update(backend, tensor), delta,
                    update(noise_run, tensor), update(variant, tensor),
                    stored_rounding(base.params[f"0/{tensor}"], float(np.linalg.norm(delta))),
                    update(repeat, tensor))
    return rows

@dataclass
class Tables:
    losses: pd.DataFrame
    comparison: pd.DataFrame
    summary: pd.DataFrame
    timing: pd.DataFrame
    parts: pd.DataFrame
    noise: str = ""  # how the tolerances were set (suite.compare.noise.describe, or why not)


def usable_noise_run(run: Lockstep | None, reference: Lockstep) -> tuple[Lockstep | None, str]:
    """The noise run if it ran every step the reference ran, else None and why not."""
    if run is None:
        return None, "no noise run"
    if run.result.get("status") != "ok" or len(run.losses) < len(reference.losses):
        return None, f"the noise run failed: {run.result.get('reason') or 'it stopped early'}"
    return run, ""


def build_tables(run_dir: Path) -> Tables:
    run = read_json(run_dir / rundir.RUN_JSON)
    spec = from_dict(run["spec"], source="run.json")
    dtype = spec.training.dtype
    entries = {name: BackendEntry.from_dict(raw) for name, raw in run["backends"].items()}
    loaded: dict[str, Lockstep] = {}
    damaged: dict[str, str] = {}  # a backend whose files cannot be read -> which and why
    for name, entry in entries.items():
        if entry.role != "parts" and rundir.worker_result(run_dir, name).exists():
            try:
                loaded[name] = Lockstep.load(run_dir, name)
            except record_files.DamagedRecord as exc:
                damaged[name] = str(exc)
    ref = loaded.get(REFERENCE)
    reference_ran = (ref is not None and ref.result.get("status") in ("ok", "error")
                     and bool(ref.losses))
    if REFERENCE in damaged:
        entries[REFERENCE].reason = damaged[REFERENCE]
    baseline, how = None, ""
    if reference_ran:
        noise_run, why = usable_noise_run(loaded.get(noise_name(dtype)), ref)
        why = damaged.get(noise_name(dtype), why)
        baseline = Baseline.of(ref, noise_run, dtype, _initial_params(run_dir))
        fixed = FIXED_TOLERANCES[dtype]
        how = noise.describe(dtype) if baseline.measured else (
            f"{why}: fixed tolerances, step 0 {fixed['step']:.1e} and later steps "
            f"{fixed['trajectory']:.1e} (relative L2 error); a tensor whose largest absolute "
            f"difference is at most {fixed['atol']:.1e} passes whatever its relative error")
    comparison: list[ComparisonRow] = []
    summary: list[SummaryRow] = []
    parts_rows: list[PartsRow] = []
    for name, entry in entries.items():
        # An unavailable backend never ran (run.json and the report say why): no verdicts.
        if entry.role != "backend" or entry.status == "unavailable":
            continue
        status = entry.status
        reason = loaded[name].result.get("reason") if name in loaded else entry.reason
        if name in damaged or variant_name(name) in damaged:
            status, reason = "error", damaged.get(name) or damaged[variant_name(name)]
        rows: list[ComparisonRow] = []
        if not reference_ran:
            why = entries[REFERENCE].reason if REFERENCE in entries else None
            status = status if status == "unsupported" else "error"
            reason = reason or f"reference failed: {why or 'reference did not run'}"
        elif name in loaded and status != "unsupported":
            repeat = None
            try:
                repeat = Lockstep.repeat_of(run_dir, loaded[name])
                rows = compare_lockstep(loaded[name], baseline, _variant(loaded, name),
                                        tensor_names(spec), repeat)
            except record_files.DamagedRecord as exc:
                status, reason = "error", str(exc)
            except (KeyError, ValueError) as exc:
                status, reason = "error", f"bad result: {exc}"
            finally:
                loaded[name].record.close()
                if repeat is not None:
                    repeat.record.close()
        comparison += rows
        applicable = [e.id for e in ledger.applicable(spec, name)]
        parts = Parts.load(run_dir, name, dtype) if rows else None
        parts_rows += parts.rows if parts else []
        twin = _twin(loaded, spec, name, baseline) if rows else None
        summary += verdicts(name, rows, status, reason, applicable, optimizer_label(spec),
                            parts, twin)
    return Tables(
        losses=_losses(loaded, entries),
        comparison=table(comparison, COMPARISON_COLUMNS),
        summary=table(summary, SUMMARY_COLUMNS),
        timing=_timing(loaded, entries, run["threads"]),
        parts=table(parts_rows, PARTS_COLUMNS),
        noise=how,
    )


def summary_rows(run_dir: Path) -> list[SummaryRow] | None:
    """The verdicts so far, as rows, for deciding the runs still to make; None where the
    tables cannot be built yet (made at the end, they will name what cannot be read)."""
    try:
        summary = build_tables(run_dir).summary
    except (OSError, ValueError, KeyError, record_files.DamagedRecord):
        return None
    return [rundir.row_from_cells(SummaryRow, cells) for cells in summary.to_dict("records")]


def _variant(loaded: dict[str, Lockstep], name: str) -> Lockstep | None:
    """``name``'s ledger variant if it finished (a failed one explains nothing)."""
    run = loaded.get(variant_name(name))
    return run if run is not None and run.result.get("status") == "ok" else None


def _twin(loaded: dict[str, Lockstep], spec: Spec, name: str, baseline: Baseline
          ) -> Twin | None:
    """``name``'s twin judged as a backend of its own, or None where it has none that
    finished (suite.ledger.twins)."""
    run = loaded.get(twin_name(name))
    if run is None or run.result.get("status") != "ok":
        return None
    try:
        rows = compare_lockstep(run, baseline, _variant(loaded, name),
                                tensor_names(spec))
    except (record_files.DamagedRecord, KeyError, ValueError):
        return None
    finally:
        run.record.close()
    applicable = [e.id for e in ledger.applicable(spec, name)]
    checks = verdicts(twin_name(name), rows, "ok", None, applicable, optimizer_label(spec))
    return Twin([e.id for e in ledger.twins(spec, name)], ledger.twin_env_for(spec, name),
                {row.check: row for row in checks})


def _initial_params(run_dir: Path) -> dict[str, np.ndarray]:
    path = run_dir / "initial_params.npz"
    try:
        with np.load(path) as stored:
            return {key: np.asarray(stored[key], np.float64) for key in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise record_files.DamagedRecord(f"cannot read the initial parameters ({exc})",
                                         where=str(path)) from None


def _losses(loaded: dict[str, Lockstep], entries: dict[str, BackendEntry]) -> pd.DataFrame:
    rows = []
    for name, run in loaded.items():
        if entries[name].role in REFERENCE_RUNS:
            continue
        rows += [(name, epoch, step, loss)
                 for step, (epoch, loss) in enumerate(zip(run.epochs, run.losses, strict=False))]
    return pd.DataFrame(rows, columns=LOSS_COLUMNS)


def _timing(loaded: dict[str, Lockstep], entries: dict[str, BackendEntry],
            threads: int) -> pd.DataFrame:
    rows = []
    for name, entry in entries.items():
        if entry.role in REFERENCE_RUNS or name not in loaded:
            continue
        result = loaded[name].result
        timing = result.get("timing")
        if timing is None:
            continue
        measured = {k: timing.get(k) for k in TIMING_COLUMNS
                    if k not in ("backend", "threads", "import_s")}
        rows.append(TimingRow(backend=name, threads=threads, import_s=result.get("import_s"),
                              **measured))
    return table(rows, TIMING_COLUMNS)


def applied_entries(summary: pd.DataFrame) -> list[dict]:
    """The ledger entries behind the known differences among ``summary`` (rows with
    backend, verdict and ledger), each with the backends it applied to."""
    used: dict[str, list[str]] = {}
    for row in summary[summary.verdict == "known difference"].itertuples():
        for entry_id in row.ledger.split():
            backends = used.setdefault(entry_id, [])
            if row.backend not in backends:
                backends.append(row.backend)
    return [{**ledger.by_id(i).to_dict(), "applied_to": b} for i, b in used.items()]


def write_tables(run_dir: Path, tables: Tables) -> None:
    for name in rundir.TABLES:
        atomic_write_text(run_dir / f"{name}.csv", getattr(tables, name).to_csv(index=False))
