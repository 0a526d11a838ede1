"""A benchmark folder's result format: bench.csv's columns, written whole or not at all,
and the folder read back (run.json with ``"kind": "bench"``, bench.csv)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from suite.errors import UserError
from suite.files import atomic_write_text, read_json
from suite.rundir import RUN_JSON

KIND = "bench"
#: where a folder keeps the pytest-benchmark JSON files its report shows
PYTEST_BENCHMARK = "pytest-benchmark"

COLUMNS = ("backend", "size_index", "layers", "input_dim", "width", "depth", "outputs",
           "batch_size", "dtype", "threads", "status", "reason", "first_step_s", "step_ms_median",
           "step_ms_iqr", "steps_timed", "samples_per_s", "gflop_per_step", "gflops",
           "peak_share", "peak_rss_mb", "build_s", "standalone_ms_median",
           "suite_vs_standalone", "standalone_status", "standalone_reason")


@dataclass
class Bench:
    path: Path
    meta: dict[str, Any]
    rows: pd.DataFrame  # bench.csv

    @property
    def ok(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "ok"]

    @property
    def backends(self) -> list[str]:
        return list(dict.fromkeys(self.rows["backend"]))


def is_bench(folder: Path) -> bool:
    path = Path(folder) / RUN_JSON
    return path.exists() and read_json(path).get("kind") == KIND


def load(folder: Path) -> Bench:
    folder = Path(folder)
    if not (folder / RUN_JSON).exists():
        raise UserError(f"{folder} is not a benchmark folder (no run.json)",
                        hint="give a folder that `suite bench` wrote")
    meta = read_json(folder / RUN_JSON)
    csv = folder / "bench.csv"
    rows = pd.read_csv(csv) if csv.exists() and csv.stat().st_size else pd.DataFrame(
        columns=list(COLUMNS))  # interrupted before its first backend finished
    return Bench(folder, meta, rows)


def write_rows(out: Path, rows: list[dict[str, Any]], peak_gflops: float, threads: int) -> None:
    """bench.csv, written whole or not at all."""
    frame = pd.DataFrame(rows)
    frame["threads"] = threads
    if "gflops" in frame:
        frame["peak_share"] = frame["gflops"] / peak_gflops
    frame = frame.reindex(columns=list(COLUMNS))
    atomic_write_text(out / "bench.csv", frame.to_csv(index=False))
