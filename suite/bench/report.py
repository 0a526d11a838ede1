"""A benchmark's report: report.md and a self-contained report.html beside bench.csv.

:func:`load` reads the folder (run.json, bench.csv, and any pytest-benchmark JSON files
under pytest-benchmark/), :func:`build` formats every figure once so both texts say the
same, and :func:`render` writes them (each whole or not at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from suite.bench import pytest_benchmark
from suite.bench.results import PYTEST_BENCHMARK, Bench, load
from suite.files import atomic_write_text
from suite.report.format import Table, millis, number, ratio, seconds
from suite.rundir import REFERENCE


@dataclass(frozen=True)
class BenchReport:
    title: str
    run_id: str
    created: str
    status: str
    facts: list[tuple[str, str]]
    crossover: Table | None
    step_times: Table | None
    efficiency: Table | None
    standalone: Table | None
    threads: Table | None
    problems: Table | None
    pytest_benchmark: Table | None
    environment: list[tuple[str, str]]


# ---------------------------------------------------------------------------- analysis


def size_label(row: pd.Series | dict[str, Any]) -> str:
    return f"{row['layers']} b{int(row['batch_size'])}"


def crossovers(bench: Bench) -> pd.DataFrame:
    """Per backend: the smallest size from which it is faster than NumPy at every larger
    size of the grid (sizes ordered by work per step), and its speed-up there.
    """
    ok = bench.ok
    reference = ok[ok["backend"] == REFERENCE].set_index("size_index")["step_ms_median"]
    found = []
    for name in bench.backends:
        if name == REFERENCE:
            continue
        mine = ok[ok["backend"] == name].set_index("size_index")
        shared = mine.index.intersection(reference.index)
        if not len(shared):
            continue
        ordered = mine.loc[shared].sort_values(["gflop_per_step", "batch_size"])
        speedup = reference.loc[ordered.index] / ordered["step_ms_median"]
        ahead = (speedup > 1.0).to_numpy()
        # the first index from which every later size is ahead too
        start = next((i for i in range(len(ahead)) if ahead[i:].all()), None)
        if start is None:
            text, there = "not within this grid", None
        else:
            text = "at every size" if start == 0 else size_label(ordered.iloc[start])
            there = float(speedup.iloc[start])
        found.append({"backend": name, "overtakes": text, "speedup": there,
                      "largest": float(speedup.iloc[-1])})
    return pd.DataFrame(found)


# ---------------------------------------------------------------------------- formatting


def _share(value: Any) -> str:
    value = number(value)
    return "—" if value is None else f"{100 * value:.0f}%"


def _pivot(bench: Bench, column: str, fmt) -> Table | None:
    ok = bench.ok
    if ok.empty:
        return None
    sizes = ok.drop_duplicates("size_index").sort_values(["gflop_per_step", "batch_size"])
    names = [n for n in bench.backends if n in set(ok["backend"])]
    rows = []
    for _, size in sizes.iterrows():
        cells = ok[ok["size_index"] == size["size_index"]].set_index("backend")[column]
        rows.append((size_label(size), f"{size['gflop_per_step']:.3g}",
                     *(fmt(number(cells.get(n))) for n in names)))
    return Table(("network, batch", "GFLOP/step", *names), tuple(rows),
                 (False, True, *([True] * len(names))))


def build(bench: Bench) -> BenchReport:
    meta = bench.meta
    peak = meta.get("peak") or {}
    threads = meta.get("threads", {})
    spec = meta.get("spec", {})
    facts = [
        ("spec", f"{spec.get('name', '?')}: loss {spec.get('loss', {}).get('name')}, "
                 f"optimizer {spec.get('optimizer', {}).get('name')}, {meta.get('dtype')}"),
        ("sizes", f"{len(meta.get('sizes', []))} (widths x depths x batch sizes), "
                  f"smallest work first"),
        ("matmul peak", f"{peak['gflops']:.0f} GFLOP/s float32 ({peak['library']}; "
                        f"{peak['method']})" if peak else "not measured"),
        ("threads", f"{threads.get('count')} intra-op threads for every backend; one "
                    f"backend at a time, each in a fresh process"),
        ("timing", _timing_text(meta.get("timing", {}))),
    ]
    crossover = crossovers(bench)
    crossover_table = None if crossover.empty else Table(
        ("backend", "faster than NumPy from", "speed-up there", "speed-up at the largest"),
        tuple((r.backend, r.overtakes, ratio(r.speedup), ratio(r.largest))
              for r in crossover.itertuples()), (False, False, True, True))
    env = meta.get("environment", {})
    return BenchReport(
        title=f"benchmark: {spec.get('name', '?')}", run_id=meta.get("run", bench.path.name),
        created=meta.get("created", ""), status=meta.get("status", "?"), facts=facts,
        crossover=crossover_table,
        step_times=_pivot(bench, "step_ms_median", millis),
        efficiency=_pivot(bench, "peak_share", _share),
        standalone=_standalone(bench), threads=_threads(meta), problems=_problems(bench),
        pytest_benchmark=_pytest_benchmark(bench),
        environment=[(k, str(v)) for k, v in env.items()])


def _timing_text(timing: dict[str, Any]) -> str:
    if not timing:
        return ""
    return (f"per size: first step (trace or compile) timed alone, {timing['warmup']} warm-up "
            f"steps, then up to {timing['steps']} timed steps (at least "
            f"{timing['min_steps']}, within {timing['budget_s']:g} s); median and "
            f"interquartile range; a size is stopped after {timing['size_timeout_s']:g} s")


def _standalone(bench: Bench) -> Table | None:
    if "standalone_ms_median" not in bench.rows or bench.rows["standalone_ms_median"].isna().all():
        return None
    rows = []
    for _, r in bench.ok.sort_values(["backend", "gflop_per_step"]).iterrows():
        versus = number(r["suite_vs_standalone"])
        rows.append((r["backend"], size_label(r), millis(r["step_ms_median"]),
                     millis(number(r["standalone_ms_median"])), ratio(versus),
                     "—" if versus is None else ("yes" if abs(versus - 1) <= 0.10 else "no")))
    return Table(("backend", "network, batch", "suite", "standalone script", "suite / script",
                  "within 10%"), tuple(rows), (False, False, True, True, True, False))


def _threads(meta: dict[str, Any]) -> Table | None:
    threads = meta.get("threads", {})
    rows = [("environment", ", ".join(f"{k}={v}" for k, v in
                                      threads.get("environment", {}).items()))]
    for name, info in meta.get("backends", {}).items():
        if "runtime" in info:
            rows.append((name, ", ".join(f"{k}={v}" for k, v in info["runtime"].items())
                         or "—"))
    return Table(("backend", "thread and precision settings"), tuple(rows))


def _problems(bench: Bench) -> Table | None:
    bad = bench.rows[bench.rows["status"] != "ok"]
    rows = tuple((r["backend"], size_label(r) if isinstance(r.get("layers"), str) else "—",
                  r["status"], "" if pd.isna(r.get("reason")) else str(r["reason"]))
                 for _, r in bad.iterrows())
    return Table(("backend", "network, batch", "status", "reason"), rows) if rows else None


def _pytest_benchmark(bench: Bench) -> Table | None:
    """pytest-benchmark's medians (files under pytest-benchmark/) beside the suite's, for
    the sizes both measured; all of pytest-benchmark's figures when none is shared."""
    folder = bench.path / PYTEST_BENCHMARK
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return None
    found = pytest_benchmark.read_benchmark_json(files)
    joined = pytest_benchmark.side_by_side(found, bench.rows)
    return pytest_benchmark.side_by_side_table(joined) if len(joined) else \
        pytest_benchmark.benchmark_table(found)


def add_pytest_benchmark(folder: Path, files: list[Path]) -> None:
    """Keep copies of pytest-benchmark JSON files in the benchmark folder (checked first),
    so that the report shows them and re-rendering keeps them."""
    import shutil

    pytest_benchmark.read_benchmark_json(files)  # a file that is not one: one line, nothing copied
    target = Path(folder) / PYTEST_BENCHMARK
    target.mkdir(exist_ok=True)
    for path in files:
        shutil.copyfile(path, target / Path(path).name)


# ---------------------------------------------------------------------------- rendering


def render(folder: Path) -> tuple[Path, Path]:
    """Write report.md and report.html into ``folder``; returns their paths."""
    from suite.bench import plots
    from suite.report import html, markdown

    bench = load(folder)
    report = build(bench)
    md = markdown.environment().get_template("bench.md.j2").render(r=report)
    page = html.environment().get_template("bench.html.j2").render(
        r=report, plots=plots.render_all(bench), seconds=seconds)
    md_path, html_path = Path(folder) / "report.md", Path(folder) / "report.html"
    atomic_write_text(md_path, md)
    atomic_write_text(html_path, page)
    return md_path, html_path
