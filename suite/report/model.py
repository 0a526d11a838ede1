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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from suite import __version__, catalogue
from suite.errors import UserError
from suite.results import read_table

CHECKS = ("forward", "loss", "gradients", "update", "trajectory")
# Worst first: a backend's headline sentence follows its worst verdict. "no result" is
# not a verdict the harness writes: it marks a check missing from summary.csv.
SEVERITY = ("error", "fail", "no result", "known difference", "unsupported", "pass")
CSS = {"pass": "pass", "known difference": "known", "unsupported": "unsupported",
       "fail": "fail", "error": "error", "no result": "missing"}
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
    lockstep_train_s: float | None = None
    lockstep_export_s: float | None = None
    lockstep_steps: int | None = None
    runtime: dict[str, Any] = field(default_factory=dict)  # its threads and precision


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
        """Backends checked against the reference, in run.json's order (an unavailable one
        never ran: the errors table says why)."""
        return [n for n, b in self.backends.items()
                if b.role == "backend" and b.status != "unavailable"]


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
        timing_status=raw.get("timing_status"), timing_reason=raw.get("timing_reason"),
        lockstep_train_s=raw.get("lockstep_train_s"),
        lockstep_export_s=raw.get("lockstep_export_s"), lockstep_steps=raw.get("lockstep_steps"),
        runtime=dict(raw.get("runtime") or {}))


def _ledger(raw: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        id=raw.get("id", "?"), title=raw.get("title", ""),
        feature=", ".join(raw.get("features", ())),
        reference=raw.get("reference", ""), backend=raw.get("backend", ""),
        source=raw.get("source", ""),
        applied_to=tuple(raw.get("applied_to", raw.get("backends")) or ()))


def _table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A CSV table, or an empty one with the contract's columns when absent or empty."""
    try:
        frame = read_table(path)
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
    if value is None or math.isnan(value):
        return "—"
    return "0" if value == 0 else f"{value:.1e}"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f} s" if value >= 1 else millis(value * 1e3)


def millis(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.3g} ms"


def number(value: Any) -> float | None:
    """A float, or None for a missing value (None, or NaN as pandas reads an empty cell)."""
    return None if value is None or pd.isna(value) else float(value)


def ratio(value: Any) -> str:
    value = number(value)
    return "—" if value is None else f"{value:.2f}×"


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


# ---------------------------------------------------------------------------- report content


@dataclass(frozen=True)
class Table:
    """Rows of formatted cells; ``numeric`` marks right-aligned columns."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()


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
    environment: Table
    generated: str
    checks: tuple[str, ...] = CHECKS


def build(run: Run) -> Report:
    """The report's content for a loaded run."""
    meta = run.meta
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
        ledger=tuple(_ledger_applied(run)),
        errors=_errors(run), environment=_environment(run),
        generated=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC by fnn-suite {__version__}",
    )


def _tolerances(limits: dict[str, float]) -> str:
    relative = [f"{k} {sci(v)}" for k, v in limits.items() if k != "atol"]
    text = ", ".join(relative) + " (relative L2 error)" if relative else "not recorded"
    if "atol" in limits:
        text += f"; a tensor whose largest absolute difference is at most {sci(limits['atol'])} "
        text += "passes whatever its relative error"
    return text


def _facts(run: Run) -> list[tuple[str, str]]:
    spec, meta = run.spec, run.meta
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
        ("Backends", ", ".join(backends)),
    ]


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


def _checks(run: Run, name: str) -> list[Check]:
    """One Check per check name; a backend that never ran gets its status as verdict."""
    found = {c.check: c for c in run.checks if c.backend == name}
    info = run.backends[name]
    missing = info.status if info.status in ("error", "unsupported") else "no result"
    return [found.get(check, Check(name, check, missing, reason=info.reason))
            for check in CHECKS]


def _cell(check: Check) -> Cell:
    css = CSS.get(check.verdict, "error")
    if check.verdict in ("error", "unsupported", "no result"):
        return Cell(check.verdict, css, ())
    lines = [check.ledger] if check.ledger else []
    if check.step is not None:
        lines.append(f"from step {check.step}")
        lines += [tensor_label(check.tensor)] if check.tensor else []
    lines.append(f"worst {_versus(check.rel_l2_error, check.tolerance)}")
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


def _first(checks: list[Check]) -> Check:
    return min(checks, key=lambda c: (c.step if c.step is not None else math.inf))


def _sentence(run: Run, name: str) -> Sentence:
    info, checks = run.backends[name], _checks(run, name)
    if info.status in ("error", "unsupported"):
        return Sentence(name, CSS[info.status], f"{info.status} — {info.reason or '?'}")
    for verdict in SEVERITY:
        hit = [c for c in checks if c.verdict == verdict]
        if hit:
            return Sentence(name, CSS[verdict], SENTENCES[verdict](hit, checks))
    return Sentence(name, "unsupported", "no checks recorded")


