"""MXNet-specific pins. The main environment has no mxnet (it needs NumPy < 1.24): the
slow test runs the conformance kit, whose worker runs in MXNet's own environment (built
on first use under $FNN_SUITE_ENVS); the fast tests need only what imports without it."""

from __future__ import annotations

import numpy as np
import pytest

from backends import mxnet_backend
from suite import envs, registry
from suite.kit.battery import probes
from suite.kit.matrix import probe_verdicts
from suite.kit.pytest_checks import kit_result
from suite.kit.runner import KitOptions
from suite.ledger import mxnet as mxnet_ledger

# Where a probe does not pass, what it is instead.
UNSUPPORTED = {"activation:gelu_tanh", "optimizer:adamw (amsgrad)", "optimizer:adam (amsgrad)"}
# The update is checked on its own (the parameters after it minus before), so Adam's
# epsilon placement shows in float32 too, and in float64 every probe's first update shows
# the float32 learning rate (1.49e-8 relative, mxnet-float32-attributes): every float64
# probe is a known difference. GELU, computed in float32 throughout, is declared
# unsupported in float64 (activation:gelu@float64).
KNOWN_FLOAT32 = {"optimizer:adam", "optimizer:rmsprop", "optimizer:rmsprop (centered, momentum)",
                 "optimizer:adagrad"}
PASS_FLOAT64: set[str] = set()
UNSUPPORTED_FLOAT64 = {"activation:gelu"}


def test_declarations_import_without_mxnet():
    backend = registry.import_target(registry.resolve("mxnet"))()
    assert backend.name == "mxnet" and backend.requires == ("mxnet",)
    assert backend.environment[0] == "mxnet==1.9.1"
    assert any(req.startswith("numpy<1.24") for req in backend.environment)
    assert "tanh" in backend.supports("activation:gelu_tanh")
    assert "AdamW" in backend.supports("optimizer:adamw")
    assert backend.supports("optimizer:adam") is True
    assert backend.supports("dtype:float64") is True  # the ledger covers its roundings


def test_environment_is_its_own():
    env = registry.environment_of("mxnet")
    assert env is not None and env.name == "mxnet"
    assert set(env.requirements) == set(mxnet_backend.MxnetBackend.environment)


def test_registries_cover_the_catalogue_but_unsupported():
    from suite import catalogue

    declared = mxnet_backend.MxnetBackend.unsupported
    for kind, names, registry_ in (("activation", catalogue.ACTIVATIONS,
                                    mxnet_backend.ACTIVATIONS),
                                   ("loss", catalogue.LOSSES, mxnet_backend.LOSSES),
                                   ("optimizer", catalogue.OPTIMIZERS,
                                    mxnet_backend.OPTIMIZERS)):
        for name in names:
            if name == "softmax":  # output only, fused into the cross-entropies
                continue
            assert name in registry_ or f"{kind}:{name}" in declared, (kind, name)


def test_load_is_required_before_use():
    with pytest.raises(RuntimeError, match="load"):
        mxnet_backend.MxnetBackend().versions()


def test_ledger_entries_name_mxnet_and_known_conventions():
    from backends.reference import CONVENTIONS

    ids = [entry.id for entry in mxnet_ledger.ENTRIES]
    assert len(ids) == len(set(ids))
    for entry in mxnet_ledger.ENTRIES:
        assert entry.backends == ("mxnet",) and entry.source
        for key, value in entry.conventions.items():
            assert value in CONVENTIONS[key]


def test_huber_weight_rho_is_keras_huber():
    """mxnet-huber-scale: Gluon's HuberLoss formula times rho is Keras's huber, which it
    is not without the weight (the difference is real)."""
    r, rho = np.array([0.1, 0.5, 0.7, 1.3, 4.0]), 0.7
    gluon = np.where(r > rho, r - 0.5 * rho, (0.5 / rho) * r * r)
    keras = np.where(r <= rho, 0.5 * r * r, rho * (r - 0.5 * rho))
    np.testing.assert_allclose(rho * gluon, keras, rtol=1e-15)
    assert not np.allclose(gluon, keras)


