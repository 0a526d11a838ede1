"""What is torch's own in the torch backend; the shared contract is test_backend_contract.py."""

from __future__ import annotations

import json

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


def test_fast_step_trains_exactly_like_train_step(build, batch):
    """fast_step runs the same eager step (Adam, so its state must advance too), cycling
    through its batches: the parameters match train_step's on the same sequence."""
    adam = {"name": "adam", **{"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.99,
                               "epsilon": 1e-7, "amsgrad": False}}
    stepped, _ = build(optimizer=adam)
    fast, _ = build(optimizer=adam)
    data = [batch(seed=1), batch(n=4, seed=2)]
    for i in range(5):
        stepped.train_step(*data[i % 2])
    step = fast.fast_step(data)
    for _ in range(5):
        assert step() is None
    got, want = fast.get_params(), stepped.get_params()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, err_msg=name)


def test_fast_step_refuses_no_batches(build):
    trainer, _ = build()
    with pytest.raises(ValueError, match="Received: none"):
        trainer.fast_step([])


def test_runtime_settings_report_threads_and_no_tf32(backend):
    """After load(2): two intra-op threads and full-precision float32 matmuls, in a form
    run.json keeps as it is."""
    settings = backend.runtime_settings()
    assert settings["torch.num_threads"] == 2
    assert settings["torch.float32_matmul_precision"] == "highest"
    assert settings["torch.backends.cuda.matmul.allow_tf32"] is False
    assert settings["torch.backends.cuda.matmul.fp32_precision"] == "ieee"
    assert settings["torch.backends.cudnn.allow_tf32"] is False
    assert json.loads(json.dumps(settings)) == settings
