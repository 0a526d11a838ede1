"""``suite bench``: the grid, the memory check, one worker per backend with per-size time
limits, bench.csv and run.json as the issue lists them, and the report in a real browser.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import Page, browse, external_loads

from suite import spec as specs
from suite.bench import memory, report, results, runner, standalone
from suite.bench.sizes import (
    Size,
    flops_per_step,
    grid,
    parameter_count,
    sized_spec,
    synthetic_batches,
)
from suite.errors import SpecError, UserError

PLUGINS = Path(__file__).parent / "plugins"
SUITE = [sys.executable, "-c", "from suite.cli import main; main()"]
REQUIRED = ["backend", "width", "depth", "batch_size", "dtype", "threads", "first_step_s",
            "step_ms_median", "step_ms_iqr", "samples_per_s", "gflops", "peak_share",
            "peak_rss_mb"]


@pytest.fixture
def plugins_on_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(PLUGINS))
    monkeypatch.syspath_prepend(str(PLUGINS))


def quick(**changes) -> runner.BenchOptions:
    settings = dict(warmup=1, steps=5, min_steps=3, budget_s=0.2, size_timeout_s=60.0,
                    threads=2, force=True)
    return runner.BenchOptions(**{**settings, **changes})


# ---------------------------------------------------------------------------- the grid


def test_grid_is_every_combination_smallest_work_first():
    spec = specs.builtin("digits-mlp")
    sizes = grid(spec, [64, 16], [2, 1], [8, 32])
    assert len(sizes) == 8
    work = [flops_per_step(sized_spec(spec, s)) for s in sizes]
    assert work == sorted(work)
    assert sizes[0] == Size(16, 1, 8)


def test_sized_spec_repeats_the_first_hidden_layer_and_keeps_the_output():
    spec = specs.builtin("mnist-mlp")
    sized = sized_spec(spec, Size(256, 3, 64))
    assert sized.sizes == [784, 256, 256, 256, 10]
    assert {layer.activation.name for layer in sized.layers[:-1]} == {"relu"}
    assert sized.layers[-1] == spec.layers[-1] and sized.training.batch_size == 64
    # no width or depth: the spec's own uneven layers
    assert sized_spec(spec, Size(None, None, 128)).sizes == [784, 1000, 500, 100, 10]


def test_flops_count_six_multiply_adds_per_weight_and_sample():
    spec = sized_spec(specs.builtin("digits-mlp"), Size(512, 2, 128))
    assert spec.sizes == [64, 512, 512, 10]
    assert flops_per_step(spec) == 6 * 128 * (64 * 512 + 512 * 512 + 512 * 10)


def test_the_spec_bench_table_is_the_default_grid(tmp_path):
    text = specs.builtin("digits-mlp").to_dict()
    text["bench"] = {"widths": [8, 16], "batch_sizes": [4]}
    spec = specs.from_dict(text)
    assert [(s.width, s.depth, s.batch_size) for s in grid(spec)] == [(8, None, 4),
                                                                      (16, None, 4)]
    assert grid(spec, batch_sizes=[2])[0].batch_size == 2  # the command line wins
    text["bench"] = {"widths": [0]}
    with pytest.raises(SpecError, match=r"bench\.widths.*positive"):
        specs.from_dict(text)


def test_builtin_benchmark_specs_have_the_published_shapes():
    assert specs.builtin("fcn-5").sizes == [26752, 2048, 2048, 2048, 26752]
    assert specs.builtin("fcn-8").sizes == [26752] + [2048] * 6 + [26752]
    assert {layer.activation.name for layer in specs.builtin("fcn-8").layers} == {
        "sigmoid", "softmax"}
    assert specs.builtin("mnist-mlp").sizes == [784, 1000, 500, 100, 10]


def test_synthetic_batches_take_the_loss_form_and_dtype():
    spec = sized_spec(specs.builtin("fcn-5"), Size(8, 1, 3))
    (x, y), = synthetic_batches(spec, 1, seed=0)
    assert x.shape == (3, 26752) and x.dtype == np.float32
    assert y.shape == (3,) and y.dtype == np.int64 and y.max() < 26752


# ---------------------------------------------------------------------------- bad input


def test_a_grid_too_large_for_memory_is_refused_with_the_estimate():
    spec = specs.builtin("digits-mlp")
    sizes = grid(spec, [64, 50000], [4], [512])
    with pytest.raises(UserError) as info:
        memory.check(spec, sizes, limit=8 << 30)
    message = str(info.value)
    largest = sized_spec(spec, sizes[-1])
    need = memory.estimate_bytes(largest)
    # float64 initial values, their float32 copy, the framework's parameters, gradients,
    # one spare copy and SGD's momentum: 28 bytes a parameter at least
    assert need > 28 * parameter_count(largest)
    assert f"width 50000, depth 4, batch 512 needs about {need / (1 << 30):.1f} GiB" in message
    assert "8.0 GiB is available; 1 of 2 sizes do not fit" in message
    assert memory.check(spec, sizes[:1], limit=8 << 30)["largest_estimate_gib"] < 8


def test_cli_bad_grid_and_too_large_grid_are_one_line_exit_2():
    for args, expected in ((["--widths", "6x4"], "expected comma-separated positive integers"),
                           (["--widths", "200000", "--depths", "8"], "grid too large")):
        done = subprocess.run([*SUITE, "bench", *args, "--dry-run"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2
        assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr


def test_standalone_comparison_needs_a_plain_mlp_spec():
    with pytest.raises(UserError, match="momentum 0"):
        standalone.check_spec(specs.builtin("digits-mlp"))  # SGD with momentum
    standalone.check_spec(specs.builtin("mnist-mlp"))
    assert standalone.script_for("keras-torch").name == "keras_torch_loop.py"


# ---------------------------------------------------------------------------- a real sweep


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """numpy and torch on a small grid: the folder a user gets."""
    spec = specs.builtin("digits-mlp")
    out = tmp_path_factory.mktemp("bench") / "sweep"
    sizes = grid(spec, [16, 256], [1, 2], [32])
    return runner.run(spec, sizes, quick(backends=["numpy", "torch"], out=out))


@pytest.mark.slow
def test_bench_csv_has_a_row_per_backend_and_size_with_every_column(swept):
    rows = pd.read_csv(swept / "bench.csv")
    assert set(REQUIRED) <= set(rows.columns)
    assert len(rows) == 8 and set(rows.backend) == {"numpy", "torch"}
    assert (rows.status == "ok").all(), rows[["backend", "status", "reason"]]
    assert (rows.threads == 2).all() and (rows.dtype == "float32").all()
    assert (rows.step_ms_median > 0).all() and (rows.first_step_s > 0).all()
    assert (rows.peak_rss_mb > 10).all() and (rows.steps_timed >= 3).all()
    # samples/s and GFLOP/s follow from the median; peak_share from the measured peak
    peak = results.load(swept).meta["peak"]["gflops"]
    np.testing.assert_allclose(rows.samples_per_s, rows.batch_size / rows.step_ms_median * 1e3)
    np.testing.assert_allclose(rows.gflops, rows.gflop_per_step / rows.step_ms_median * 1e3)
    np.testing.assert_allclose(rows.peak_share, rows.gflops / peak)


@pytest.mark.slow
def test_run_json_records_the_peak_and_every_thread_setting(swept):
    meta = results.load(swept).meta
    assert meta["kind"] == "bench" and meta["status"] == "complete"
    assert meta["peak"]["gflops"] > 1 and set(meta["peak"]["by_library"]) == {"numpy", "torch"}
    assert meta["threads"]["count"] == 2
    assert meta["threads"]["environment"]["OMP_NUM_THREADS"] == "2"
    assert meta["backends"]["torch"]["runtime"]["torch.num_threads"] == 2
    assert meta["backends"]["torch"]["status"] == "ok" and meta["backends"]["torch"]["versions"]


@pytest.mark.slow
def test_report_names_where_torch_overtakes_numpy_and_draws_both_figures(swept, tmp_path):
    text = (swept / "report.md").read_text(encoding="utf-8")
    assert "## Where each backend overtakes the NumPy reference" in text
    crossing = report.crossovers(results.load(swept))
    assert list(crossing.backend) == ["torch"]
    html = swept / "report.html"
    dom = Page(browse(tmp_path, html, "--dump-dom").stdout)
    assert {svg.get("aria-label") for svg in dom.find("svg")} == {"step-time", "efficiency"}
    assert len(dom.find("table", id="crossover-table")) == 1
    assert "torch.num_threads=2" in dom.text()
    # self-contained: nothing loaded from outside (a plain link to bench.csv loads nothing)
    assert [load for load in external_loads(dom) if not load.startswith("<a ")] == []


@pytest.mark.slow
def test_a_size_that_hangs_is_marked_timeout_and_the_sweep_goes_on(tmp_path, plugins_on_path):
    spec = specs.builtin("digits-mlp")
    sizes = grid(spec, [16, 32, 64], [1], [8])
    out = runner.run(spec, sizes, quick(backends=["faulty:HangsAtWidth32Backend",
                                                  "faulty:CrashesAtWidth32Backend"],
                                        size_timeout_s=10.0, out=tmp_path / "b"))
    rows = pd.read_csv(out / "bench.csv").set_index(["backend", "width"])
    hang, crash = "hangs-at-32", "crashes-at-32"
    assert rows.loc[(hang, 32), "status"] == "timeout"
    assert "timed out after 10 s" in rows.loc[(hang, 32), "reason"]
    assert rows.loc[(crash, 32), "status"] == "error"
    assert "exited with code 3" in rows.loc[(crash, 32), "reason"]
    for name in (hang, crash):  # the sizes before and after it finished
        assert rows.loc[(name, 16), "status"] == "ok" and rows.loc[(name, 64), "status"] == "ok"
    assert rows.loc[("numpy", 32), "status"] == "ok"
    assert "Errors and timeouts" in (out / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_standalone_scripts_run_beside_the_suite_at_every_size(tmp_path):
    spec = specs.builtin("mnist-mlp")
    out = runner.run(spec, grid(spec, [16, 32], [1], [8]),
                     quick(backends=["numpy", "torch"], standalone=True, out=tmp_path / "s"))
    rows = pd.read_csv(out / "bench.csv")
    assert (rows.standalone_status == "ok").all(), rows.standalone_reason
    assert (rows.standalone_ms_median > 0).all()
    np.testing.assert_allclose(rows.suite_vs_standalone,
                               rows.step_ms_median / rows.standalone_ms_median)
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "## The suite's figures against standalone scripts" in text
    assert "| torch | 784-32-10 b8 |" in text


# ---------------------------------------------------------------------------- the analysis


def timed(steps: dict[str, list[float]]) -> results.Bench:
    """A Bench of hand-set median step times (ms), one per size, sizes in order of work."""
    rows = [{"backend": name, "size_index": i, "layers": f"8-{2 ** i}-2", "batch_size": 4,
             "gflop_per_step": float(i + 1), "step_ms_median": ms, "status": "ok"}
            for name, times in steps.items() for i, ms in enumerate(times)]
    return results.Bench(Path("."), {}, pd.DataFrame(rows))


def test_crossover_is_the_first_size_from_which_a_backend_stays_ahead():
    bench = timed({"numpy": [1.0, 2.0, 4.0, 8.0],
                   "always": [0.5, 1.0, 2.0, 4.0],   # ahead everywhere
                   "later": [2.0, 1.0, 5.0, 4.0],    # ahead at 1, behind at 2: from 3 only
                   "never": [2.0, 4.0, 8.0, 16.0],
                   "equal": [1.0, 2.0, 4.0, 8.0]})   # a tie is not faster
    found = report.crossovers(bench).set_index("backend")
    assert found.loc["always", "overtakes"] == "at every size"
    assert found.loc["always", "speedup"] == pytest.approx(2.0)
    assert found.loc["later", "overtakes"] == "8-8-2 b4"
    assert found.loc["later", "speedup"] == pytest.approx(2.0)
    assert found.loc["never", "overtakes"] == "not within this grid"
    assert pd.isna(found.loc["never", "speedup"]) and found.loc["never", "largest"] == 0.5
    assert found.loc["equal", "overtakes"] == "not within this grid"


def test_a_sweep_stopped_before_any_row_still_renders_its_report(tmp_path):
    (tmp_path / "run.json").write_text(
        '{"kind": "bench", "status": "interrupted", "spec": {"name": "x"}}', encoding="utf-8")
    report.render(tmp_path)
    assert "benchmark: x" in (tmp_path / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_python_api_runs_a_sweep(tmp_path):
    from suite import api

    out = api.bench("digits-mlp", ["numpy"], widths=[16], depths=[1], batch_sizes=[8],
                    steps=5, out=tmp_path / "api", force=True)
    rows = pd.read_csv(out / "bench.csv")
    assert list(rows.status) == ["ok"] and rows.layers[0] == "64-16-10"
