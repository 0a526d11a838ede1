"""Theano-specific pins. Theano 1.0.5 runs in an environment of its own (NumPy 1.23), so
this process never imports it: the fast tests check what is importable without it, the
slow ones run the conformance kit (worker in the Theano environment, built on first use
under $FNN_SUITE_ENVS) and Theano's own sigmoid and softplus there.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from backends import theano_backend
from backends.theano_backend import TheanoBackend, theano_flags
from suite import catalogue, envs, registry
from suite.kit import KitOptions
from suite.kit.pytest_checks import kit_result
from suite.ledger import theano as theano_ledger
from suite.spec import builtin


def test_module_does_not_import_theano():
    """Listing backends imports the module only: Theano comes in with load()."""
    assert "theano" not in sys.modules
    assert registry.import_target(registry.resolve("theano")) is TheanoBackend


def test_environment_pins_theano_and_its_numpy():
    spec = registry.environment_of("theano")
    assert spec is not None
    assert set(spec.requirements) == {"theano==1.0.5", "numpy==1.23.5", "scipy==1.10.1"}


def test_registries_cover_the_catalogue():
    hidden = set(catalogue.ACTIVATIONS) - {"softmax"}  # softmax: fused output only
    assert set(theano_backend.ACTIVATIONS) == hidden
    assert set(theano_backend.FUSED_OUTPUTS) == set(catalogue.FUSED_OUTPUT.values())
    assert set(theano_backend.LOSSES) == set(catalogue.LOSSES)
    assert set(theano_backend.OPTIMIZERS) == set(catalogue.OPTIMIZERS)


def test_flags_keep_the_users_and_add_the_defaults():
    flags = theano_flags("linker=py,floatX=float32", "compile-cache")
    pairs = dict(item.split("=", 1) for item in flags.split(","))
    assert pairs["linker"] == "py" and pairs["floatX"] == "float32"  # the user's win
    assert pairs["blas.ldflags"] == ""  # no BLAS to link: NumPy's is used
    assert pairs["base_compiledir"] == "compile-cache"
    assert theano_flags("", "/x").startswith("blas.ldflags=,linker=cvm,")


def test_compile_cache_is_in_the_temporary_folder():
    import tempfile

    folder = theano_backend.default_compiledir()
    assert os.path.dirname(folder) == tempfile.gettempdir()


def test_build_before_load_says_so():
    with pytest.raises(RuntimeError, match=r"load\(\) must be called"):
        TheanoBackend().build(builtin("digits-mlp"), {}, "float64", "cpu")


def test_ledger_entry_names_theano_and_its_source():
    (entry,) = theano_ledger.ENTRIES
    assert entry.backends == ("theano",) and "sigm.py" in entry.source
    assert not entry.conventions  # the probes never reach |z| > 14: nothing to reproduce


@pytest.mark.slow
def test_conformance_kit_passes_every_probe_in_both_dtypes():
    """Every probe of the battery passes in float32 and float64 (no known differences)."""
    result = kit_result("theano", KitOptions())
    cells = result.cells[result.cells.backend == "theano"]
    assert set(cells.dtype) == {"float32", "float64"}
    assert len(set(cells.probe)) >= 35
    bad = cells[cells.verdict != "pass"]
    assert bad.empty, bad[["probe", "dtype", "check", "verdict", "reason"]].to_string()
    assert result.versions["theano"]["theano"] == "1.0.5"


_SATURATION = """
import numpy as np, theano, theano.tensor as T
z = T.dvector()
f = theano.function([z], [T.nnet.softplus(z), T.nnet.sigmoid(z)])
sp, sg = f(np.array([16.5, 20.0]))
print(repr(float(sp[0])), repr(float(sg[1])))
"""


@pytest.mark.slow
def test_c_softplus_and_sigmoid_saturate(tmp_path):
    """The ledger entry is real: in float64, C softplus(16.5) is 16.5 and sigmoid(20) is 1."""
    python = envs.ensure(registry.environment_of("theano"))
    env = {**os.environ, "THEANO_FLAGS": theano_flags("", str(tmp_path / "cache"))}
    out = subprocess.run([str(python), "-c", _SATURATION], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout.split()
    softplus, sigmoid = float(out[0]), float(out[1])
    assert softplus == 16.5 != math.log1p(math.exp(16.5))
    assert math.log1p(math.exp(16.5)) - 16.5 == pytest.approx(6.8e-8, rel=0.01)
    assert sigmoid == 1.0 != 1.0 / (1.0 + math.exp(-20.0))


_FAST_STEP = """
import json
import numpy as np
from backends.theano_backend import TheanoBackend
from suite.initializers import initial_params
from suite.spec import from_dict

backend = TheanoBackend()
backend.load(2)
spec = from_dict({"name": "t", "input_dim": 4, "loss": "sparse_categorical_crossentropy",
                  "layers": [{"units": 5, "activation": "relu"},
                             {"units": 3, "activation": "softmax"}],
                  "optimizer": {"name": "adam", "learning_rate": 0.01}})
params = initial_params(spec)
rng = np.random.default_rng(0)
data = [(rng.standard_normal((8, 4)), rng.integers(0, 3, 8)) for _ in range(2)]
timed, stepped = (backend.build(spec, params, "float64", "cpu") for _ in range(2))
step = timed.fast_step(data)
for _ in range(3):
    step()
for i in range(3):
    stepped.train_step(*data[i % 2])
got, want = timed.get_params(), stepped.get_params()
train = timed._compiled["train_step"]
zero = {**params, "dense_0/kernel": 0 * params["dense_0/kernel"],
        "dense_0/bias": 0 * params["dense_0/bias"]}
_, grads = backend.build(spec, zero, "float64", "cpu").loss_and_grads(*data[0])
print(json.dumps({
    "same": all(np.array_equal(got[k], want[k]) for k in want),
    "trust_input": train.trust_input,
    "ops": [str(node.op) for node in train.maker.fgraph.toposort()],
    "relu_grad_at_zero": float(np.abs(grads["dense_0/kernel"]).max()),
    "settings": backend.runtime_settings(),
}))
"""


@pytest.mark.slow
def test_fast_step_is_train_steps_function_on_the_fast_graph():
    """In the Theano environment: fast_step trains exactly as train_step (Adam, 3 steps),
    restores Theano's input checks, and runs the fast graph: the sparse cross-entropy as
    Theano's fused softmax op, relu without the per-element branch of Switch (relu'(0) is
    still 0); runtime_settings reports the flags."""
    import json
    from pathlib import Path

    python = envs.ensure(registry.environment_of("theano"))
    # load() sets the backend's flags (and its shared compile cache)
    env = {key: value for key, value in os.environ.items() if key != "THEANO_FLAGS"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([str(python), "-c", _FAST_STEP], env=env, capture_output=True,
                         text=True, timeout=600, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["same"] is True and result["trust_input"] is False
    assert "CrossentropySoftmaxArgmax1HotWithBias" in result["ops"]
    assert not [op for op in result["ops"] if "Switch" in op]  # fused ones included
    assert result["relu_grad_at_zero"] == 0.0
    settings = result["settings"]
    assert settings["theano.config.linker"] == "cvm"
    assert settings["theano.config.blas.ldflags"] == ""
    assert settings["theano.config.openmp"] is False
