"""``suite compare`` on the terminal: a progress bar per worker, then the verdicts and the
timing as tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from suite.compare.results import Run
from suite.terminal import VERDICT_STYLE, ended, figure


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
        elif phase in ("timing", "lockstep") and name in tasks:
            progress.update(tasks[name], description=phase, completed=event.get("step", 0),
                            total=event.get("total"))
        elif phase == "done" and name in tasks:
            total = progress.tasks[tasks[name]].total or 1
            progress.update(tasks[name], description=ended(event), completed=total,
                            total=total)

    return handle


def print_summary(console: Console, run_dir: Path) -> None:
    """The verdicts (backends x checks), the first reason of each failing backend, the
    timing table, and where the report is."""
    run = Run(run_dir)
    summary = run.summary
    if not summary.empty:
        table = Table(title="Verdicts against the NumPy reference")
        checks = list(dict.fromkeys(summary.check))
        table.add_column("backend")
        for check in checks:
            table.add_column(check)
        for backend, rows in summary.groupby("backend", sort=False):
            cells = []
            for check in checks:
                verdict = rows[rows.check == check].verdict.iloc[0]
                cells.append(f"[{VERDICT_STYLE.get(verdict, '')}]{verdict}[/]")
            table.add_row(backend, *cells)
        console.print(table)
        problems = summary[summary.verdict.isin(["fail", "error"])]
        for _, row in problems.drop_duplicates("backend").iterrows():
            console.print(f"  [red]{row.backend}[/] {row.check}: {row.reason}")
    timing = run.timing
    if not timing.empty and "step_ms_median" in timing:
        table = Table(title=f"Timing ({int(timing.threads.iloc[0])} threads)")
        for column in ("backend", "import s", "build s", "first step s", "step ms (median)",
                       "IQR ms", "samples/s"):
            table.add_column(column, justify="right")
        for _, row in timing.iterrows():
            table.add_row(row.backend, *(figure(row[c]) for c in (
                "import_s", "build_s", "first_step_s", "step_ms_median", "step_ms_iqr",
                "samples_per_s")))
        console.print(table)
    console.print(f"report: [bold]{run_dir / 'report.html'}[/] (and report.md)")

