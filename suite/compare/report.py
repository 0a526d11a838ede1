"""What a compare run's report says: :func:`build` turns a loaded :class:`Run` into a
:class:`Report` whose every number is already formatted, so that report.md and
report.html (:mod:`suite.compare.render`) say exactly the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from suite import __version__, catalogue, rundir
from suite.compare import determinism, run_tables
from suite.compare.results import LedgerEntry, Run
from suite.record_policy import human_bytes
from suite.report.format import (
    VERDICT_CSS,
    Table,
    component,
    count,
    hyper,
    millis,
    sci,
    seconds,
)
from suite.rundir import REFERENCE_RUNS, SummaryRow

NO_RESULT = "no result"  # a check missing from summary.csv
#: worst first, as suite.rundir.SEVERITY with a missing check after fail: a backend's
#: headline sentence follows its worst
HEADLINE_ORDER = (*rundir.SEVERITY[:2], NO_RESULT, *rundir.SEVERITY[2:])

@dataclass(frozen=True)
class Sentence:
    backend: str
    verdict: str  # CSS key: pass, known, unsupported, fail, error
    text: str  # what follows "<backend>: "


@dataclass(frozen=True)
class Cell:
    verdict: str  # the verdict word
    css: str
    detail: tuple[str, ...]  # lines: ledger entry, first step and tensor, worst vs tolerance


@dataclass(frozen=True)
class Report:
    """What report.md and report.html show, in reading order."""

    title: str
    run_id: str
    created: str
    status: str
    warning: str | None
    facts: tuple[tuple[str, str], ...]
    sentences: tuple[Sentence, ...]
    matrix: tuple[tuple[str, tuple[Cell, ...]], ...]
    tolerances: str
    network: Table
    training: Table
    gradients: Table | None
    gradients_note: str
    timing: Table | None
    lockstep: Table | None
    ledger: tuple[tuple[LedgerEntry, str], ...]  # an entry that applied, its variant's status
    errors: Table | None
    attribution: Table | None
    reproducers: Table | None
    environment: Table
    generated: str
    checks: tuple[str, ...] = tuple(rundir.CHECKS)


def build(run: Run) -> Report:
    """The report's content for a loaded run."""
    meta = run.info
    status = meta.get("status", "complete")
    gradients, gradients_note = _gradients(run)
    warning = None if status == "complete" else (
        f"This run is {status}: some backends or sections may be missing.")
    return Report(
        title=run.spec.get("name") or meta.get("run", run.path.name),
        run_id=meta.get("run", run.path.name), created=meta.get("created", "—"),
        status=status, warning=warning, facts=tuple(_facts(run)),
        sentences=tuple(_sentence(run, name) for name in run.compared),
        matrix=tuple((name, tuple(_cell(c) for c in _checks(run, name)))
                     for name in run.compared),
        tolerances=_tolerances(meta.get("tolerances") or {}),
        network=_network(run.spec), training=_training(run.spec),
        gradients=gradients, gradients_note=gradients_note, timing=_timing(run),
        lockstep=_lockstep(run),
        ledger=tuple(run_tables.ledger_applied(run)),
        errors=run_tables.errors(run), attribution=run_tables.attribution(run),
        reproducers=run_tables.reproducers(run),
        environment=run_tables.environment(run),
        generated=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC by fnn-suite {__version__}",
    )


def _tolerances(limits: dict[str, Any]) -> str:
    """How the run was judged: the comparison's own words, else its settings (a run that
    stopped before the reference ran), else the fixed limits of an older run."""
    if limits.get("description"):
        return limits["description"]
    if "noise_run" in limits:
        return (f"within {limits['noise_factor']:g} x the noise measured by "
                f"{limits['noise_run']}, at least {sci(limits['floor'])}; nothing was "
                "compared")
    relative = [f"{k} {sci(v)}" for k, v in limits.items() if k != "atol"]
    text = ", ".join(relative) + " (relative L2 error)" if relative else "not recorded"
    if "atol" in limits:
        text += f"; a tensor whose largest absolute difference is at most {sci(limits['atol'])} "
        text += "passes whatever its relative error"
    return text


def _facts(run: Run) -> list[tuple[str, str]]:
    spec, meta = run.spec, run.info
    training = spec.get("training", {})
    sizes = [str(spec.get("input_dim", "?"))] + [
        f"{layer['units']} {layer['activation']['name']}" for layer in spec.get("layers", [])]
    steps = f"{meta.get('steps', '—')} ({training.get('epochs', '?')} epochs, " \
            f"batch size {training.get('batch_size', '?')}"
    if training.get("max_steps"):
        steps += f", capped at {training['max_steps']} steps"
    backends = [f"{run.reference} (reference)"] + run.compared
    return [
        ("Spec", f"{run.spec.get('name', '—')}: {' → '.join(sizes)}"),
        ("Data", _data(meta.get("data") or {})),
        ("Dtype", f"{run.dtype} on {meta.get('device', 'cpu')}, {meta.get('threads', '?')} "
                  f"threads, seed {meta.get('seed', training.get('seed', '?'))}"),
        ("Steps", steps + ")"),
        ("Recorded", _recorded(meta.get("record"))),
        ("Backends", ", ".join(backends)),
        *_determinism(run.determinism),
    ]


