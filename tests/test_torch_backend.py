"""What is torch's own in the torch backend; the shared contract is test_backend_contract.py."""

from __future__ import annotations

import numpy as np
import pytest

TORCH_NAMES = {"learning_rate": "lr", "rho": "alpha", "epsilon": "eps"}


@pytest.fixture(scope="module")
def backend(load_backend):
    return load_backend("torch")


def test_linear_modules_hold_the_kernels_transposed(build):
    """nn.Linear stores (out, in): weight = kernel.T, bias as given."""
    trainer, params = build()
    for i, linear in enumerate(trainer.linears):
        np.testing.assert_array_equal(linear.weight.detach().numpy(),
                                      params[f"dense_{i}/kernel"].T)
        np.testing.assert_array_equal(linear.bias.detach().numpy(), params[f"dense_{i}/bias"])


def test_optimizer_receives_every_hyperparameter(build, optimizer_case):
    name, hp = optimizer_case
    trainer, _ = build(optimizer={"name": name, **hp})
    group = trainer.optimizer.param_groups[0]
    assert type(trainer.optimizer).__name__.lower() == name
    for key, value in hp.items():
        if key in ("beta_1", "beta_2"):
            assert group["betas"][int(key[-1]) - 1] == value
        else:
            assert group[TORCH_NAMES.get(key, key)] == value, key
    assert group["maximize"] is False
    if name != "adamw":
        assert group["weight_decay"] == 0.0


def test_nesterov_without_momentum_is_turned_off(build):
    """torch refuses nesterov=True without momentum; Keras then runs plain SGD."""
    trainer, _ = build(optimizer={"name": "sgd", "learning_rate": 0.1, "nesterov": True})
    assert trainer.optimizer.param_groups[0]["nesterov"] is False