def _failed(hit: list[Check], checks: list[Check]) -> str:
    first = _first(hit)
    names = ", ".join(c.check for c in hit)
    worst = max(hit, key=lambda c: c.rel_l2_error or 0.0)
    return (f"fail on {names}: out of tolerance from step {first.step} "
            f"({tensor_label(first.tensor)}), worst {sci(worst.rel_l2_error)} vs tolerance "
            f"{sci(worst.tolerance)}")


def _known(hit: list[Check], checks: list[Check]) -> str:
    first = _first(hit)
    ids = ", ".join(dict.fromkeys(i for c in hit for i in (c.ledger or "?").split()))
    return f"known difference ({ids}) from step {first.step} in {', '.join(c.check for c in hit)}"


SENTENCES: dict[str, Callable[[list[Check], list[Check]], str]] = {
    "error": lambda hit, _: f"error in {', '.join(c.check for c in hit)} — {hit[0].reason}",
    "fail": _failed,
    "no result": lambda hit, _: f"no result recorded for {', '.join(c.check for c in hit)}",
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
    for info in run.backends.values():
        if info.role == "variant" or info.lockstep_train_s is None or not info.lockstep_steps:
            continue
        train, export, steps = info.lockstep_train_s, info.lockstep_export_s or 0.0, \
            info.lockstep_steps
        rows.append((info.name, count(steps), seconds(train), millis(1e3 * train / steps),
                     seconds(export), millis(1e3 * export / steps),
                     f"{export / train:.1f}×" if train else "—"))
    if not rows:
        return None
    return Table(("backend", "steps", "training", "per step", "export overhead", "per step",
                  "overhead / training"), tuple(rows), (False,) + (True,) * 6)


def _ledger_applied(run: Run) -> list[tuple[LedgerEntry, str]]:
    """Entries that applied to some backend, each with how its variant reference ran.

    A variant is named ``<reference>~<suffix>``; the suffix may be the entry's id or the
    backend whose conventions it follows, so both are looked for.
    """
    variants = [b for b in run.backends.values() if b.role == "variant"]
    found = []
    for entry in run.ledger:
        if not entry.applied_to:
            continue
        mine = [b for b in variants
                if b.name.partition("~")[2] in (entry.id, *entry.applied_to)]
        notes = [f"variant reference {b.name}: {b.status}" + (f" ({b.reason})" if b.reason
                                                                else "") for b in mine]
        found.append((entry, "; ".join(notes) or "no variant reference run"))
    return found


def _errors(run: Run) -> Table | None:
    """Backends that did not run, checks that crashed, timing runs that failed."""
    ok = [b for b in run.backends.values() if b.status == "ok"]
    rows = [(b.name, "lockstep run", b.status, b.reason or "—") for b in run.backends.values()
            if b.status != "ok"]
    rows += [(c.backend, f"check {c.check}", c.verdict, c.reason or "—") for c in run.checks
             if c.verdict == "error" and c.backend in {b.name for b in ok}]
    timed = {t.backend: t for t in run.timings}
    for info in ok:
        row = timed.get(info.name, Timing(info.name))
        status = row.status or info.timing_status
        if status not in (None, "ok", "off"):
            rows.append((info.name, "timing run", status,
                         row.reason or info.timing_reason or "—"))
    return Table(("backend", "where", "status", "reason"), tuple(rows)) if rows else None


def _thread_rows(run: Run) -> list[tuple[str, str]]:
    """The thread variables the harness set, and each backend's own thread and matmul
    precision settings as it reported them."""
    rows = []
    if run.meta.get("thread_environment"):
        rows.append(("thread environment", ", ".join(
            f"{k}={v}" for k, v in run.meta["thread_environment"].items())))
    rows += [(f"threads and precision ({info.name})",
              ", ".join(f"{k}={v}" for k, v in info.runtime.items()))
             for info in run.backends.values() if info.runtime and info.role != "variant"]
    return rows


def _environment(run: Run) -> Table:
    env, meta = run.meta.get("environment", {}), run.meta
    rows = [("Python", env.get("python", "—")), ("NumPy", env.get("numpy", "—"))]
    for info in run.backends.values():
        if info.role == "variant":
            continue
        for package, version in info.versions.items():
            row = (f"{package} ({info.name})" if package != info.name else package, version)
            if row not in rows and not (package == "numpy" and version == env.get("numpy")):
                rows.append(row)
    rows += [
        ("platform", env.get("platform", "—")),
        ("CPU", f"{env.get('cpu', '—')} ({env.get('cpu_count', '?')} cores)"),
        ("threads", str(meta.get("threads", "—"))),
        *_thread_rows(run),
        ("seed", str(meta.get("seed", "—"))),
        ("dtype", run.dtype), ("device", str(meta.get("device", "—"))),
        ("run", f"{meta.get('run', run.path.name)}, created {meta.get('created', '—')}, "
                f"fnn-suite {meta.get('suite_version', '—')}"),
    ]
    return Table(("item", "value"), tuple(rows))
