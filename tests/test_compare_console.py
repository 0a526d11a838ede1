"""The summary that ``suite compare`` and ``suite report`` print (suite.compare.console): one
row per backend with its verdicts and timing, as tables on a terminal and as rows for a
program; on the report tests' fixture run (tests/report_fixture.py), no workers."""

from __future__ import annotations

import csv
import io
import json

import pytest
from report_fixture import build_run
from rich.console import Console

from suite.compare.console import print_summary, summary_rows
from suite.compare.results import Run
from suite.rundir import CHECKS

TIMING = ["import_s", "build_s", "first_step_s", "step_ms_median", "step_ms_iqr",
          "samples_per_s", "threads"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("run"))


def printed(run_dir, fmt, terminal=False) -> tuple[str, str]:
    """(stdout, notes) of print_summary."""
    out, notes = io.StringIO(), io.StringIO()
    print_summary(Console(file=out, force_terminal=terminal, width=120, color_system=None),
                  run_dir, fmt, Console(file=notes, width=120))
    return out.getvalue(), notes.getvalue()


def test_one_row_per_backend_in_run_order_reference_first(run_dir):
    found, columns = summary_rows(Run(run_dir))
    assert [r["backend"] for r in found] == ["numpy", "torch", "keras", "myplugin", "jax",
                                             "mlx"]
    assert [c.key for c in columns] == ["backend", *CHECKS, "reason", *TIMING]
    by_name = {r["backend"]: r for r in found}
    assert "forward" not in by_name["numpy"] and by_name["numpy"]["step_ms_median"] == 0.21
    assert by_name["keras"]["update"] == "known difference"
    assert by_name["myplugin"]["reason"].startswith("trajectory: param dense_1/kernel")
    assert by_name["jax"]["reason"] == "forward: worker timed out after 600 s"
    assert "step_ms_median" not in by_name["jax"] and by_name["mlx"]["reason"] is None


def test_tsv_is_the_rows_alone_one_a_line(run_dir):
    out, notes = printed(run_dir, "tsv")
    lines = out.splitlines()
    assert lines[0].split("\t") == ["backend", *CHECKS, "reason", *TIMING]
    assert [line.split("\t")[0] for line in lines[1:]] == ["numpy", "torch", "keras",
                                                           "myplugin", "jax", "mlx"]
    torch = lines[2].split("\t")
    assert torch[1:6] == ["pass"] * 5 and torch[7:] == ["1.92", "0.012", "0.0041", "0.35",
                                                        "0.05", "45714.28571428572", "2"]
    assert "report:" not in out and "report.html" in notes


def test_csv_and_json_hold_the_same_rows(run_dir):
    from_csv = list(csv.DictReader(io.StringIO(printed(run_dir, "csv")[0])))
    from_json = json.loads(printed(run_dir, "json")[0])
    assert [r["backend"] for r in from_csv] == [r["backend"] for r in from_json]
    myplugin = next(r for r in from_json if r["backend"] == "myplugin")
    assert myplugin["trajectory"] == "fail" and myplugin["step_ms_median"] == 0.62
    jax = next(r for r in from_json if r["backend"] == "jax")
    assert jax["step_ms_median"] is None and jax["threads"] is None
    assert next(r for r in from_csv if r["backend"] == "myplugin")["trajectory"] == "fail"


def test_the_terminal_gets_the_verdict_and_timing_tables(run_dir):
    out, notes = printed(run_dir, "table", terminal=True)
    assert "Verdicts against the NumPy reference" in out and "Timing (2 threads)" in out
    assert "┏" in out and "known difference" in out and "45,714" in out
    assert "  myplugin trajectory: param dense_1/kernel differs" in out
    verdicts = out[:out.index("Timing")]
    assert "numpy" not in verdicts.split("━┩")[1]  # the reference has no verdicts
    assert "report.html" in notes
