"""``suite bench`` on the terminal: a progress bar per backend and the summary tables."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from suite.bench import report, results
from suite.bench.sizes import Size, describe, flops_per_step, sized_spec
from suite.spec import Spec


def progress_handler(progress: Progress, sizes: list[Size], spec: Spec):
    tasks: dict[str, int] = {}
    labels = [f"{describe(sized_spec(spec, s))['layers']} b{s.batch_size}" for s in sizes]

    def handle(name: str, event: dict) -> None:
        phase = event.get("phase")
        if phase == "start":
            total = event.get("total") or None
            tasks[name] = progress.add_task("starting", backend=name, total=total)
        elif name not in tasks:
            return
        elif phase == "env":
            progress.update(tasks[name], description=f"[dim]{event['message'][:60]}[/]")
        elif phase == "size" and event["status"] == "start":
            progress.update(tasks[name], description=labels[event["index"]])
        elif phase == "size":
            style = "" if event["status"] == "ok" else "[red]"
            progress.advance(tasks[name])
            if event["status"] != "ok":
                progress.console.print(f"  {style}{name} {labels[event['index']]}: "
                                       f"{event['status']}[/]")
        elif phase == "standalone":
            progress.update(tasks[name], description=f"standalone {labels[event['index']]}")
        elif phase == "done":
            status = event.get("status")
            style = "green" if status == "ok" else "red"
            reason = f": {event['reason']}" if event.get("reason") else ""
            total = progress.tasks[tasks[name]].total or 1
            progress.update(tasks[name], description=f"[{style}]{status}[/]{reason}",
                            completed=total, total=total)

    return handle


def print_plan(console: Console, spec: Spec, sizes: list[Size], estimate: dict) -> None:
    table = Table(title=f"{len(sizes)} sizes, smallest work first")
    for column in ("network", "batch", "GFLOP/step"):
        table.add_column(column, justify="left" if column == "network" else "right")
    for size in sizes:
        sized = sized_spec(spec, size)
        table.add_row(describe(sized)["layers"], str(size.batch_size),
                      f"{flops_per_step(sized) / 1e9:.3g}")
    console.print(table)
    console.print(f"largest size needs about {estimate['largest_estimate_gib']:.1f} GiB per "
                  f"backend; {estimate['available_gib']:.1f} GiB available")


def print_summary(console: Console, folder: Path) -> None:
    bench = results.load(folder)
    peak = (bench.meta.get("peak") or {}).get("gflops")
    built = report.build(bench)
    if built.step_times:
        # a terminal is narrow: whichever of sizes and backends is fewer makes the columns
        steps = built.step_times
        table = Table(title="Median step time" + (f" (matmul peak {peak:.0f} GFLOP/s)"
                                                  if peak else ""))
        if len(steps.rows) < len(steps.header) - 2:
            table.add_column("backend")
            for row in steps.rows:
                table.add_column(f"{row[0]}\n{row[1]} GFLOP", justify="right")
            for i, name in enumerate(steps.header[2:], start=2):
                table.add_row(name, *(row[i] for row in steps.rows))
        else:
            for i, column in enumerate(steps.header):
                table.add_column(column, justify="right" if steps.numeric[i] else "left")
            for row in steps.rows:
                table.add_row(*row)
        console.print(table)
    for backend, overtakes, *_ in built.crossover.rows if built.crossover else ():
        console.print(f"  {backend} is faster than NumPy: {overtakes}")
    console.print(f"bench.csv and report: [bold]{folder / 'report.html'}[/] (and report.md)")
