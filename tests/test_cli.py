"""The `suite` command as a user runs it: --help everywhere, and a user's mistake is one
line on stderr with exit code 2 and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    lines = done.stdout.splitlines()
    estimate = next(i for i, line in enumerate(lines) if line.startswith("record: "))
    assert "step 0, then every 2nd step from step 1, and the last (3 of 4)" in \
        lines[estimate]
    assert "about 32.3 KB for 1 run (budget 1.0 GB)" in lines[estimate]
    assert estimate < next(i for i, line in enumerate(lines) if line.startswith("report: "))
