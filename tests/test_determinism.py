"""``--repeat``: each backend's lockstep run made again, and whether it was bit-identical.

Real runs: the reference (deterministic on the CPU: one thread count, one BLAS) and a
plug-in that sums in another order at every build (tests/plugins/faulty.py).
"""

from __future__ import annotations

import json

import pytest
from plugged import plugins_on_path

import suite
from suite import rundir
from suite.compare.plan import Options, Task
from suite.errors import UserError


@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    with plugins_on_path():
        yield suite.compare("regression-mlp", backends=["faulty:UnrepeatableBackend"],
                            max_steps=5, dtype="float64", timing=False, repeat=2,
                            out=tmp_path_factory.mktemp("repeat") / "run")


def test_a_deterministic_backend_is_bit_identical(repeated):
    entry = repeated.determinism["numpy"]
    assert entry["runs"] == 2 and entry["bit_identical"] is True
    assert entry["max_rel_diff"] == 0.0 and entry["first_step"] is None


def test_a_backend_that_sums_in_another_order_is_not_bit_reproducible(repeated):
    entry = repeated.determinism["unrepeatable"]
    assert entry["bit_identical"] is False
    assert entry["first_step"] == 0
    assert 0 < entry["max_rel_diff"] < 1e-12  # rounding, not a different computation
    text = (repeated.path / "report.md").read_text(encoding="utf-8")
    assert "unrepeatable: not bit-reproducible: 2 runs first differ at step 0" in text
    assert "numpy: bit-identical in 2 runs" in text


def test_every_repeat_keeps_its_record_and_run_json_its_count(repeated):
    info = json.loads((repeated.path / "run.json").read_text(encoding="utf-8"))
    assert info["repeat"] == 2
    for name in ("numpy", "unrepeatable"):
        assert (rundir.repeat_dir(repeated.path, name, 2) / "record.json").exists()
    assert not (repeated.path / "repeats" / "numpy~unrepeatable").exists()


def test_repeats_count_in_the_record_budget_and_variants_never_repeat():
    options = Options(repeat=3)
    tasks = [Task("numpy", "t", "reference"), Task("torch", "t", "backend"),
             Task("numpy~keras", "t", "variant")]
    assert [options.repeats(t) for t in tasks] == [3, 3, 1]
    assert options.recording_runs(tasks) == 7


def test_repeat_must_be_positive():
    with pytest.raises(UserError, match="--repeat"):
        Options(repeat=0)


def test_the_run_to_run_spread_of_an_unrepeatable_backend_joins_its_noise(repeated):
    """Two runs of a backend that sums in another order at each build differ: by as much
    as its noise is at least, row by row."""
    import numpy as np

    from suite import record

    cmp = repeated.comparison
    grads = cmp[(cmp.backend == "unrepeatable") & (cmp.kind == "grad") & (cmp.step == 0)]
    first = record.read_run(repeated.path, "unrepeatable")
    again = record.read_folder(rundir.repeat_dir(repeated.path, "unrepeatable", 2))
    for row in grads.itertuples():
        a = np.asarray(first.grads[f"0/{row.tensor}"], np.float64)
        b = np.asarray(again.grads[f"0/{row.tensor}"], np.float64)
        assert row.noise >= np.linalg.norm(a - b) / np.linalg.norm(a) * (1 - 1e-9)
    assert (grads.noise > 0).all()
