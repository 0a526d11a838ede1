"""pytest-benchmark's figures (``make bench``), as a table and next to ``suite bench``'s own.

``make bench`` writes one ``--benchmark-json`` file per backend (tests/benchmarks: one
training step through ``Trainer.fast_step`` per round, sizes and settings in each
benchmark's ``extra_info``). This module reads those files and renders them; it does no
I/O besides reading the files it is given.

API
---
``read_benchmark_json(paths) -> DataFrame``
    One row per benchmark of one or more files, columns :data:`COLUMNS`. A file that is
    not pytest-benchmark JSON, or a benchmark without the suite's ``extra_info``, raises
    :class:`suite.errors.UserError` (one line: the file, what it holds, what is expected).
``side_by_side(benchmarks, bench) -> DataFrame``
    Joined with a ``suite bench`` table (bench.csv as a DataFrame) on :data:`KEYS`:
    both medians, both spreads and ``ratio`` = pytest-benchmark median / suite median
    (columns :data:`SIDE_BY_SIDE`). Where a size was measured more than once, the latest
    file wins.
``benchmark_table(frame) -> Table`` and ``side_by_side_table(joined) -> Table``
    Those frames formatted for a report, as :class:`suite.report.format.Table` (a `suite
    bench` folder's report renders them: suite.bench.report).

Usage::

    frame = read_benchmark_json(sorted(Path("reports/benchmarks").glob("*.json")))
    table = benchmark_table(frame)
    joined = side_by_side(frame, read_table(run_dir / "bench.csv"))
    table = side_by_side_table(joined)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from suite.errors import UserError
from suite.report.format import Table, count, millis, number, ratio, seconds

# What tests/benchmarks writes into every benchmark's extra_info (and this module reads).
EXTRA_INFO = ("backend", "width", "depth", "batch_size", "input_dim", "outputs", "layers",
              "dtype", "threads", "gflops_per_step")
STATS = ("median", "iqr", "min", "rounds")
_INTEGERS = ("width", "depth", "batch_size", "input_dim", "outputs", "threads")
COLUMNS = ("backend", "layers", "input_dim", "width", "depth", "outputs", "batch_size",
           "dtype", "device", "threads", "step_ms_median", "step_ms_iqr", "step_ms_min", "rounds",
           "gflops_per_step", "gflops", "first_step_s", "name", "machine", "cpu", "python",
           "commit", "datetime", "file")
# What names one size of one backend in both tables: the whole network (every layer's
# units), since width and depth alone do not tell 784-512-256-10 from 784-512-512-10.
KEYS = ("backend", "layers", "batch_size", "dtype")
SIDE_BY_SIDE = (*KEYS, "gflops_per_step", "threads", "bench_threads", "pytest_ms_median",
                "pytest_ms_iqr", "bench_ms_median", "bench_ms_iqr", "ratio")
_EXPECTED = "pytest-benchmark JSON (pytest tests/benchmarks --benchmark-json FILE)"


# ---------------------------------------------------------------------------- reading


def read_benchmark_json(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per benchmark in the files ``paths``, columns :data:`COLUMNS`.

    ``step_ms_*`` are one step's wall time in milliseconds (pytest-benchmark's median,
    interquartile range and minimum over ``rounds``); ``gflops`` is the achieved rate,
    ``gflops_per_step`` (6 x batch x sum(fan_in x fan_out) / 1e9) over the median step.

    Raises
    ------
    UserError
        No paths; a file that cannot be read, is not JSON, is not pytest-benchmark's
        JSON, or holds a benchmark without the suite's ``extra_info`` or ``stats``.
    """
    paths = [Path(path) for path in paths]
    if not paths:
        raise UserError(f"expected one or more files of {_EXPECTED}. Received: none")
    rows = [row for path in paths for row in _rows(path, _load(path))]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UserError(f"cannot read it ({reason}); expected {_EXPECTED}",
                        where=str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"expected {_EXPECTED}. Received: text that is not JSON "
                        f"({exc.msg} at line {exc.lineno}, column {exc.colno})",
                        where=str(path)) from None
    wanted = ("benchmarks", "machine_info", "commit_info")
    if not isinstance(data, dict) or not all(key in data for key in wanted) or not (
            isinstance(data["benchmarks"], list)):
        raise UserError(f"expected {_EXPECTED}: an object with {', '.join(wanted)}. "
                        f"Received: {_shape(data)}", where=str(path))
    return data


