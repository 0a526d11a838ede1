"""Shared by the backend tests: loaded backends, batches and trainers (specs: specs.py).

A test module that uses ``build`` defines a ``backend`` fixture (one framework, or
parametrized over several); ``build`` builds on whichever backend that module gives.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from specs import make_spec

from backends.base import Backend, Params, Trainer
from suite import registry
from suite.initializers import initial_params

# NOTE: TensorFlow fixes its intra-op pool when its runtime starts, so every test module
# in the process must load the keras backend with this same count.
THREADS = 2

OPTIMIZER_SPECS = {
    "sgd": {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True},
    "adam": {"learning_rate": 0.002, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-6,
             "amsgrad": True},
    "adamw": {"learning_rate": 0.003, "weight_decay": 0.02, "beta_1": 0.85, "beta_2": 0.98,
              "epsilon": 1e-5, "amsgrad": False},
    "rmsprop": {"learning_rate": 0.004, "rho": 0.8, "momentum": 0.3, "epsilon": 1e-4,
                "centered": True},
    "adagrad": {"learning_rate": 0.005, "initial_accumulator_value": 0.2, "epsilon": 1e-3},
}


def make_batch(n: int = 6, d: int = 3, m: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard normal x of shape (n, d) and y of shape (n, m), float64."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((n, m))


@pytest.fixture(scope="session")
def load_backend() -> Callable[[str], Backend]:
    """name -> that backend, loaded once per session; skips where it is not installed."""
    loaded: dict[str, Backend] = {}

    def load(name: str) -> Backend:
        if name not in loaded:
            info = registry.describe(name)
            if not info.available:
                pytest.skip(info.reason)
            backend = registry.import_target(info.target)()
            backend.load(threads=THREADS)
            loaded[name] = backend
        return loaded[name]

    return load


@pytest.fixture
def batch() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return make_batch


@pytest.fixture
def build(backend: Backend) -> Callable[..., tuple[Trainer, Params]]:
    """(layers, loss, optimizer, dtype, device="cpu") -> (trainer, its initial params), on
    specs.make_spec's network (3 -> 4 tanh -> 2 linear, mse, SGD(0.1)) unless told."""

    def build(layers: list[dict] | None = None, loss: str | dict = "mse",
              optimizer: dict | None = None, dtype: str = "float64",
              device: str = "cpu") -> tuple[Trainer, Params]:
        spec = make_spec(layers=layers, loss=loss, optimizer=optimizer, dtype=dtype)
        params = initial_params(spec)
        return backend.build(spec, params, dtype, device), params

    return build


@pytest.fixture(params=sorted(OPTIMIZER_SPECS))
def optimizer_case(request) -> tuple[str, dict]:
    """Each optimizer with every hyperparameter away from its default: (name, params)."""
    return request.param, OPTIMIZER_SPECS[request.param]


# Shared by the framework test modules: train on batches, compare parameter sets.
STEPS = 4


def train(trainer, batches) -> dict[str, np.ndarray]:
    for x, y in batches:
        trainer.train_step(x, y)
    return trainer.get_params()


def rel(a: dict, b: dict) -> float:
    """Relative L2 difference over all tensors at once."""
    a, b = (np.concatenate([d[k].ravel() for k in sorted(d)]) for d in (a, b))
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def batches(batch, n=STEPS):
    return [batch(seed=seed) for seed in range(n)]
