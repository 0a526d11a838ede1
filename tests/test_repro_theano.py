"""Reproducers of the theano and pytensor backends (one framework part for both,
backends/repro/theano.py): the script a run writes runs with its framework and NumPy
alone and computes what the backend computed, bit for bit, at the state's step; see
test_repro.py for torch's. Theano runs in an environment of its own (NumPy 1.23), built
on first use under $FNN_SUITE_ENVS."""

from __future__ import annotations

import importlib.util

import pytest
from repro_support import assert_same, backend_values, make_state, matrix, saved, script_json

from backends.theano_backend import default_compiledir
from suite import envs, registry
from suite import spec as specs
from suite.errors import UserError

pytestmark = pytest.mark.slow  # two framework processes a case, each compiling its graph

CASES = [
    # part, tensor, step, dtype (digits-mlp: relu, sparse cross-entropy, sgd momentum 0.9)
    ("backward", "dense_0/kernel", 3, "float32"),
    ("optimizer", "dense_1/bias", 2, "float64"),
]


def _available(backend: str) -> None:
    """Skip where the backend's framework cannot run: pytensor not installed here, or
    Theano's environment not buildable."""
    if backend == "pytensor":
        if importlib.util.find_spec("pytensor") is None:
            pytest.skip("pytensor not installed")
        return
    try:
        envs.ensure(registry.environment_of(backend))
    except UserError as error:
        pytest.skip(f"no {backend} environment: {error}")


@pytest.mark.parametrize(("backend", "part", "tensor", "step", "dtype"), matrix(
    ["pytensor", "theano"], CASES, {("theano", 1), ("pytensor", 0), ("pytensor", 1)}))
def test_script_computes_what_the_backend_computes(tmp_path, monkeypatch, backend, part,
                                                   tensor, step, dtype):
    _available(backend)
    # the script and the backend share the backend's compile cache (Theano's C code)
    monkeypatch.setenv("THEANO_FLAGS", f"base_compiledir={default_compiledir()}")
    folder = tmp_path / "repro"
    state = make_state(specs.builtin("digits-mlp").with_training(dtype=dtype), backend,
                       part, tensor, step, folder)
    printed = script_json(backend, folder)
    assert (printed["backend"], printed["part"], printed["tensor"], printed["step"]) == \
        (backend, part, tensor, step)
    assert backend in printed["versions"]
    assert_same(saved(folder), backend_values(backend, state))
