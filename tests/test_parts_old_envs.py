"""Attribution's parts (Trainer.set_params, Trainer.apply_grads) for the backends whose
frameworks run in an environment of their own (MXNet, Theano: NumPy 1.23), and the NumPy
reference, which attribution runs in-process inside their workers. tests/
test_backend_contract.py checks the same for the backends of this environment.

The script runs in the backend's environment (built on first use under $FNN_SUITE_ENVS)
and prints raw figures; the checks are made here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import OPTIMIZER_SPECS

from suite import envs, registry

_PARTS = """
import json
import sys

import numpy as np
from specs import make_spec

from backends.reference.backend import NumpyBackend
from suite import registry
from suite.initializers import initial_params

name, optimizers = sys.argv[1], json.loads(sys.argv[2])
backend = registry.import_target(registry.resolve(name))()
backend.load(threads=2)
reference = NumpyBackend()
reference.load(threads=2)


def batch(seed, dtype="float64"):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((6, 3)).astype(dtype),
            rng.standard_normal((6, 2)).astype(dtype))


def plain(params):
    return {key: value.astype(np.float64).tolist() for key, value in params.items()}


def build(on, optimizer=None, dtype="float64", params=None):
    spec = make_spec(optimizer=optimizer, dtype=dtype)
    params = initial_params(spec) if params is None else params
    refused = [f for f in spec.features() if on.supports(f) is not True]
    return (None if refused else on.build(spec, params, dtype, "cpu")), params, refused


out = {"optimizers": {}}
adam = {"name": "adam", "learning_rate": 0.01}
trainer, params, _ = build(backend, adam)
x, y = batch(0)
trainer.train_step(x, y)  # some optimizer state, which set_params leaves alone
moved = {key: value * 1.5 + 0.25 for key, value in params.items()}
trainer.set_params(moved)
fresh = build(backend, adam, params=moved)[0]
out["set_params"] = {"moved": plain(moved), "got": plain(trainer.get_params())}
for label, on in (("here", trainer), ("fresh", fresh)):
    loss, grads = on.loss_and_grads(x, y)
    out["set_params"][label] = [loss, plain(grads)]

for opt, hyper in optimizers.items():
    stepped, _, refused = build(backend, {"name": opt, **hyper})
    if refused:
        out["optimizers"][opt] = {"refused": refused}
        continue
    # mixed: both on one trainer, apply_grads first: one optimizer state and step count
    applied, mixed = (build(backend, {"name": opt, **hyper})[0] for _ in range(2))
    for seed in (1, 2, 3):
        x, y = batch(seed)
        stepped.train_step(x, y)
        applied.apply_grads(applied.loss_and_grads(x, y)[1])
        if seed == 2:
            mixed.train_step(x, y)
        else:
            mixed.apply_grads(mixed.loss_and_grads(x, y)[1])
    out["optimizers"][opt] = {"stepped": plain(stepped.get_params()),
                              "applied": plain(applied.get_params()),
                              "mixed": plain(mixed.get_params())}

trainer, params, _ = build(backend)  # SGD(0.1)
trainer.apply_grads({key: np.zeros_like(value) for key, value in params.items()})
zeros = plain(trainer.get_params())
trainer.apply_grads({key: np.full_like(value, 0.5) for key, value in params.items()})
out["given"] = {"params": plain(params), "zeros": zeros, "half": plain(trainer.get_params())}

dtypes = {}
for label, on in (("backend", backend), ("reference", reference)):
    trainer = build(on, adam, dtype="float32")[0]
    x, y = batch(0, "float32")
    _, grads = trainer.loss_and_grads(x, y)
    trainer.train_step(x, y)
    trainer.set_params({key: value.astype(np.float64) for key, value in grads.items()})
    trainer.apply_grads(grads)
    dtypes[label] = sorted({a.dtype.name for a in [*grads.values(), trainer.predict(x),
                                                   *trainer.get_params().values()]})
out["float32"] = dtypes

# the reference in this environment: apply_grads of its own gradients is train_step
stepped, applied = (build(reference, {"name": "adam", **optimizers["adam"]})[0]
                    for _ in range(2))
for seed in (1, 2, 3):
    x, y = batch(seed)
    stepped.train_step(x, y)
    applied.apply_grads(applied.loss_and_grads(x, y)[1])
out["reference"] = {"stepped": plain(stepped.get_params()),
                    "applied": plain(applied.get_params()),
                    "numpy": np.__version__}
print(json.dumps(out))
"""

# backend -> the factor its given-gradient SGD step uses: MXNet's learning rate is a
# float32 operator attribute (ledger mxnet-float32-attributes)
LEARNING_RATE = {"mxnet": float(np.float32(0.1)), "theano": 0.1}


def _arrays(params: dict) -> dict[str, np.ndarray]:
    return {key: np.asarray(value) for key, value in params.items()}


def _close(got: dict, want: dict, rtol: float) -> None:
    """Every tensor within ``rtol`` (0: bit for bit)."""
    got, want = _arrays(got), _arrays(want)
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        if rtol == 0.0:
            np.testing.assert_array_equal(got[key], value, err_msg=key)
        else:
            np.testing.assert_allclose(got[key], value, rtol=rtol, atol=1e-15, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mxnet", "theano"])
def test_parts_in_the_backends_own_environment(name):
    """set_params replaces the parameters (the loss and gradients at them are a fresh
    build's); apply_grads of loss_and_grads's gradients makes train_step's update for every
    optimizer the backend runs, alone or alternating with train_step on one state; given
    gradients are applied as given; float32 stays float32; and the NumPy reference imports
    and trains there (its apply_grads is its train_step)."""
    python = envs.ensure(registry.environment_of(name))
    repo = Path(__file__).resolve().parents[1]
    # load() sets the backend's own flags (Theano's compile cache included)
    env = {key: value for key, value in os.environ.items() if key != "THEANO_FLAGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(repo), str(repo / "tests")])
    run = subprocess.run([str(python), "-c", _PARTS, name, json.dumps(OPTIMIZER_SPECS)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])

    parts = result["set_params"]
    _close(parts["got"], parts["moved"], rtol=0.0)
    assert parts["here"][0] == pytest.approx(parts["fresh"][0], rel=1e-14)
    _close(parts["here"][1], parts["fresh"][1], rtol=1e-14)

    ran = {opt for opt, case in result["optimizers"].items() if "refused" not in case}
    assert {"sgd", "rmsprop", "adagrad"} <= ran  # adam: MXNet has no AMSGrad, adamw none
    for case in result["optimizers"].values():
        if "refused" not in case:
            _close(case["applied"], case["stepped"], rtol=1e-13)
            _close(case["mixed"], case["stepped"], rtol=1e-13)

    given = _arrays(result["given"]["params"])
    _close(result["given"]["zeros"], given, rtol=0.0)
    lr = LEARNING_RATE[name]
    _close(result["given"]["half"], {k: v - lr * 0.5 for k, v in given.items()}, rtol=1e-14)

    assert result["float32"] == {"backend": ["float32"], "reference": ["float32"]}
    _close(result["reference"]["applied"], result["reference"]["stepped"], rtol=0.0)
