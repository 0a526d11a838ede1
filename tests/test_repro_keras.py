"""The Keras reproducer (backends/repro/keras.py), one framework part for keras,
keras-torch and keras-jax: the script a run writes imports Keras on the state's backend
and computes what that backend computes, bit for bit, at the state's step; see
test_repro.py for torch's."""

from __future__ import annotations

import importlib.util

import pytest
from repro_support import assert_same, backend_values, make_state, matrix, saved, script_json

from suite import spec as specs

pytestmark = pytest.mark.slow  # two framework processes a case

REQUIRES = {"keras": ("keras", "tensorflow"), "keras-torch": ("keras", "torch"),
            "keras-jax": ("keras", "jax")}
CASES = [
    # part, tensor, step, dtype
    ("backward", "dense_0/kernel", 3, "float32"),
    ("optimizer", "dense_1/bias", 2, "float64"),  # digits-mlp: sgd, momentum 0.9
]


@pytest.mark.parametrize(("backend", "part", "tensor", "step", "dtype"), matrix(
    sorted(REQUIRES), CASES, {("keras", 0), ("keras-torch", 1)}))
def test_script_computes_what_the_backend_computes(tmp_path, backend, part, tensor, step,
                                                   dtype):
    missing = [m for m in REQUIRES[backend] if importlib.util.find_spec(m) is None]
    if missing:  # found, not imported: Keras runs in the subprocesses only
        pytest.skip(f"{', '.join(missing)} not installed")
    folder = tmp_path / "repro"
    state = make_state(specs.builtin("digits-mlp").with_training(dtype=dtype), backend, part,
                       tensor, step, folder)
    printed = script_json(backend, folder)
    assert (printed["backend"], printed["part"], printed["tensor"], printed["step"]) == \
        (backend, part, tensor, step)
    assert printed["versions"]["keras"]
    assert_same(saved(folder), backend_values(backend, state))
