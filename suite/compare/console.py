"""``suite compare`` on the terminal: a progress bar per worker, then the verdicts and the
timing as tables (or as rows for a program, see suite.rows)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from suite import rows
from suite.compare.results import Run
from suite.rows import Column
from suite.terminal import VERDICT_STYLE, ended


def progress_handler(progress: Progress) -> Callable[[str, dict], None]:
    """Worker events -> one bar per worker (the reference, backends, ledger variants)."""
    tasks: dict[str, int] = {}

    def handle(name: str, event: dict) -> None:
        phase = event.get("phase")
        if phase == "record":  # before any worker starts: what the record will cost
            progress.console.print(event["message"], soft_wrap=True)
        elif phase == "start":
            label = f"{name} ({event['role']})" if event.get("role") != "backend" else name
            tasks[name] = progress.add_task("starting", backend=label, total=None)
        elif phase == "env" and name in tasks:  # building the backend's own environment
            progress.update(tasks[name], description=f"[dim]{event['message'][:60]}[/]")
        elif phase in ("timing", "lockstep", "parts") and name in tasks:
            progress.update(tasks[name], description=phase, completed=event.get("step", 0),
                            total=event.get("total"))
        elif phase == "done" and name in tasks:
            total = progress.tasks[tasks[name]].total or 1
            progress.update(tasks[name], description=ended(event), completed=total,
                            total=total)

    return handle


#: timing.csv's measurements the summary shows, with the table's headers
TIMING_COLUMNS = [Column(key, title=title, justify="right", missing="–") for key, title in (
    ("import_s", "import s"), ("build_s", "build s"), ("first_step_s", "first step s"),
    ("step_ms_median", "step ms (median)"), ("step_ms_iqr", "IQR ms"),
    ("samples_per_s", "samples/s"))] + [Column("threads", table=False)]


def summary_rows(run: Run) -> tuple[list[dict[str, Any]], list[Column]]:
    """One row per backend in run order: its verdict on each check, the reason of its
    first failing check (``check: reason``), and its timing figures. The reference has
    figures but no verdicts; a backend whose timing did not run, verdicts alone."""
    checks = list(dict.fromkeys(row.check for row in run.checks))
    # rows with verdicts carry a reason (None where nothing failed), timed ones the threads
    by_backend: dict[str, dict[str, Any]] = {}
    for row in run.checks:
        found = by_backend.setdefault(row.backend, {"backend": row.backend, "reason": None})
        found[row.check] = row.verdict
        if row.verdict in ("fail", "error") and found["reason"] is None:
            found["reason"] = f"{row.check}: {row.reason}"
    for timing in run.timings:
        found = by_backend.setdefault(timing.backend, {"backend": timing.backend})
        found.update({c.key: getattr(timing, c.key) for c in TIMING_COLUMNS})
    columns = [Column("backend")]
    columns += [Column(check, styles=VERDICT_STYLE) for check in checks]
    columns += [Column("reason", table=False)] if checks else []
    columns += TIMING_COLUMNS if run.timings else []
    order = dict.fromkeys([*run.backends, *by_backend])
    return [by_backend[name] for name in order if name in by_backend], columns


def print_summary(console: Console, run_dir: Path, fmt: str = "table",
                  notes: Console | None = None) -> None:
    """The summary of a run: on a terminal the verdicts (backends x checks), the first
    reason of each failing backend and the timing as tables; else ``fmt``'s rows (see
    summary_rows). Where the report is goes to ``notes`` (default: ``console``)."""
    run = Run(run_dir)
    found, columns = summary_rows(run)
    notes = notes or console
    if fmt != "table":
        rows.write(console, found, columns, fmt)
    else:
        _print_tables(console, found, columns)
    notes.print(f"report: [bold]{run_dir / 'report.html'}[/] (and report.md)")


def _print_tables(console: Console, found: list[dict[str, Any]], columns: list[Column]) -> None:
    timing_keys = {c.key for c in TIMING_COLUMNS}
    checked = [row for row in found if "reason" in row]
    if checked:
        verdicts = [c for c in columns if c.key not in timing_keys]
        console.print(rows.table(checked, verdicts, "Verdicts against the NumPy reference"))
        for row in checked:
            if row["reason"]:
                console.print(Text("  ") + Text(row["backend"], style="red")
                              + Text(f" {row['reason']}"))
    timed = [row for row in found if "threads" in row]
    if timed:
        threads = timed[0]["threads"]
        title = f"Timing ({threads} threads)" if threads else "Timing"
        console.print(rows.table(timed, [Column("backend", justify="right"), *TIMING_COLUMNS],
                                 title))
