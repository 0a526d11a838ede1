"""What the commands share on a terminal: a progress bar per worker, and verdict colors."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

#: the commands' standard output and standard error
console = Console()
errors = Console(stderr=True)

VERDICT_STYLE = {"pass": "green", "known difference": "blue", "unsupported": "dim",
                 "fail": "bold red", "error": "bold magenta"}


def progress(console: Console, label_width: int = 22) -> Progress:
    """Rows of: the worker's name (the ``backend`` field of each task), a bar, its count,
    what it is doing, the time it has taken."""
    return Progress(TextColumn(f"{{task.fields[backend]:<{label_width}}}"), BarColumn(),
                    MofNCompleteColumn(), TextColumn("{task.description}"),
                    TimeElapsedColumn(), console=console)


def ended(event: dict) -> str:
    """A finished worker's status, colored, with its reason: ``ok`` or ``error: why``."""
    status = event.get("status")
    style = "green" if status == "ok" else "red"
    return f"[{style}]{status}[/]" + (f": {event['reason']}" if event.get("reason") else "")


def figure(value) -> str:
    """A measured figure for a terminal table: 3 significant digits, thousands grouped
    from 100 on, "–" where it was not measured."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:  # NaN: not measured
        return "–"
    return f"{number:,.0f}" if number >= 100 else f"{number:.3g}"


def notes(fmt: str) -> Console:
    """Where a command's notes go: stdout beside a table, stderr beside a program's rows."""
    return console if fmt == "table" else errors
