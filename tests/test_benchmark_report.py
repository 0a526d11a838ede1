"""suite.report.benchmarks: pytest-benchmark JSON from tests/benchmarks, read, rendered and
joined with ``suite bench``'s table; bad files are one-line user errors.

The JSON is real: pytest-benchmark runs tests/benchmarks on the smallest case with the
NumPy reference, in a subprocess, as ``make bench`` runs it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from suite.errors import UserError
from suite.report.benchmarks import (
    COLUMNS,
    SIDE_BY_SIDE,
    benchmark_table,
    read_benchmark_json,
    side_by_side,
    side_by_side_table,
    to_html,
    to_markdown,
)
from suite.results import read_table

ROOT = Path(__file__).resolve().parent.parent
THREADS = 2
ENV = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS),
       "OPENBLAS_NUM_THREADS": str(THREADS)}
# bench.csv's columns (suite bench), in its order
BENCH_CSV = ("backend", "width", "depth", "batch_size", "dtype", "threads", "first_step_s",
             "step_ms_median", "step_ms_iqr", "samples_per_s", "gflops", "peak_share",
             "peak_rss_mb", "input_dim", "outputs")


def run_benchmarks(*args: str) -> subprocess.CompletedProcess:
    """``pytest tests/benchmarks ARGS`` in a fresh process, as ``make bench`` runs it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/benchmarks", "-p", "no:cacheprovider",
         "--bench-threads", str(THREADS), *args],
        capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=240)


@pytest.fixture(scope="module")
def numpy_json(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "numpy.json"
    done = run_benchmarks("--backend", "numpy", "--bench-sizes", "small",
                          "--bench-seconds", "0.05", "--benchmark-json", str(path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout
    return path


def test_benchmark_json_reads_into_one_row_per_benchmark(numpy_json):
    frame = read_benchmark_json([numpy_json])
    assert tuple(frame.columns) == COLUMNS and len(frame) == 1
    row = frame.iloc[0]
    assert (row.backend, row.layers, row.input_dim, row.width, row.depth, row.outputs,
            row.batch_size, row["dtype"], row.threads) == (
        "numpy", "64-64-10", 64, 64, 1, 10, 32, "float32", THREADS)
    assert row.gflops_per_step == pytest.approx(6 * 32 * (64 * 64 + 64 * 10) / 1e9)
    assert row.gflops == pytest.approx(row.gflops_per_step / (row.step_ms_median / 1e3))
    assert row.rounds >= 20 and 0 < row.step_ms_min <= row.step_ms_median
    assert row.first_step_s > 0 and row.file == str(numpy_json)
    assert row["name"] == "test_training_step[numpy-64-64-10-b32]"
    assert row.machine and row.python and row.datetime


def test_the_json_records_how_it_was_measured(numpy_json):
    bench = json.loads(numpy_json.read_text())["benchmarks"][0]
    assert bench["group"] == "64-64-10-b32"
    assert bench["extra_info"]["thread_env"]["OMP_NUM_THREADS"] == str(THREADS)
    assert bench["extra_info"]["versions"]["numpy"]
    assert len(bench["stats"]["data"]) == bench["stats"]["rounds"]  # one step per round


def test_table_renders_as_markdown_and_html(numpy_json):
    table = benchmark_table(read_benchmark_json([numpy_json]))
    markdown = to_markdown(table)
    assert markdown.splitlines()[0].startswith("| backend | network | batch | dtype | device |")
    assert markdown.splitlines()[1].startswith("|---|---|---:|---|---|---:|")
    assert markdown.splitlines()[2].startswith("| numpy | 64-64-10 | 32 | float32 | cpu | 2 | ")
    html = to_html(table, "benchmarks")
    assert html.startswith('<div class="scroll"><table id="benchmarks">')
    assert '<td>numpy</td><td>64-64-10</td><td class="num">32</td>' in html


def test_cells_are_escaped():
    from suite.report.model import Table

    table = Table(("a|b", "<x>"), (("1|2", "<script>"),), (False, True))
    assert "| a\\|b | <x> |" in to_markdown(table)
    html = to_html(table)
    assert "<script>" not in html and '<td class="num">&lt;script&gt;</td>' in html


def _bench_csv(path: Path, rows: list[dict]) -> pd.DataFrame:
    """A bench.csv written and read as suite bench writes and the report reads it."""
    frame = pd.DataFrame([{column: row.get(column, 1.0) for column in BENCH_CSV}
                          for row in rows])
    frame.to_csv(path, index=False)
    return read_table(path)


def test_side_by_side_joins_on_the_size_and_gives_the_ratio(numpy_json, tmp_path):
    mine = read_benchmark_json([numpy_json])
    median = mine.iloc[0].step_ms_median
    size = {"backend": "numpy", "input_dim": 64, "width": 64, "depth": 1, "outputs": 10,
            "batch_size": 32, "dtype": "float32", "threads": 2}
    bench = _bench_csv(tmp_path / "bench.csv", [
        {**size, "step_ms_median": 2 * median, "step_ms_iqr": 0.01},
        {**size, "batch_size": 128, "step_ms_median": 5.0},  # not in the benchmarks
        {**size, "backend": "torch", "step_ms_median": 5.0},
    ])
    joined = side_by_side(mine, bench)
    assert tuple(joined.columns) == SIDE_BY_SIDE and len(joined) == 1
    assert joined.iloc[0].ratio == pytest.approx(0.5)
    assert joined.iloc[0].bench_ms_median == pytest.approx(2 * median)
    markdown = to_markdown(side_by_side_table(joined))
    assert "| numpy | 64-64-10 | 32 | float32 | 2 | " in markdown and "| 0.50× |" in markdown


def test_side_by_side_keeps_the_latest_file_of_a_size(numpy_json, tmp_path):
    data = json.loads(numpy_json.read_text())
    later = copy.deepcopy(data)
    later["datetime"] = "2999-01-01T00:00:00+00:00"
    later["benchmarks"][0]["stats"]["median"] *= 3
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(later))
    both = read_benchmark_json([newer, numpy_json])
    assert len(both) == 2
    joined = side_by_side(both, both.iloc[[1]])  # the older file's figure as suite's
    assert len(joined) == 1 and joined.iloc[0].ratio == pytest.approx(3.0)


def test_threads_that_differ_are_shown_both(numpy_json, tmp_path):
    mine = read_benchmark_json([numpy_json])
    bench = _bench_csv(tmp_path / "bench.csv", [{
        "backend": "numpy", "input_dim": 64, "width": 64, "depth": 1, "outputs": 10,
        "batch_size": 32, "dtype": "float32", "threads": 4, "step_ms_median": 1.0}])
    assert "| 2 vs 4 |" in to_markdown(side_by_side_table(side_by_side(mine, bench)))


def _error(paths: list[Path]) -> str:
    with pytest.raises(UserError) as error:
        read_benchmark_json(paths)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_bad_files_are_one_line_errors(numpy_json, tmp_path):
    text = tmp_path / "notes.json"
    text.write_text("median: 3 ms\n")
    assert _error([numpy_json, text]) == (
        f"{text}: expected pytest-benchmark JSON (pytest tests/benchmarks --benchmark-json "
        "FILE). Received: text that is not JSON (Expecting value at line 1, column 1)")

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"losses": [1.0], "steps": 3}))
    assert _error([other]) == (
        f"{other}: expected pytest-benchmark JSON (pytest tests/benchmarks --benchmark-json "
        "FILE): an object with benchmarks, machine_info, commit_info. Received: an object "
        "with keys losses, steps")
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    assert _error([listing]).endswith("Received: a list of 2 items")

    missing = tmp_path / "absent.json"
    assert _error([missing]).startswith(f"{missing}: cannot read it (No such file")
    assert "Received: none" in _error([])


