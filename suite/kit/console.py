"""The kit on a terminal: progress while workers run, then the matrix and what failed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from suite.kit.matrix import (
    SHORT_DTYPE,
    SYMBOLS,
    by_probe,
    counts,
    probe_verdicts,
    unsupported_reasons,
)
from suite.kit.runner import KitResult
from suite.terminal import VERDICT_STYLE


def progress_handler(bar: Progress) -> Callable[[str, dict], None]:
    """Worker events -> one bar per worker (the reference, then each backend)."""
    tasks: dict[str, int] = {}

    def handle(name: str, event: dict) -> None:
        phase = event.get("phase")
        if phase == "start":
            tasks[name] = bar.add_task("probes", backend=name, total=event.get("total"))
        elif phase == "kit" and name in tasks:
            bar.update(tasks[name], completed=event["step"], total=event["total"])
        elif phase == "done" and name in tasks:
            ok = event.get("status") == "ok"
            text = "[green]done[/]" if ok else f"[red]{event.get('status')}[/]: " + str(
                event.get("reason") or "")
            bar.update(tasks[name], description=text)

    return handle


def print_result(console: Console, result: KitResult, written: list[Path]) -> None:
    verdicts = probe_verdicts(result)
    dtypes = result.options.dtypes
    backends = result.backends()
    # Words while they fit; symbols (with a legend) for many backends on a narrow terminal.
    words = len(backends) * len(dtypes) * 20 + 40 <= console.width
    table = Table(title="Conformance against the NumPy reference", title_justify="left")
    table.add_column("probe", no_wrap=True)
    for backend in backends:
        for dtype in dtypes:
            header = f"{backend}\n{dtype}" if words else f"{backend}\n{SHORT_DTYPE[dtype]}"
            table.add_column(header, justify="center", overflow="fold")
    for probe, cells in by_probe(verdicts).items():
        row = []
        for backend in backends:
            for dtype in dtypes:
                v = cells.get((backend, dtype))
                text = (f"{SYMBOLS[v.verdict]} {v.verdict}" if words else SYMBOLS[v.verdict]
                        ) if v else ""
                row.append(f"[{VERDICT_STYLE[v.verdict]}]{text}[/]" if v else "")
        table.add_row(probe, *row)
    console.print(table)
    if not words:
        console.print("  ".join(f"[{VERDICT_STYLE[k]}]{s} {k}[/]" for k, s in SYMBOLS.items()))
    for backend in backends:
        total = counts([v for v in verdicts if v.backend == backend])
        console.print(f"[bold]{backend}[/]: " + ", ".join(
            f"[{VERDICT_STYLE[k]}]{n} {k}[/]" for k, n in total.items() if n))
    for backend, reasons in unsupported_reasons(result).items():
        for reason in reasons:
            console.print(f"  [dim]unsupported {backend}: {reason}[/]", soft_wrap=True,
                          highlight=False)
    problems: dict[tuple[str, str, str], list[str]] = {}
    for v in verdicts:
        if v.verdict in ("fail", "error"):
            where = f"{v.probe} {SHORT_DTYPE.get(v.dtype, v.dtype)}"
            problems.setdefault((v.backend, v.verdict, v.reason), []).append(where)
    for (backend, verdict, reason), where in problems.items():
        probes = where[0] if len(where) == 1 else f"{len(where)} probes, first {where[0]}"
        console.print(f"  [{VERDICT_STYLE[verdict]}]{verdict}[/] {backend} ({probes}): {reason}",
                      soft_wrap=True, markup=True, highlight=False)
    for path in written:
        if path.suffix in (".md", ".html"):
            console.print(f"report: [bold]{path}[/]")
