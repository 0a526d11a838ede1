"""This plug-in's own tests: the fnn-suite conformance battery, and float32 kept float32.

Run them with the plug-in installed next to fnn-suite: ``pytest tests/``.
"""

from __future__ import annotations

import numpy as np
import pytest

from suite.initializers import initial_params
from suite.kit import parametrize_with_checks
from suite.spec import from_dict


# One test per probe and dtype: a pass passes, a declared unsupported feature is skipped
# with its reason, a fail or an error fails with the check and the reason.
@parametrize_with_checks(["autograd"])
def test_conformance(backend, check):
    check(backend)


# ---------------------------------------------------------------------------- float32
# The battery cannot see an upcast: a float32 gradient computed in float64 is only more
# accurate. These tests differentiate each registry entry with respect to a bare float32
# array, where autograd returns whatever dtype the chain rule produced.

LOSS_TARGETS = {"sparse_categorical_crossentropy": np.array([0, 2, 1, 1, 0])}
LOSS_PARAMS = {"huber": {"delta": 0.7}}
ACTIVATION_PARAMS = {"leaky_relu": {"negative_slope": 0.15}, "elu": {"alpha": 0.8}}


@pytest.fixture(scope="module")
def ag():
    from fnn_suite_autograd.backend import import_autograd

    return import_autograd()


def _z() -> np.ndarray:
    # both signs, zero, and values past every branch point (huber's delta, elu's 0)
    return np.linspace(-3.0, 3.0, 15, dtype=np.float32).reshape(5, 3)


def test_every_activation_keeps_float32(ag):
    from autograd import grad
    from fnn_suite_autograd.backend import ACTIVATIONS

    for name, activation in ACTIVATIONS.items():
        params = ACTIVATION_PARAMS.get(name, {})
        value = activation(ag, _z(), params)
        g = grad(lambda z, f=activation, p=params: ag.np.sum(f(ag, z, p)))(_z())
        assert (np.asarray(value).dtype, g.dtype) == (np.float32, np.float32), name


def test_every_loss_keeps_float32(ag):
    from autograd import grad
    from fnn_suite_autograd.backend import LOSSES

    for name, loss in LOSSES.items():
        target = LOSS_TARGETS.get(name, np.full((5, 3), 0.25, dtype=np.float32))
        params = LOSS_PARAMS.get(name, {})
        g = grad(lambda z, f=loss, y=target, p=params: f(ag, z, y, p))(_z())
        assert g.dtype == np.float32, name


def test_np_mean_would_promote_and_a_dict_would_hide_it():
    """The trap the backend's NOTE describes, as autograd 1.9 has it."""
    import autograd.numpy as anp
    from autograd import grad

    bare = grad(lambda z: anp.mean(z * z))(_z())
    in_dict = grad(lambda d: anp.mean(d["z"] * d["z"]))({"z": _z()})["z"]
    assert (bare.dtype, in_dict.dtype) == (np.float64, np.float32)


def test_a_float32_run_stays_float32():
    """Gradients, parameters and outputs of a float32 run are float32, after an update."""
    from fnn_suite_autograd.backend import AutogradBackend

    backend = AutogradBackend()
    backend.load(threads=1)
    spec = from_dict({"name": "t", "input_dim": 3,
                      "layers": [{"units": 4, "activation": "gelu",
                                  "kernel_regularizer": {"l2": 0.01}}, {"units": 2}],
                      "loss": "huber", "optimizer": {"name": "adam", "amsgrad": True},
                      "training": {"dtype": "float32"}})
    params = {k: v.astype(np.float32) for k, v in initial_params(spec).items()}
    trainer = backend.build(spec, params, "float32", "cpu")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 3), np.float32), rng.standard_normal((5, 2), np.float32)
    trainer.train_step(x, y)
    _, grads = trainer.loss_and_grads(x, y)
    arrays = [*grads.values(), *trainer.get_params().values(), trainer.predict(x)]
    assert {a.dtype for a in arrays} == {np.dtype(np.float32)}


# ---------------------------------------------------------------------------- timing


def test_fast_step_trains_exactly_like_train_step():
    """fast_step cycles through its batches with train_step's update (momentum state
    included), and the contract's default time_steps times it: one timing per step."""
    from fnn_suite_autograd.backend import AutogradBackend

    backend = AutogradBackend()
    backend.load(threads=1)
    spec = from_dict({"name": "t", "input_dim": 3,
                      "layers": [{"units": 4, "activation": "tanh"}, {"units": 2}],
                      "loss": "mse", "optimizer": {"name": "sgd", "learning_rate": 0.1,
                                                   "momentum": 0.9},
                      "training": {"dtype": "float64"}})
    params = initial_params(spec)
    fast, slow = (backend.build(spec, params, "float64", "cpu") for _ in range(2))
    rng = np.random.default_rng(1)
    data = [(rng.standard_normal((5, 3)), rng.standard_normal((5, 2))) for _ in range(2)]
    step = fast.fast_step(data)
    for i in range(3):
        step()
        slow.train_step(*data[i % 2])
    after = fast.get_params()
    assert all(np.array_equal(after[k], v) for k, v in slow.get_params().items())
    assert not np.array_equal(after["dense_0/kernel"], params["dense_0/kernel"])

    times = fast.time_steps(data, 4)
    assert len(times) == 4 and all(t > 0 for t in times)
    with pytest.raises(ValueError, match="at least one batch. Received: none"):
        fast.fast_step([])