def test_adagrad_folded_epsilon_is_inside_sqrt_with_initial_accumulator():
    """mxnet-adagrad-epsilon: history from 0 with eps' = initial + eps is the same update."""
    g = np.array([[0.3, -1.2], [2.0, 0.01]])
    initial, eps = 0.2, 1e-3
    np.testing.assert_allclose(g / np.sqrt(g * g + (initial + eps)),
                               g / np.sqrt((initial + g * g) + eps), rtol=1e-15)


@pytest.mark.slow
def test_kit_matrix():
    """float32: every probe passes, is a known difference or is declared unsupported;
    float64: the same but for GELU, declared unsupported (UNSUPPORTED_FLOAT64)."""
    result = kit_result("mxnet", KitOptions())
    verdicts = {(v.probe, v.dtype): v for v in probe_verdicts(result)}
    assert len(verdicts) == 2 * len(probes())
    for (probe, dtype), v in verdicts.items():
        if probe in UNSUPPORTED:
            expected = "unsupported"
        elif dtype == "float64":
            expected = ("pass" if probe in PASS_FLOAT64 else
                        "unsupported" if probe in UNSUPPORTED_FLOAT64 else "known difference")
        else:
            expected = "known difference" if probe in KNOWN_FLOAT32 else "pass"
        assert v.verdict == expected, (probe, dtype, v.verdict, v.reason)
        if expected == "known difference":
            assert set(v.ledger) <= {e.id for e in mxnet_ledger.ENTRIES}
    assert "mxnet-float32-attributes" in verdicts["optimizer:adam", "float64"].ledger
    assert "mxnet-float32-attributes" in verdicts["activation:leaky_relu", "float64"].ledger
    assert "mxnet-float32-attributes" not in verdicts["optimizer:adagrad", "float64"].ledger


_FAST_STEP = """
import json
import numpy as np
from backends.mxnet_backend import MxnetBackend
from suite.initializers import initial_params
from suite.spec import from_dict

backend = MxnetBackend()
backend.load(2)
spec = from_dict({"name": "t", "input_dim": 4, "loss": "sparse_categorical_crossentropy",
                  "layers": [{"units": 5, "activation": "tanh", "kernel_regularizer": {"l2": 0.01}},
                             {"units": 3, "activation": "softmax"}],
                  "optimizer": {"name": "adam", "learning_rate": 0.01}})
params = initial_params(spec)
rng = np.random.default_rng(0)
data = [(rng.standard_normal((8, 4)), rng.integers(0, 3, 8)) for _ in range(2)]
timed, stepped, imperative = (backend.build(spec, params, "float32", "cpu") for _ in range(3))
for block in (imperative.net, imperative.criterion):
    block.hybridize(active=False)
step = timed.fast_step(data)
for _ in range(3):
    step()
for i in range(3):
    stepped.train_step(*data[i % 2])
    imperative.train_step(*data[i % 2])
got, want, plain = timed.get_params(), stepped.get_params(), imperative.get_params()
print(json.dumps({
    "same": all(np.array_equal(got[k], want[k]) for k in want),
    "same_as_imperative": all(np.array_equal(plain[k], want[k]) for k in want),
    "hybridized": bool(stepped.net._active and stepped.criterion._active),
    "settings": backend.runtime_settings(),
}))
"""


@pytest.mark.slow
def test_fast_step_trains_as_train_step_on_the_hybridized_graphs():
    """In MXNet's environment: fast_step trains exactly as train_step (Adam with L2, three
    steps), both on the hybridized blocks, whose steps are bit for bit the imperative
    blocks' (the module docstring's claim); runtime_settings reports the environment
    MXNet read (one engine worker, two OpenMP threads, no Tensor Cores)."""
    import json
    import os
    import subprocess
    from pathlib import Path

    python = envs.ensure(registry.environment_of("mxnet"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([str(python), "-c", _FAST_STEP], env=env, capture_output=True,
                         text=True, timeout=600, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["same"] is True and result["same_as_imperative"] is True
    assert result["hybridized"] is True
    settings = result["settings"]
    assert settings["mxnet.env.MXNET_CPU_WORKER_NTHREADS"] == "1"
    assert settings["mxnet.env.OMP_NUM_THREADS"] == "2"
    assert settings["mxnet.env.MXNET_CUDA_ALLOW_TENSOR_CORE"] == "0"
    assert "OPENMP" in settings["mxnet.features"]