def _shape(data: Any) -> str:
    """A short description of a JSON value, for an error message."""
    if isinstance(data, dict):
        keys = ", ".join(map(str, list(data)[:6])) + (", ..." if len(data) > 6 else "")
        return f"an object with keys {keys}" if data else "an empty object"
    if isinstance(data, list):
        return f"a list of {len(data)} items"
    return f"a JSON {type(data).__name__} ({str(data)[:40]!r})"


def _rows(path: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    machine, commit = data["machine_info"] or {}, data["commit_info"] or {}
    common = {
        "machine": machine.get("node"),
        "cpu": (machine.get("cpu") or {}).get("brand_raw") or machine.get("processor"),
        "python": machine.get("python_version"),
        "commit": _commit(commit), "datetime": data.get("datetime"), "file": str(path),
    }
    return [_row(path, bench, common) for bench in data["benchmarks"]]


def _commit(info: dict[str, Any]) -> str | None:
    if not info.get("id"):
        return None
    return str(info["id"])[:12] + ("+dirty" if info.get("dirty") else "")


def _row(path: Path, bench: Any, common: dict[str, Any]) -> dict[str, Any]:
    name = bench.get("name", "?") if isinstance(bench, dict) else "?"
    extra = bench.get("extra_info") if isinstance(bench, dict) else None
    stats = bench.get("stats") if isinstance(bench, dict) else None
    missing = [key for key in EXTRA_INFO if not isinstance(extra, dict) or key not in extra]
    if missing:
        raise UserError(f"expected each benchmark's extra_info to give {', '.join(EXTRA_INFO)}"
                        f" (as tests/benchmarks writes it). Received: benchmark {name!r} "
                        f"without {', '.join(missing)}", where=str(path))
    absent = [key for key in STATS if not isinstance(stats, dict) or key not in stats]
    if absent:
        raise UserError(f"expected each benchmark's stats to give {', '.join(STATS)}. "
                        f"Received: benchmark {name!r} without {', '.join(absent)}",
                        where=str(path))
    try:
        median_s = float(stats["median"])
        return {
            **{key: extra[key] for key in EXTRA_INFO},
            **{key: int(extra[key]) for key in _INTEGERS},
            "device": extra.get("device", "cpu"),
            "step_ms_median": median_s * 1e3, "step_ms_iqr": float(stats["iqr"]) * 1e3,
            "step_ms_min": float(stats["min"]) * 1e3, "rounds": int(stats["rounds"]),
            "gflops": float(extra["gflops_per_step"]) / median_s if median_s > 0 else math.nan,
            "first_step_s": extra.get("first_step_s"), "name": name, **common,
        }
    except (TypeError, ValueError) as exc:
        raise UserError(f"expected numbers in benchmark {name!r}'s extra_info sizes and "
                        f"stats. Received: {exc}", where=str(path)) from None


# ---------------------------------------------------------------------------- joining


def side_by_side(benchmarks: pd.DataFrame, bench: pd.DataFrame) -> pd.DataFrame:
    """pytest-benchmark's medians next to ``suite bench``'s, for the sizes both measured.

    Parameters
    ----------
    benchmarks : DataFrame
        From :func:`read_benchmark_json`.
    bench : DataFrame
        ``suite bench``'s bench.csv: at least :data:`KEYS`, ``step_ms_median``,
        ``step_ms_iqr`` and ``threads``.

    Returns
    -------
    DataFrame
        Columns :data:`SIDE_BY_SIDE`, one row per backend and size in both;
        ``ratio`` = ``pytest_ms_median / bench_ms_median`` (1.0: the same figure).

    Raises
    ------
    UserError
        When ``bench`` lacks a column.
    """
    needed = (*KEYS, "step_ms_median", "step_ms_iqr", "threads")
    missing = [column for column in needed if column not in bench.columns]
    if missing:
        raise UserError(f"expected a suite bench table (bench.csv) with columns "
                        f"{', '.join(needed)}. Received: one without {', '.join(missing)}")
    mine = (_keyed(benchmarks).sort_values("datetime", kind="stable")
            .drop_duplicates(list(KEYS), keep="last"))
    theirs = _keyed(bench).drop_duplicates(list(KEYS), keep="last")
    mine = mine.rename(columns={"step_ms_median": "pytest_ms_median",
                                "step_ms_iqr": "pytest_ms_iqr"})
    theirs = theirs.rename(columns={"step_ms_median": "bench_ms_median",
                                    "step_ms_iqr": "bench_ms_iqr", "threads": "bench_threads"})
    joined = mine.merge(theirs[[*KEYS, "bench_ms_median", "bench_ms_iqr", "bench_threads"]],
                        on=list(KEYS), how="inner")
    joined["ratio"] = joined["pytest_ms_median"] / joined["bench_ms_median"]
    return joined[list(SIDE_BY_SIDE)].reset_index(drop=True)


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with batch_size in one integer type (a column with an empty cell reads as
    floats), so that the two tables join; the other keys are strings in both."""
    return frame.assign(batch_size=pd.to_numeric(frame["batch_size"], errors="coerce")
                        .astype("Int64"))


# ---------------------------------------------------------------------------- rendering


def benchmark_table(frame: pd.DataFrame) -> Table:
    """One row per benchmark: smallest network first, backends in name order."""
    rows = tuple(
        (str(r.backend), str(r.layers), count(r.batch_size), str(r.dtype), str(r.device),
         count(r.threads), millis(r.step_ms_median), millis(r.step_ms_iqr), millis(r.step_ms_min),
         count(r.rounds), _rate(r.gflops), seconds(number(r.first_step_s)))
        for r in _ordered(frame).itertuples())
    return Table(("backend", "network", "batch", "dtype", "device", "threads", "step median",
                  "step IQR", "step min", "rounds", "GFLOP/s", "first step"),
                 rows, (False, False, True, False, False, *(True,) * 7))


def side_by_side_table(joined: pd.DataFrame) -> Table:
    """pytest-benchmark's and ``suite bench``'s medians per backend and size, and their
    ratio."""
    rows = tuple(
        (str(r.backend), str(r.layers), count(r.batch_size), str(r.dtype),
         _threads(r.threads, r.bench_threads), millis(r.pytest_ms_median),
         millis(r.pytest_ms_iqr), millis(number(r.bench_ms_median)),
         millis(number(r.bench_ms_iqr)), ratio(r.ratio))
        for r in _ordered(joined).itertuples())
    return Table(("backend", "network", "batch", "dtype", "threads", "pytest-benchmark median",
                  "IQR", "suite bench median", "IQR", "ratio"),
                 rows, (False, False, True, False, True, True, True, True, True, True))


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Least work per step first, as suite bench's own tables order sizes."""
    return frame.sort_values(["gflops_per_step", "layers", "batch_size", "backend"],
                             kind="stable")


def _rate(value: Any) -> str:
    value = number(value)
    return "—" if value is None else f"{value:.3g}"


def _threads(pytest_threads: Any, bench_threads: Any) -> str:
    mine, theirs = count(number(pytest_threads)), count(number(bench_threads))
    return mine if mine == theirs else f"{mine} vs {theirs}"


__all__ = ["COLUMNS", "KEYS", "SIDE_BY_SIDE", "benchmark_table", "read_benchmark_json",
           "side_by_side", "side_by_side_table"]
