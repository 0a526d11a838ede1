"""Reproducers (suite.compare.repro, backends/repro/): the script a run writes for a fail or
known difference runs with its framework and NumPy alone, computes what the backend
computed, bit for bit, and shows the difference the suite measured at the step it named.
The other frameworks' parts have files of their own (tests/test_repro_*.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from repro_support import (
    assert_same,
    backend_values,
    make_state,
    run_script,
    saved,
    script_json,
)

from suite.compare import repro
from suite.rundir import PartsRow, SummaryRow


def test_a_script_is_its_framework_part_with_the_numpy_half_inlined():
    source = repro.script_source("backends.repro.torch")
    assert repro.COMMON_IMPORT not in source
    assert "from backends" not in source and "import suite" not in source
    assert "def measure(state, computed):" in source and "def compute(state" in source
    compile(source, "torch.py", "exec")  # one whole module


def test_a_framework_part_that_does_not_import_the_numpy_half_is_refused():
    with pytest.raises(ValueError, match="does not import the shared half"):
        repro.script_source("backends.repro.common")


def _check(check: str, verdict: str, step: int | None, tensor: str | None, ledger: str = ""
           ) -> SummaryRow:
    return SummaryRow("torch", check, verdict, step=step, tensor=tensor, rel_l2_error=3e-6,
                      noise=1e-7, tolerance=4e-7, ledger=ledger)


def test_the_reproducer_starts_where_the_parts_run_found_the_first_part_outside():
    first = PartsRow("torch", 5, "optimizer", "dense_1/bias", max_abs_diff=1e-6,
                     rel_l2_error=2e-6, noise=1e-7, tolerance=4e-7, within=False,
                     finite=True, variant_rel_l2_error=math.nan)
    target = repro.target_of([_check("trajectory", "fail", 7, "param dense_0/kernel")],
                             first)
    assert (target.part, target.tensor, target.step) == ("optimizer", "dense_1/bias", 5)


@pytest.mark.parametrize(("check", "tensor", "part", "named"), [
    ("gradients", "grad dense_1/kernel", "backward", "dense_1/kernel"),
    ("update", "update dense_0/bias", "optimizer", "dense_0/bias"),
    ("loss", "loss loss", "forward", "loss"),
])
def test_without_a_parts_run_it_starts_at_the_first_check_outside(check, tensor, part, named):
    rows = [_check("forward", "pass", None, None), _check(check, "known difference", 0,
                                                          tensor, "keras-x"),
            _check("trajectory", "known difference", 3, "param dense_0/kernel")]
    target = repro.target_of(rows, None)
    assert (target.part, target.tensor, target.step, target.ledger) == (part, named, 0,
                                                                        ("keras-x",))


def test_a_backend_that_passes_or_drifts_only_in_its_trajectory_gets_none():
    assert repro.target_of([_check("gradients", "pass", None, None)], None) is None
    assert repro.target_of([_check("trajectory", "fail", 3, "param dense_0/kernel")],
                           None) is None


@pytest.mark.parametrize(("part", "tensor", "step", "dtype"), [
    ("backward", "dense_0/kernel", 3, "float32"),
    ("optimizer", "dense_1/bias", 2, "float64"),
])
def test_torch_script_computes_what_the_backend_computes(tmp_path, part, tensor, step, dtype):
    pytest.importorskip("torch")
    from suite import spec as specs

    spec = specs.builtin("digits-mlp").with_training(dtype=dtype)
    folder = tmp_path / "repro"
    state = make_state(spec, "torch", part, tensor, step, folder)
    printed = script_json("torch", folder)
    assert (printed["part"], printed["tensor"], printed["step"]) == (part, tensor, step)
    assert_same(saved(folder), backend_values("torch", state))
    shown = printed["target"]
    # torch is a correct implementation: within the suite's factor of the noise
    limit = 4 * shown["noise"] if dtype == "float32" else 1e-14
    assert 0 < shown["error"] <= limit


@pytest.mark.slow
def test_a_known_difference_gets_a_reproducer_that_shows_it_standalone(tmp_path):
    """Keras on TensorFlow in float64 holds SGD's momentum as float32: the run names the
    entries, writes repro/keras.py at the optimizer's first step outside the noise, and the
    script, run as a user runs it, shows the update off by ~1e-8 from the exact answer and
    at the ledger variant's formula exactly."""
    pytest.importorskip("keras")
    import suite

    run = suite.compare("digits-mlp", backends=["keras"], dtype="float64", max_steps=4,
                        timing=False, out=tmp_path / "run")
    entry = run.reproducers["keras"]
    assert entry["status"] == "ok" and entry["reproduces"] is True
    assert (entry["part"], entry["step"]) == ("optimizer", 1)
    folder = run.path / "repro"
    assert sorted(p.name for p in folder.iterdir()) == ["keras.npz", "keras.py"]
    done = run_script("keras", folder, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "keras-float32-sgd-momentum" in done.stdout
    printed = script_json("keras", folder)
    shown = printed["target"]
    assert 1e-9 < shown["error"] < 1e-7 and shown["variant"] == 0.0
    assert np.isclose(shown["error"], entry["shown"])
