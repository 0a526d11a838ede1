"""suite.bench.pytest_benchmark: pytest-benchmark JSON from tests/benchmarks, read, joined with
``suite bench``'s table and rendered in a bench folder's report; bad files are one-line
user errors.

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

from suite.bench import report, results
from suite.bench.pytest_benchmark import (
    COLUMNS,
    SIDE_BY_SIDE,
    benchmark_table,
    read_benchmark_json,
    side_by_side,
    side_by_side_table,
)
from suite.compare.results import read_table
from suite.errors import UserError
from suite.processes import THREAD_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
THREADS = 2
ENV = {**os.environ, **{name: str(THREADS) for name in THREAD_VARIABLES}}
# the size tests/benchmarks times with --bench-sizes small, as bench.csv names it
SMALL = {"backend": "numpy", "layers": "64-64-10", "input_dim": 64, "width": 64, "depth": 1,
         "outputs": 10, "batch_size": 32, "dtype": "float32", "threads": THREADS,
         "status": "ok", "gflop_per_step": 6 * 32 * (64 * 64 + 64 * 10) / 1e9}


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


def test_the_table_has_a_row_per_benchmark(numpy_json):
    table = benchmark_table(read_benchmark_json([numpy_json]))
    assert table.header[:6] == ("backend", "network", "batch", "dtype", "device", "threads")
    assert table.numeric[:6] == (False, False, True, False, False, True)
    assert len(table.rows) == 1
    assert table.rows[0][:6] == ("numpy", "64-64-10", "32", "float32", "cpu", "2")


def _bench_csv(path: Path, rows: list[dict]) -> pd.DataFrame:
    """A bench.csv (results.COLUMNS) written and read as suite bench writes and the report
    reads it; a column a row does not give is 1.0."""
    frame = pd.DataFrame([{column: row.get(column, 1.0) for column in results.COLUMNS}
                          for row in rows])
    frame.to_csv(path, index=False)
    return read_table(path)


def _bench_folder(folder: Path, rows: list[dict], benchmark_json: Path) -> Path:
    """A suite bench folder of ``rows``, with ``benchmark_json`` added and the report
    rendered, as `suite report FOLDER --benchmark-json FILE` does."""
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"kind": "bench"}))
    _bench_csv(folder / "bench.csv", rows)
    report.add_pytest_benchmark(folder, [benchmark_json])
    report.render(folder)
    return folder


def test_a_bench_report_shows_the_benchmarks_when_it_shares_no_size(numpy_json, tmp_path):
    folder = _bench_folder(tmp_path / "bench", [{**SMALL, "backend": "torch"}], numpy_json)
    lines = (folder / "report.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("## pytest-benchmark") + 2
    assert lines[start].startswith("| backend | network | batch | dtype | device |")
    assert lines[start + 1].startswith("|---|---|---:|---|---|---:|")
    assert lines[start + 2].startswith("| numpy | 64-64-10 | 32 | float32 | cpu | 2 | ")
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert '<div class="scroll"><table id="pytest-benchmark-table">' in html
    assert '<td>numpy</td><td>64-64-10</td><td class="num">32</td>' in html


def test_cells_are_escaped(numpy_json, tmp_path):
    data = json.loads(numpy_json.read_text())
    data["benchmarks"][0]["extra_info"]["backend"] = "a|b<script>"
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(data))
    folder = _bench_folder(tmp_path / "bench", [SMALL], odd)
    assert "| a\\|b<script> | 64-64-10 |" in (folder / "report.md").read_text(encoding="utf-8")
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "b<script>" not in html and "<td>a|b&lt;script&gt;</td>" in html


def test_side_by_side_joins_on_the_size_and_gives_the_ratio(numpy_json, tmp_path):
    mine = read_benchmark_json([numpy_json])
    median = mine.iloc[0].step_ms_median
    bench = _bench_csv(tmp_path / "bench.csv", [
        {**SMALL, "step_ms_median": 2 * median, "step_ms_iqr": 0.01},
        {**SMALL, "batch_size": 128, "step_ms_median": 5.0},  # not in the benchmarks
        {**SMALL, "backend": "torch", "step_ms_median": 5.0},
    ])
    joined = side_by_side(mine, bench)
    assert tuple(joined.columns) == SIDE_BY_SIDE and len(joined) == 1
    assert joined.iloc[0].ratio == pytest.approx(0.5)
    assert joined.iloc[0].bench_ms_median == pytest.approx(2 * median)
    row = side_by_side_table(joined).rows[0]
    assert row[:5] == ("numpy", "64-64-10", "32", "float32", "2") and row[-1] == "0.50×"


def test_a_bench_report_shows_both_medians_of_a_shared_size(numpy_json, tmp_path):
    folder = _bench_folder(tmp_path / "bench", [{**SMALL, "step_ms_median": 1.0}], numpy_json)
    text = (folder / "report.md").read_text(encoding="utf-8")
    assert "| backend | network | batch | dtype | threads | pytest-benchmark median |" in text
    assert "| numpy | 64-64-10 | 32 | float32 | 2 | " in text


def test_networks_of_the_same_widest_layer_and_depth_are_not_joined(numpy_json, tmp_path):
    """784-512-256-10 and 784-512-512-10: the same input, outputs, width (the widest hidden
    layer) and depth, but not the same network."""
    data = json.loads(numpy_json.read_text())
    data["benchmarks"][0]["extra_info"].update(
        layers="784-512-256-10", input_dim=784, width=512, depth=2, outputs=10)
    narrower = tmp_path / "narrower.json"
    narrower.write_text(json.dumps(data))
    mine = read_benchmark_json([narrower])
    size = {**SMALL, "input_dim": 784, "width": 512, "depth": 2, "outputs": 10}
    wider = _bench_csv(tmp_path / "wider.csv", [{**size, "layers": "784-512-512-10"}])
    assert side_by_side(mine, wider).empty
    same = _bench_csv(tmp_path / "same.csv", [{**size, "layers": "784-512-256-10"}])
    assert len(side_by_side(mine, same)) == 1


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
    bench = _bench_csv(tmp_path / "bench.csv", [{**SMALL, "threads": 4, "step_ms_median": 1.0}])
    assert side_by_side_table(side_by_side(mine, bench)).rows[0][4] == "2 vs 4"


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
                                        r"columns .*Received: one without layers, dtype$"):
        side_by_side(read_benchmark_json([numpy_json]),
                     pd.DataFrame(columns=[c for c in results.COLUMNS
                                           if c not in ("layers", "dtype")]))


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
