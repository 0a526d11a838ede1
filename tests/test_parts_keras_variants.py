"""set_params and apply_grads (the attribution's parts) of Keras on torch and on JAX.

tests/test_backend_contract.py checks them for Keras on TensorFlow in its own process;
Keras picks its backend once per process, so each variant's checks (class
``InProcess``) run in a pytest process of their own, as in tests/test_keras_torch_backend.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from keras_variants import CHILD_VARIABLE, run_in_fresh_process

VARIANTS = ("keras-torch", "keras-jax")


@pytest.mark.parametrize("name", VARIANTS)
def test_in_process_checks(name):
    """The class InProcess passes in a fresh process running Keras on ``name``."""
    run_in_fresh_process(name, __file__, InProcess)


@pytest.fixture(scope="module")
def backend(load_backend):
    """The loaded variant, for InProcess (only in a process test_in_process_checks starts)."""
    name = os.environ.get(CHILD_VARIABLE)
    if name not in VARIANTS:
        pytest.skip("runs in the processes test_in_process_checks starts")
    return load_backend(name)


def _assert_update(got: dict, want: dict, optimizer: str) -> None:
    """Bit for bit, but for SGD's momentum on JAX: within four float32 roundings."""
    # NOTE: Keras on JAX jits its train step whole, and XLA fuses the update with the
    # gradients' last ops there, contracting SGD momentum's products into FMAs otherwise
    # than in apply_grads's jitted update alone: a few elements an ulp or so apart (relative
    # L2 6e-8 in float32 and 4e-17 in float64 over 10 steps). The other optimizers, and
    # every one on torch, agree bit for bit.
    for name, value in got.items():
        assert value.dtype == np.float32, name
        if optimizer == "sgd" and os.environ.get(CHILD_VARIABLE) == "keras-jax":
            error = np.linalg.norm(value - want[name]) / np.linalg.norm(want[name])
            assert error < 4 * np.finfo(np.float32).eps, name
        else:
            np.testing.assert_array_equal(value, want[name], err_msg=name)


class InProcess:
    """The contract tests of test_backend_contract.py on this process's Keras variant, in
    float32: the suite runs these variants in float32 only (Keras demotes float64 on them)."""

    def test_set_params_replaces_the_parameters(self, build, batch):
        dtype = "float32"
        adam = {"name": "adam", "learning_rate": 0.01}
        trainer, params = build(optimizer=adam, dtype=dtype)
        x, y = batch()
        trainer.train_step(x, y)
        moved = {name: value * 1.5 + 0.25 for name, value in params.items()}
        trainer.set_params(moved)  # float64 arrays: cast to the run's dtype
        for name, value in trainer.get_params().items():
            np.testing.assert_array_equal(value, moved[name].astype(dtype))
            assert value.dtype == np.dtype(dtype)
        fresh, _ = build(optimizer=adam, dtype=dtype)
        fresh.set_params(moved)
        loss, grads = trainer.loss_and_grads(x, y)
        fresh_loss, fresh_grads = fresh.loss_and_grads(x, y)
        assert loss == fresh_loss
        for name, grad in grads.items():
            np.testing.assert_array_equal(grad, fresh_grads[name])

    def test_apply_grads_of_its_own_gradients_is_train_step(self, build, batch, optimizer_case):
        name, hyper = optimizer_case
        dtype = "float32"
        layers = [{"units": 4, "activation": "tanh", "kernel_regularizer": {"l2": 0.01}},
                  {"units": 2}]  # the L2 penalty is in the gradients, not added again
        stepped, _ = build(layers, optimizer={"name": name, **hyper}, dtype=dtype)
        applied, _ = build(layers, optimizer={"name": name, **hyper}, dtype=dtype)
        for seed in (1, 2, 3):
            x, y = (a.astype(dtype) for a in batch(seed=seed))
            stepped.train_step(x, y)
            applied.apply_grads(applied.loss_and_grads(x, y)[1])
        _assert_update(applied.get_params(), stepped.get_params(), name)

    def test_apply_grads_uses_the_given_gradients(self, build):
        trainer, params = build(dtype="float32")
        params = {key: value.astype(np.float32) for key, value in params.items()}
        trainer.apply_grads({key: np.zeros_like(value) for key, value in params.items()})
        for key, value in trainer.get_params().items():
            np.testing.assert_array_equal(value, params[key])
        trainer.apply_grads({key: np.full_like(value, 0.5) for key, value in params.items()})
        for key, value in trainer.get_params().items():
            np.testing.assert_allclose(value, params[key] - 0.1 * 0.5, rtol=1e-6, atol=1e-7)

    def test_parts_between_fast_steps_continue_the_training(self, build, batch):
        """fast_step's state (on JAX: not yet in the model's variables) is what
        apply_grads updates and set_params replaces, and its next step goes on from them."""
        adam = {"name": "adam", "learning_rate": 0.01}
        fast, _ = build(optimizer=adam, dtype="float32")
        stepped, _ = build(optimizer=adam, dtype="float32")
        data = [tuple(a.astype(np.float32) for a in batch(seed=s)) for s in (1, 2)]
        step = fast.fast_step(data)
        step()
        stepped.train_step(*data[0])
        fast.apply_grads(fast.loss_and_grads(*data[1])[1])
        stepped.train_step(*data[1])
        step()  # data[1]
        stepped.train_step(*data[1])
        fast.set_params(stepped.get_params())
        step()  # data[0]
        stepped.train_step(*data[0])
        _assert_update(fast.get_params(), stepped.get_params(), "adam")