def test_benchmarks_of_another_suite_are_refused(numpy_json, tmp_path):
    """Real pytest-benchmark JSON whose benchmarks lack the suite's extra_info."""
    data = json.loads(numpy_json.read_text())
    for key in ("width", "dtype"):
        del data["benchmarks"][0]["extra_info"][key]
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps(data))
    message = _error([foreign])
    assert message.startswith(f"{foreign}: expected each benchmark's extra_info to give "
                              "backend, width, depth,")
    assert message.endswith("Received: benchmark 'test_training_step[numpy-64-64-10-b32]' "
                            "without width, dtype")


def test_a_bench_table_without_the_keys_is_refused(numpy_json):
    with pytest.raises(UserError, match=r"expected a suite bench table \(bench.csv\) with "
                                        r"columns .*Received: one without input_dim, outputs$"):
        side_by_side(read_benchmark_json([numpy_json]),
                     pd.DataFrame(columns=[c for c in BENCH_CSV
                                           if c not in ("input_dim", "outputs")]))


# ---------------------------------------------------------------------------- the suite


def test_backends_of_their_own_environment_are_skipped_with_the_reason():
    done = run_benchmarks("--backend", "theano", "--bench-sizes", "small", "-rs")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "theano runs in an environment of its own" in done.stdout
    assert "`suite bench` measures it" in done.stdout and "1 skipped" in done.stdout


def test_a_backend_that_does_not_run_on_the_device_is_skipped_with_the_reason():
    done = run_benchmarks("--backend", "numpy", "--bench-device", "cuda",
                          "--bench-sizes", "small", "-rs")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "numpy does not run device:cuda: numpy runs on cpu. Received: device 'cuda'" in (
        done.stdout) and "1 skipped" in done.stdout


def test_bad_options_end_the_session_with_one_line():
    done = run_benchmarks("--bench-sizes", "huge")
    assert done.returncode == 4
    assert ("ERROR: expected --bench-sizes of all, or some of small (64-64-10-b32), medium "
            "(784-512-512-10-b128), large (784-2048-2048-2048-10-b256). Received: 'huge'"
            ) in done.stderr


def test_make_test_does_not_collect_the_benchmarks():
    """pytest's default collection (what `make test` runs) leaves tests/benchmarks out."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider"], capture_output=True, text=True,
                          cwd=ROOT, env=ENV, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "tests/test_benchmark_report.py::" in done.stdout  # it did collect the rest
    assert "tests/benchmarks" not in done.stdout