def _determinism(found: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """The fact "Determinism" of a run made with --repeat: backends grouped by what their
    repeated lockstep runs showed."""
    if not found:
        return []
    groups: dict[str, list[str]] = {}
    for name, entry in found.items():
        groups.setdefault(determinism.describe(entry), []).append(name)
    return [("Determinism", "; ".join(f"{', '.join(names)}: {text}"
                                      for text, names in groups.items()))]


def _recorded(record: dict[str, Any] | None) -> str:
    """Which steps the lockstep record kept (a run before records had a policy kept all)."""
    if not record:
        return "every step: losses, gradients and parameters"
    return (f"gradients and parameters at {record['description']}; the loss at every "
            f"step. Record: {human_bytes(record['estimate_bytes'])} at most (budget "
            f"{human_bytes(record['budget_bytes'])})")


def _data(data: dict[str, Any]) -> str:
    if not data:
        return "—"
    source = f" ({data['source']})" if data.get("source") else ""
    shape = f"{count(data.get('n_samples'))} samples × {data.get('n_features', '?')} features"
    outputs = data.get("n_outputs", "?")
    target = (f"{data['n_classes']} classes" if data.get("n_classes")
              else f"{outputs} output{'' if outputs == 1 else 's'} ({data.get('target_kind')})")
    scaled = ", standardized" if data.get("standardized") else ""
    return f"{data.get('name', '?')}{source}: {shape} → {target}{scaled}"


def _checks(run: Run, name: str) -> list[SummaryRow]:
    """One summary row per check; a backend that never ran gets its status as verdict."""
    found = {c.check: c for c in run.checks if c.backend == name}
    info = run.backends[name]
    missing = info.status if info.status in ("error", "unsupported") else NO_RESULT
    return [found.get(check, SummaryRow(name, check, missing, reason=info.reason))
            for check in rundir.CHECKS]


def _cell(check: SummaryRow) -> Cell:
    css = VERDICT_CSS.get(check.verdict, "error")
    if check.verdict in ("error", "unsupported", NO_RESULT):
        return Cell(check.verdict, css, ())
    lines = [check.ledger] if check.ledger else []
    if check.step is not None:
        lines.append(f"from step {check.step}")
        lines += [tensor_label(check.tensor)] if check.tensor else []
    lines.append(f"worst {_versus(check.rel_l2_error, check.tolerance)}")
    if check.attribution and check.attribution != "within noise":
        lines.append(f"attribution: {check.attribution}")
    return Cell(check.verdict, css, tuple(lines))


def tensor_label(tensor: str | None) -> str:
    """summary.csv names a tensor as "<kind> <tensor>": "loss loss" reads as "loss"."""
    if not tensor:
        return ""
    kind, _, name = tensor.partition(" ")
    return name if name in ("loss", "outputs") else tensor


def _versus(error: float | None, tolerance: float | None) -> str:
    """``3.0e-04 > 1.0e-04``; a pass above its tolerance passed on the absolute floor."""
    if error is None or tolerance is None:
        return sci(error)
    return f"{sci(error)} {'≤' if error <= tolerance else '>'} {sci(tolerance)}"


def _first(checks: list[SummaryRow]) -> SummaryRow:
    return min(checks, key=lambda c: (c.step if c.step is not None else math.inf))


def _sentence(run: Run, name: str) -> Sentence:
    info, checks = run.backends[name], _checks(run, name)
    if info.status in ("error", "unsupported"):
        return Sentence(name, VERDICT_CSS[info.status], f"{info.status} — {info.reason or '?'}")
    for verdict in HEADLINE_ORDER:
        hit = [c for c in checks if c.verdict == verdict]
        if hit:
            return Sentence(name, VERDICT_CSS[verdict], SENTENCES[verdict](hit, checks))
    return Sentence(name, "unsupported", "no checks recorded")


def _failed(hit: list[SummaryRow], checks: list[SummaryRow]) -> str:
    first = _first(hit)
    names = ", ".join(c.check for c in hit)
    worst = max(hit, key=lambda c: c.rel_l2_error or 0.0)
    return (f"fail on {names}: out of tolerance from step {first.step} "
            f"({tensor_label(first.tensor)}), worst {sci(worst.rel_l2_error)} vs tolerance "
            f"{sci(worst.tolerance)}")


def _known(hit: list[SummaryRow], checks: list[SummaryRow]) -> str:
    first = _first(hit)
    ids = ", ".join(dict.fromkeys(i for c in hit for i in (c.ledger or "?").split()))
    return f"known difference ({ids}) from step {first.step} in {', '.join(c.check for c in hit)}"


SENTENCES: dict[str, Callable[[list[SummaryRow], list[SummaryRow]], str]] = {
    "error": lambda hit, _: f"error in {', '.join(c.check for c in hit)} — {hit[0].reason}",
    "fail": _failed,
    NO_RESULT: lambda hit, _: f"no result recorded for {', '.join(c.check for c in hit)}",
    "known difference": _known,
    "unsupported": lambda hit, _: (f"pass; {', '.join(c.check for c in hit)} unsupported — "
                                   f"{hit[0].reason}"),
    "pass": lambda hit, _: "pass on all checks",
}


def _network(spec: dict[str, Any]) -> Table:
    rows, fan_in = [], spec.get("input_dim", 0)
    for i, layer in enumerate(spec.get("layers", [])):
        l2 = (layer.get("kernel_regularizer") or {}).get("l2")
        units = layer["units"]
        rows.append((f"dense_{i}", f"{fan_in} → {units}", component(layer["activation"]),
                     layer.get("kernel_initializer", "—"), layer.get("bias_initializer", "—"),
                     hyper(l2) if l2 else "—", count(fan_in * units + units)))
        fan_in = units
    return Table(("layer", "shape", "activation", "kernel init", "bias init", "L2", "params"),
                 tuple(rows), (False, True, False, False, False, True, True))


def _training(spec: dict[str, Any]) -> Table:
    loss = spec.get("loss") or {}
    fused = catalogue.FUSED_OUTPUT.get(loss.get("name", ""))
    how = f"from logits, {fused} fused into the loss" if fused else "on the outputs"
    training = spec.get("training", {})
    order = "shuffled each epoch" if training.get("shuffle") else "in file order"
    total = sum(int(r[-1].replace(",", "")) for r in _network(spec).rows)
    return Table(("setting", "value"), (
        ("loss", f"{component(loss)}; {how}; mean over the batch"),
        ("optimizer", component(spec.get("optimizer"))),
        ("batches", f"{training.get('batch_size', '?')} samples, {order}"),
        ("parameters", count(total)),
    ))


def _gradients(run: Run) -> tuple[Table | None, str]:
    """Relative L2 error of each gradient tensor at the first step and the worst over steps.

    Returns the table (one row per tensor, two columns per backend) and a note naming the
    tolerances.
    """
    grads = run.comparison[run.comparison["kind"] == "grad"]
    grads = grads[grads["backend"].isin(run.compared)].dropna(subset=["rel_l2_error"])
    if grads.empty:
        return None, ""
    names = [n for n in run.compared if (grads["backend"] == n).any()]
    first_step = grads["step"].min()
    rows = []
    for tensor, group in grads.groupby("tensor", sort=False):
        row = [str(tensor)]
        for name in names:
            mine = group[group["backend"] == name]
            first = mine[mine["step"] == first_step]["rel_l2_error"]
            worst = mine.loc[mine["rel_l2_error"].idxmax()] if not mine.empty else None
            row.append(sci(first.iloc[0]) if not first.empty else "—")
            row.append("—" if worst is None else
                       f"{sci(worst['rel_l2_error'])} (step {int(worst['step'])})")
        rows.append(tuple(row))
    header = ["tensor"] + [f"{n} {what}" for n in names for what in (f"step {first_step}",
                                                                        "worst")]
    first_tol = grads[grads["step"] == first_step]["tolerance"].max()
    later = grads[grads["step"] != first_step]["tolerance"]
    note = f"Tolerance at step {first_step}: {sci(first_tol)}" + (
        f"; at later steps: {sci(later.max())}." if not later.empty else ".")
    return Table(tuple(header), tuple(rows), (False,) + (True,) * (2 * len(names))), note


def _timing(run: Run) -> Table | None:
    if not run.timings:
        return None
    rows = tuple((t.backend, count(t.threads), seconds(t.import_s), seconds(t.build_s),
                  seconds(t.first_step_s), millis(t.step_ms_median), millis(t.step_ms_iqr),
                  count(t.samples_per_s), millis(t.predict_ms), count(t.steps_timed),
                  t.status or "—") for t in run.timings)
    return Table(("backend", "threads", "import", "build", "first step", "step median",
                  "step IQR", "samples/s", "predict", "steps timed", "status"),
                 rows, (False,) + (True,) * 9 + (False,))


def _lockstep(run: Run) -> Table | None:
    """Training against the lockstep run's own overhead, per backend."""
    rows = []
    for name, info in run.backends.items():
        if info.role in REFERENCE_RUNS or info.lockstep_train_s is None or not info.lockstep_steps:
            continue
        train, export, steps = info.lockstep_train_s, info.lockstep_export_s or 0.0, \
            info.lockstep_steps
        rows.append((name, count(steps), seconds(train), millis(1e3 * train / steps),
                     seconds(export), millis(1e3 * export / steps),
                     f"{export / train:.1f}×" if train else "—"))
    if not rows:
        return None
    return Table(("backend", "steps", "training", "per step", "export overhead", "per step",
                  "overhead / training"), tuple(rows), (False,) + (True,) * 6)
