"""Reproducers of the tensorflow and jax backends (backends/repro/tensorflow.py, jax.py):
the script a run writes runs with its framework and NumPy alone and computes what the
backend computed, bit for bit, at the state's step; see test_repro.py for torch's."""

from __future__ import annotations

import importlib.util

import pytest
from repro_support import assert_same, backend_values, make_state, matrix, saved, script_json

from suite import spec as specs

pytestmark = pytest.mark.slow  # two framework processes a case

REQUIRES = {"tensorflow": ("tensorflow",), "jax": ("jax", "optax")}
CASES = [
    # spec, part, tensor, step, dtype
    ("digits-mlp", "backward", "dense_0/kernel", 3, "float32"),
    ("digits-mlp", "optimizer", "dense_1/bias", 2, "float64"),  # sgd, momentum 0.9
    ("regression-mlp", "optimizer", "dense_2/kernel", 2, "float32"),  # adam
]


@pytest.mark.parametrize(("backend", "spec", "part", "tensor", "step", "dtype"), matrix(
    sorted(REQUIRES), CASES, {("tensorflow", 2), ("jax", 0), ("jax", 2)}))
def test_script_computes_what_the_backend_computes(tmp_path, backend, spec, part, tensor,
                                                   step, dtype):
    missing = [m for m in REQUIRES[backend] if importlib.util.find_spec(m) is None]
    if missing:  # found, not imported: the framework runs in the subprocesses only
        pytest.skip(f"{', '.join(missing)} not installed")
    folder = tmp_path / "repro"
    state = make_state(specs.builtin(spec).with_training(dtype=dtype), backend, part,
                       tensor, step, folder)
    printed = script_json(backend, folder)
    assert (printed["backend"], printed["part"], printed["tensor"], printed["step"]) == \
        (backend, part, tensor, step)
    assert_same(saved(folder), backend_values(backend, state))
