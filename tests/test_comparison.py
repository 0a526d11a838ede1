"""Comparison and verdicts, on real runs of the reference and of plug-ins built on it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from plugged import plugins_on_path

import suite
from suite.compare.distance import RunningSize, rel_l2_error
from suite.compare.noise import FIXED_TOLERANCES, FLOORS, NOISE_FACTOR, describe


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory):
    with plugins_on_path():
        yield suite.compare("regression-mlp", backends=["faulty:DriftBackend"], max_steps=6,
                            dtype="float64", timing=False,
                            out=tmp_path_factory.mktemp("drift") / "run")


def test_rel_l2_error():
    assert rel_l2_error(np.array([3.0, 4.0]), np.array([3.0, 4.0])) == 0
    assert rel_l2_error(np.array([3.0, 5.0]), np.array([3.0, 4.0])) == pytest.approx(0.2)
    assert rel_l2_error(np.zeros(2), np.zeros(2)) == 0
    assert math.isinf(rel_l2_error(np.ones(2), np.zeros(2)))


def test_the_noise_is_floored_at_the_dtypes_epsilon_and_said_so():
    assert FLOORS["float32"]["rel"] == float(np.finfo(np.float32).eps)
    assert FLOORS["float64"]["rel"] == float(np.finfo(np.float64).eps)
    assert f"within {NOISE_FACTOR:g} x that" in describe("float32")
    assert "numpy+float64" in describe("float32") and "numpy+reordered" in describe("float64")
    # the old fixed limits stay for runs written before noise runs: no looser than before
    assert FIXED_TOLERANCES["float32"]["step"] == 1e-4


def test_errors_are_relative_to_the_largest_the_tensor_has_been():
    size = RunningSize()
    assert size("g", np.array([3.0, 4.0])) == 5.0
    assert size("g", np.array([0.3, 0.4])) == 5.0  # a gradient that shrank: still 5
    assert size("other", np.array([1.0])) == 1.0


def test_a_deviation_fails_naming_the_first_step_and_tensor(drift_run):
    verdicts = drift_run.summary.set_index("check")
    for check in ("forward", "loss", "gradients", "update"):
        assert verdicts.loc[check, "verdict"] == "pass"
    trajectory = verdicts.loc["trajectory"]
    assert trajectory.verdict == "fail"
    assert (trajectory.step, trajectory.tensor) == (2, "param dense_2/bias")
    assert "param dense_2/bias differs by" in trajectory.reason and "at step 2" in (
        trajectory.reason)


def test_comparison_rows_hold_every_step_and_tensor(drift_run):
    cmp = drift_run.comparison
    assert set(cmp.kind) == {"output", "loss", "grad", "update", "param"}
    params = cmp[cmp.kind == "param"]
    assert len(params) == 6 * 6  # 6 steps x 3 layers x (kernel, bias)
    exact = params[params.step < 2]
    assert (exact.rel_l2_error == 0).all()  # the same code on the same inputs: bit for bit
    bias = params[(params.tensor == "dense_2/bias") & (params.step == 2)].iloc[0]
    assert bias.max_abs_diff == pytest.approx(1e-3) and not bias.within
    assert cmp.variant_rel_l2_error.isna().all()  # no ledger entry concerns this plug-in


def test_stored_parameters_are_snapshots_even_if_a_backend_hands_out_views(tmp_path):
    with plugins_on_path():
        run = suite.compare("regression-mlp", backends=["faulty:ViewsBackend"], max_steps=4,
                            dtype="float64", timing=False, out=tmp_path / "run")
    assert set(run.summary.verdict) == {"pass"}
    params = run.arrays("params", "views")
    assert not np.array_equal(params["0/dense_0/kernel"], params["3/dense_0/kernel"])


def test_an_unavailable_backend_has_no_verdicts_and_its_reason_is_reported(tmp_path):
    """cntk in a plain `suite compare`: listed with its reason, never a row of errors."""
    import json

    from report_fixture import build_run

    from suite.compare import comparison, run_tables
    from suite.compare.results import Run

    run_dir = build_run(tmp_path)
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    meta["backends"]["cntk"] = {"role": "backend", "status": "unavailable",
                                "reason": "no CNTK build for any Python this machine runs"}
    (run_dir / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    tables = comparison.build_tables(run_dir)
    assert "cntk" not in set(tables.summary.backend)
    run = Run(run_dir)
    assert "cntk" not in run.compared
    errors = run_tables.errors(run)
    assert ("cntk", "lockstep run", "unavailable",
            "no CNTK build for any Python this machine runs") in errors.rows
