"""The ``suite`` command: parse, dispatch, show progress and tables. No logic of its own."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from suite import catalogue, listings, registry, rows, terminal
from suite.cli_env import env_app
from suite.errors import UserError
from suite.rows import FormatOption
from suite.rundir import REFERENCE
from suite.terminal import console, errors, notes

app = typer.Typer(
    help="Train one feed-forward network spec in several frameworks and compare them "
         "step by step against a NumPy reference.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DEFAULT_SPEC = "digits-mlp"


class Dtype(StrEnum):
    float32 = "float32"
    float64 = "float64"


# NOTE: a plain string checked by rows.choose, not a Typer choice: a bad value is then
# one line on stderr, like every other mistake
@app.command()
def compare(
    spec: Annotated[str, typer.Argument(
        help="A built-in spec name (see `suite specs`) or a .toml spec file.")] = DEFAULT_SPEC,
    backends: Annotated[str | None, typer.Option(
        "--backends", "-b", help="Comma-separated backend names or package.module:Class "
        "plug-ins. Default: every installed backend.")] = None,
    data: Annotated[str | None, typer.Option(
        help="A built-in dataset name or a CSV, Parquet or NPZ file (overrides the spec).")]
    = None,
    target: Annotated[str | None, typer.Option(
        help="The target column of a CSV or Parquet file.")] = None,
    standardize: Annotated[bool | None, typer.Option(
        "--standardize/--no-standardize", help="Standardize features (overrides the spec).")]
    = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (overrides the spec).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (overrides the spec).")]
    = None,
    seed: Annotated[int | None, typer.Option(
        help="Seed of the initial parameters and batch order.")] = None,
    dtype: Annotated[Dtype | None, typer.Option(help="Floating-point type.")] = None,
    shuffle: Annotated[bool | None, typer.Option(
        "--shuffle/--no-shuffle", help="Shuffle the rows each epoch (overrides the spec).")]
    = None,
    max_steps: Annotated[int | None, typer.Option(
        help="Stop after this many steps in all.")] = None,
    threads: Annotated[int | None, typer.Option(
        help="Intra-op threads for every backend. Default: every core.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each backend may take.")] = 600.0,
    timing: Annotated[bool, typer.Option(
        "--timing/--no-timing", help="Run the separate timing run.")] = True,
    timing_steps: Annotated[int, typer.Option(help="Timed steps after warm-up.")] = 50,
    out: Annotated[Path | None, typer.Option(
        help="The run directory. Default: reports/<timestamp>-<spec name>.")] = None,
    force: Annotated[bool, typer.Option(help="Replace --out if it holds a run.")] = False,
    record: Annotated[str | None, typer.Option(
        help="Which steps keep their gradients and parameters (every step keeps its loss): "
             "all, auto (as many as the budget holds) or first=N,every=K. Default: the "
             "spec's [record] steps, else auto.")] = None,
    record_budget: Annotated[str | None, typer.Option(
        help="The most the whole run's record may take on disk, e.g. 500MB or 4GB. "
             "Default: the spec's [record] budget, else 1GB.")] = None,
    repeat: Annotated[int, typer.Option(
        help="Lockstep runs of the reference and each backend: 2 or more reports whether "
             "each backend is bit-reproducible on this machine.")] = 1,
    attribution: Annotated[str, typer.Option(
        help="Which backends get a parts run after the lockstep runs, placing a drift in "
             "the forward, the backward or the optimizer: auto (those outside the "
             "noise), always, never.")] = "auto",
    resume: Annotated[Path | None, typer.Option(
        help="Finish the run in this directory that stopped (a crash, Ctrl-C, SIGTERM): "
             "run only the backends that did not finish, with the run's own spec and "
             "options, and write the report.")] = None,
    fmt: FormatOption = None,
) -> None:
    """Train SPEC with every backend from the same start on the same batches; compare.
    A program reading stdout gets one row per backend: verdicts and timing."""
    from suite import api
    from suite.compare import console as compare_console

    fmt = rows.choose(fmt, console)
    if resume is not None:
        given = [flag for flag, value in (
            ("--backends", backends), ("--data", data), ("--target", target),
            ("--epochs", epochs), ("--batch-size", batch_size), ("--seed", seed),
            ("--dtype", dtype), ("--max-steps", max_steps), ("--threads", threads),
            ("--out", out), ("--record", record), ("--record-budget", record_budget),
            ("--repeat", repeat if repeat != 1 else None),
            ("--attribution", attribution if attribution != "auto" else None))
            if value is not None]
        if given or spec != DEFAULT_SPEC:
            raise UserError(f"--resume runs the run's own spec and options. Received: "
                            f"{', '.join(given or [spec])}", hint="leave them out")
        with terminal.progress(notes(fmt)) as bar:
            run = api.resume(resume, compare_console.progress_handler(bar))
        compare_console.print_summary(console, run.path, fmt, notes(fmt))
        return
    plan = api.plan_compare(spec, data, _names(backends), epochs=epochs,
                            batch_size=batch_size, seed=seed,
                            dtype=dtype.value if dtype else None, shuffle=shuffle,
                            max_steps=max_steps, target=target, standardize=standardize,
                            threads=threads, timing=timing, timing_steps=timing_steps,
                            timeout_s=timeout, out=out, force=force, record=record,
                            record_budget=record_budget, repeat=repeat,
                            attribution=attribution)
    if fmt == "table":  # (for a program, stderr stays one line when the run finds a mistake)
        console.print(f"[bold]{plan.spec.name}[/]: {listings.describe_net(plan.spec)}")
    with _stops_cleanly(), terminal.progress(notes(fmt)) as bar:
        run = plan.run(compare_console.progress_handler(bar))
    compare_console.print_summary(console, run.path, fmt, notes(fmt))


@app.command()
def bench(
    spec: Annotated[str, typer.Argument(
        help="A built-in spec name (see `suite specs`) or a .toml spec file.")] = DEFAULT_SPEC,
    widths: Annotated[str | None, typer.Option(
        help="Comma-separated hidden-layer widths, e.g. 64,256,1024. Default: the spec's "
             "[bench] table, else its own layers.")] = None,
    depths: Annotated[str | None, typer.Option(
        help="Comma-separated numbers of hidden layers, e.g. 1,2,4.")] = None,
    batch_sizes: Annotated[str | None, typer.Option(
        help="Comma-separated batch sizes, e.g. 32,128,512.")] = None,
    backends: Annotated[str | None, typer.Option(
        "--backends", "-b", help="Comma-separated backend names. Default: every installed "
        "backend.")] = None,
    dtype: Annotated[Dtype | None, typer.Option(help="Floating-point type.")] = None,
    threads: Annotated[int | None, typer.Option(
        help="Intra-op threads for every backend. Default: every core.")] = None,
    warmup: Annotated[int, typer.Option(help="Untimed steps after the first.")] = 5,
    steps: Annotated[int, typer.Option(help="Timed steps per size, at most.")] = 30,
    budget: Annotated[float, typer.Option(
        help="Seconds of timed steps per size before --steps are reached (at least 5 "
             "steps).")] = 3.0,
    size_timeout: Annotated[float, typer.Option(
        help="Seconds one size may take; past it the size is marked timeout and the sweep "
             "goes on.")] = 300.0,
    standalone: Annotated[bool, typer.Option(
        help="Also time each backend's standalone script (backends/standalone/) at every "
             "size and show both figures.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the sizes and the memory estimate, then stop.")] = False,
    out: Annotated[Path | None, typer.Option(
        help="The output folder. Default: reports/<timestamp>-bench-<spec name>.")] = None,
    force: Annotated[bool, typer.Option(help="Replace --out if it holds a run.")] = False,
) -> None:
    """Time every backend on a grid of network sizes against the machine's matmul peak;
    write bench.csv, run.json and a report."""
    from suite import api
    from suite.bench import console as bench_console
    from suite.bench import sizes

    plan = api.plan_bench(spec, _names(backends), widths=_int_list(widths, "--widths"),
                          depths=_int_list(depths, "--depths"),
                          batch_sizes=_int_list(batch_sizes, "--batch-sizes"),
                          dtype=dtype.value if dtype else None, threads=threads,
                          warmup=warmup, steps=steps, budget_s=budget,
                          size_timeout_s=size_timeout, standalone=standalone, out=out,
                          force=force)
    if dry_run:
        bench_console.print_plan(console, plan.spec, plan.sizes, plan.memory())
        return
    first = plan.sizes[0]
    console.print(f"[bold]{plan.spec.name}[/]: {len(plan.sizes)} "
                  f"size{'s' * (len(plan.sizes) != 1)}, from "
                  f"{sizes.describe(sizes.sized_spec(plan.spec, first))['layers']} at batch "
                  f"{first.batch_size}, {plan.spec.training.dtype}")
    with _stops_cleanly(), terminal.progress(console) as bar:
        folder = plan.run(bench_console.progress_handler(bar, plan.sizes, plan.spec))
    bench_console.print_summary(console, folder)


@app.command("backends")
def list_backends(fmt: FormatOption = None) -> None:
    """List backends: installed or not, framework versions, and why one is unavailable."""
    rows.write(console, listings.backends(), listings.BACKEND_COLUMNS, rows.choose(fmt, console),
               "Backends", show_lines=True)


@app.command("check-backend")
def check_backend(
    names: Annotated[list[str], typer.Argument(
        help="Backend names or package.module:Class plug-ins (see `suite backends`).")],
    dtype: Annotated[list[Dtype] | None, typer.Option(
        "--dtype", help="A dtype to check (repeat for several). Default: every dtype.")]
    = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    threads: Annotated[int | None, typer.Option(
        help="Intra-op threads for every worker. Default: every core.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each backend may take.")] = 900.0,
    workers: Annotated[int, typer.Option(
        help="Backends checked side by side (nothing is timed).")] = 1,
    out: Annotated[Path | None, typer.Option(
        help="Where to write conformance.md/.html/.csv. Default: reports/check-<names>.")]
    = None,
) -> None:
    """Run the conformance battery on backends: every activation, loss, optimizer,
    initializer and dtype against the reference (forward, gradients, one update, a few
    steps). Exit code 1 on any fail or error."""
    from suite.kit import KitOptions, check_backends
    from suite.kit import console as kit_console
    from suite.kit.render import write_report

    options = KitOptions(dtypes=tuple(d.value for d in dtype) if dtype else catalogue.DTYPES,
                         device=device, threads=threads, timeout_s=timeout, workers=workers)
    with _stops_cleanly(), terminal.progress(console, 16) as bar:
        result = check_backends(names, options, kit_console.progress_handler(bar))
    folder = out or Path("reports") / ("check-" + "-".join(result.backends()))
    written = write_report(result, folder)
    kit_console.print_result(console, result, written)
    if not result.unexpected().empty:
        raise typer.Exit(1)


@app.command("new-backend")
def new_backend(
    name: Annotated[str, typer.Argument(
        help="The backend name: lowercase letters, digits and hyphens, e.g. my-framework.")],
    directory: Annotated[Path, typer.Option(
        "--dir", help="The folder that receives fnn-suite-NAME/.")] = Path("."),
) -> None:
    """Write a skeleton backend plug-in, fnn-suite-NAME: a pyproject.toml with the entry
    point, a backend module with every method to fill in, and a test that runs the kit."""
    from suite import scaffold

    folder = scaffold.create(name, directory)
    console.print(f"created [bold]{folder}[/]")
    console.print(f"next: pip install -e {folder}  then  suite backends  and  "
                  f"suite check-backend {name}", highlight=False)


app.add_typer(env_app, name="env")


@app.command("support-matrix")
def support_matrix(
    write: Annotated[bool, typer.Option(
        "--write", help="Replace the matrix in the README instead of printing it.")] = False,
    readme: Annotated[Path, typer.Option(help="The README to update.")] = Path("README.md"),
    threads: Annotated[int | None, typer.Option(
        help="Intra-op threads for every worker. Default: every core.")] = None,
) -> None:
    """Run the conformance battery on every built-in backend and print the README's
    backends x features matrix (or write it with --write)."""
    from suite.kit import KitOptions, check_backends
    from suite.kit import console as kit_console
    from suite.kit.render import replace_block, support_matrix_markdown

    options = KitOptions(threads=threads)
    infos = [registry.describe(name) for name in registry.builtin_names()]
    available = [i.name for i in infos if i.available and i.name != REFERENCE]
    unavailable = {i.name: i.reason or "" for i in infos if not i.available}
    with _stops_cleanly(), terminal.progress(console, 16) as bar:
        result = check_backends(available, options, kit_console.progress_handler(bar))
    block = support_matrix_markdown(result, unavailable)
    if not write:
        console.print(block, markup=False, highlight=False)
        return
    if not readme.is_file():
        raise UserError(f"no README at {readme}", hint="give --readme PATH")
    try:
        text = replace_block(readme.read_text(encoding="utf-8"), block)
    except ValueError as exc:
        raise UserError(f"{readme}: {exc}") from None
    from suite.files import atomic_write_text

    atomic_write_text(readme, text)
    console.print(f"updated the support matrix in {readme}")


@app.command()
def specs(fmt: FormatOption = None) -> None:
    """List the built-in specs, datasets, and every name a spec may use (for a program:
    the specs as rows, the names on stderr)."""
    fmt = rows.choose(fmt, console)
    rows.write(console, listings.specs(), listings.SPEC_COLUMNS, fmt, "Built-in specs")
    for title, names in listings.vocabulary().items():
        notes(fmt).print(f"[bold]{title}:[/] " + ", ".join(names), soft_wrap=fmt != "table")


@app.command()
def report(
    run: Annotated[Path, typer.Argument(
        help="A run directory (reports/latest) or a `suite bench` folder.")],
    benchmark_json: Annotated[list[Path] | None, typer.Option(
        "--benchmark-json", help="pytest-benchmark JSON files (`make bench` writes them to "
        "reports/benchmarks/) to show next to a `suite bench` folder's figures; repeat "
        "for several.")] = None,
    fmt: FormatOption = None,
) -> None:
    """Rebuild the tables and re-render report.md and report.html of a finished run or
    benchmark. --format applies to a run's summary; a benchmark's rows are its bench.csv."""
    from suite.bench import console as bench_console
    from suite.bench import report as bench_report
    from suite.bench import results as bench_results
    from suite.compare import console as compare_console
    from suite.compare import session

    requested, fmt = fmt, rows.choose(fmt, console)
    if bench_results.is_bench(run):
        if requested not in (None, "table"):
            raise UserError(f"--format {requested} applies to a `suite compare` run; {run} is a "
                            f"`suite bench` folder", hint=f"read {run / 'bench.csv'}")
        if benchmark_json:
            bench_report.add_pytest_benchmark(run, benchmark_json)
        bench_report.render(run)
        bench_console.print_summary(console, run)
        return
    if benchmark_json:
        raise UserError(f"--benchmark-json goes next to a `suite bench` folder's figures; "
                        f"{run} is a `suite compare` run",
                        hint="run suite bench with the same sizes, then suite report "
                             "BENCH_DIR --benchmark-json ...")
    session.rerender(run)
    compare_console.print_summary(console, run, fmt, notes(fmt))


@contextmanager
def _stops_cleanly() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP during a run: one line, and exit code 128 + the signal's
    number (130, 143, 129). Typer alone would turn each into 130 and say nothing."""
    try:
        yield
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        errors.print(f"interrupted ({signal.Signals(signum).name}): what finished is kept",
                     soft_wrap=True)
        raise typer.Exit(128 + signum) from None


def _names(text: str | None) -> list[str] | None:
    """'numpy, torch' -> ["numpy", "torch"]; None (every backend) when not given."""
    return [b.strip() for b in text.split(",") if b.strip()] if text else None


def _int_list(text: str | None, flag: str) -> list[int]:
    """'64,256' -> [64, 256]; text that is not integers is one clear line."""
    if not text:
        return []
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise UserError(f"expected comma-separated positive integers such as 64,256. "
                        f"Received: {flag} {text}")
    return values


def main() -> None:
    """Console entry point: a user's mistake (a full disk too) is one line on stderr and
    exit code 2. Interruptions: see ``_stops_cleanly``."""
    try:
        app()
    except UserError as exc:
        # soft_wrap: one line however narrow the terminal; no markup: messages hold [brackets]
        errors.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
