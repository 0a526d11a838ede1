"""The `suite` command as a user runs it: --help everywhere, and a user's mistake is one
line on stderr with exit code 2 and no traceback."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from suite import registry
from suite import spec as spec_module

SUITE = [sys.executable, "-c", "from suite.cli import main; main()"]


def suite_cmd(*args, cwd=None):
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([*SUITE, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


@pytest.mark.parametrize("command", [[], ["compare"], ["backends"], ["report"], ["specs"]])
def test_help_everywhere(command):
    done = suite_cmd(*command, "--help")
    assert done.returncode == 0 and "Usage" in done.stdout


def test_backends_lists_installed_ones_with_versions():
    done = suite_cmd("backends")
    assert done.returncode == 0
    for name in ("numpy", "torch", "keras"):
        assert name in done.stdout
    assert "tensorflow" in done.stdout


# ---------------------------------------------------------------------------- for programs


def test_backends_piped_is_one_line_a_backend_name_first():
    done = suite_cmd("backends")
    header, *lines = done.stdout.splitlines()
    assert header.split("\t") == ["backend", "available", "versions", "reason", "target"]
    names = [line.split("\t")[0] for line in lines]
    assert names == list(registry.entry_points())
    assert [line for line in lines if "cntk" in line] == [lines[names.index("cntk")]]
    assert lines[names.index("cntk")].startswith("cntk\tfalse\t")
    assert "─" not in done.stdout and "\x1b" not in done.stdout


def test_backends_as_json_and_csv_are_the_same_backends():
    names = [line.split("\t")[0] for line in suite_cmd("backends").stdout.splitlines()[1:]]
    found = json.loads(suite_cmd("backends", "--format", "json").stdout)
    assert [r["backend"] for r in found] == names
    numpy = found[names.index("numpy")]
    assert numpy["available"] is True and numpy["reason"] is None and "numpy" in numpy["versions"]
    rows = list(csv.DictReader(io.StringIO(suite_cmd("backends", "--format", "csv").stdout)))
    assert [r["backend"] for r in rows] == names
    assert {r["available"] for r in rows} <= {"true", "false"}


def test_specs_piped_are_rows_and_the_names_go_to_stderr():
    done = suite_cmd("specs")
    header, *lines = done.stdout.splitlines()
    assert header.split("\t") == ["name", "network", "loss", "optimizer", "data"]
    assert [line.split("\t")[0] for line in lines] == spec_module.builtin_names()
    assert "activations:" in done.stderr and "activations" not in done.stdout
    found = json.loads(suite_cmd("specs", "--format", "json").stdout)
    assert [r["name"] for r in found] == spec_module.builtin_names()
    rows = list(csv.DictReader(io.StringIO(suite_cmd("specs", "--format", "csv").stdout)))
    assert rows == found


def test_a_terminal_still_gets_the_rich_table():
    env = {**os.environ, "COLUMNS": "100", "FORCE_COLOR": "1"}  # Rich: stdout is a terminal
    done = subprocess.run([*SUITE, "backends"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert "Backends" in done.stdout and "┏" in done.stdout and "\tfalse\t" not in done.stdout


def test_compare_piped_prints_its_summary_rows_alone(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent / "plugins")}
    done = subprocess.run([*SUITE, "compare", "regression-mlp", "--backends",
                           "faulty:DriftBackend", "--max-steps", "6", "--epochs", "1",
                           "--dtype", "float64", "--timing-steps", "3",
                           "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    columns = header.split("\t")
    assert columns[:7] == ["backend", "forward", "loss", "gradients", "update", "trajectory",
                           "reason"]
    rows = [dict(zip(columns, line.split("\t"), strict=True)) for line in lines]
    assert [r["backend"] for r in rows] == ["numpy", "drift"]
    assert rows[0]["forward"] == "" and float(rows[0]["step_ms_median"]) > 0
    assert rows[1]["trajectory"] == "fail" and rows[1]["reason"].startswith("trajectory: ")
    progress = "".join(done.stderr.split())  # Rich wraps a long temporary path at 80 columns
    assert "report.html" in progress and "drift" in progress  # its progress


def write_spec(tmp_path, old="", new=""):
    text = (Path(__file__).parent.parent / "suite/builtin_specs/regression-mlp.toml").read_text()
    path = tmp_path / f"spec{len(list(tmp_path.glob('spec*.toml')))}.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def bad_inputs(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 8))
    np.savez(tmp_path / "wide.npz", x=np.hstack([x, x]), y=x[:, :1])
    x_nan = x.copy()
    x_nan[3, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x=x_nan, y=x[:, :1])
    np.savez(tmp_path / "labels.npz", x=np.tile(x, 8), y=np.arange(20) % 12)
    (tmp_path / "broken.toml").write_text("input_dim = 3\n[[layers]\n")
    return [
        (["compare", str(write_spec(tmp_path, '"tanh"', '"tanhh"'))],
         "unknown activation 'tanhh'"),
        (["compare", str(write_spec(tmp_path, 'name = "mse"', 'name = "msee"'))],
         "unknown loss 'msee'"),
        (["compare", str(write_spec(tmp_path, 'name = "adam"', 'name = "adamm"'))],
         "unknown optimizer 'adamm'"),
        (["compare", "--backends", "numpy,pytorch"], "unknown backend 'pytorch'"),
        (["compare", str(write_spec(tmp_path, "units = 32", "units = 0"))],
         "expected a positive integer. Received: units=0"),
        (["compare", str(write_spec(tmp_path, 'name = "mse"', 'name = "binary_crossentropy"'))],
         "needs a sigmoid output layer"),
        (["compare", "regression-mlp", "--data", str(tmp_path / "wide.npz")],
         "16 features, but the spec's input_dim is 8"),
        (["compare", "regression-mlp", "--data", str(tmp_path / "nan.npz")], "NaN"),
        (["compare", "digits-mlp", "--data", str(tmp_path / "labels.npz")], "12 classes"),
        (["compare", str(tmp_path / "missing.toml")], "file not found"),
        (["compare", "regression-mlp", "--data", str(tmp_path / "missing.csv")], "missing.csv"),
        (["compare", str(tmp_path / "broken.toml")], "malformed TOML"),
        (["compare", "--epochs", "0"], "epochs"),
        (["compare", "--record", "sometimes"],
         "expected all, auto or first=N,every=K. Received: record='sometimes' (--record)"),
        (["compare", "--record-budget", "lots"], "(--record-budget)"),
        (["compare", str(write_spec(tmp_path, "[data]", '[record]\nsteps = "most"\n[data]'))],
         "line 36: record.steps: expected all, auto or first=N,every=K"),
        (["compare", "--record", "all", "--record-budget", "1KB"],
         "over the budget of 1.0 KB (record fewer steps with --record"),
        (["report", str(tmp_path)], "not a run directory"),
        (["backends", "--format", "yaml"], "Received: --format yaml"),
        (["compare", "--format", "yaml"], "expected --format table, tsv, csv or json"),
    ]


def test_bad_input_is_one_line_exit_2_no_traceback(tmp_path):
    for args, expected in bad_inputs(tmp_path):
        done = suite_cmd(*args, cwd=tmp_path)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2, (args, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)
        assert expected in lines[0], (args, lines[0])
        assert "Traceback" not in done.stderr + done.stdout


def test_compare_prints_the_record_estimate_before_it_runs(tmp_path):
    done = suite_cmd("compare", "regression-mlp", "--backends", "numpy", "--max-steps", "4",
                     "--no-timing", "--record", "first=1,every=2", "--out",
                     str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()  # stdout is not a terminal: the notes go to stderr
    estimate = next(i for i, line in enumerate(lines) if line.startswith("record: "))
    assert "step 0, then every 2nd step from step 1, and the last (3 of 4)" in \
        lines[estimate]
    # the reference and its noise run, which records in float64: twice the bytes
    assert "about 96.8 KB for 2 runs, 1 of them in float64 (budget 1.0 GB)" in lines[estimate]
    assert estimate < next(i for i, line in enumerate(lines) if line.startswith("report: "))
