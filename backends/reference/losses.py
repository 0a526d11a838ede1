"""Losses: a registry of ``value(z, y, **params) -> float`` and ``grad(z, y, **params)``.

``z`` is the network output of shape (batch, units); for the cross-entropies it holds
LOGITS (the sigmoid or softmax is fused into the loss). ``y`` has the same shape in the
run's dtype, except for sparse categorical cross-entropy: int64 class indices of shape
(batch,). mse, mae, huber and binary cross-entropy are means over all elements; the
categorical cross-entropies are means over the batch. ``grad`` is dL/dz, shaped like z.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backends.reference.activations import log_softmax, sigmoid, softmax


@dataclass(frozen=True)
class Loss:
    value: Callable[..., float]
    grad: Callable[..., np.ndarray]


def _huber_value(z: np.ndarray, y: np.ndarray, delta: float) -> float:
    r = np.abs(z - y)
    return float(np.mean(np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta))))


def _binary_value(z: np.ndarray, y: np.ndarray) -> float:
    # NOTE: log(1 + exp(z)) - z*y written so that exp only sees -|z|.
    return float(np.mean(np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def _categorical_grad(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    # d/dz of -sum_j y_j log_softmax(z)_j; sum_j y_j is 1 for one-hot rows
    return (softmax(z) * y.sum(axis=1, keepdims=True) - y) / len(z)


def _sparse_value(z: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(log_softmax(z)[np.arange(len(z)), y]))


def _sparse_grad(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    grad = softmax(z)
    grad[np.arange(len(z)), y] -= 1.0
    grad /= len(z)
    return grad


LOSSES: dict[str, Loss] = {
    "mse": Loss(lambda z, y: float(np.mean((z - y) ** 2)),
                lambda z, y: (z - y) * (2.0 / z.size)),
    # NOTE: sign(0) = 0, as torch and TensorFlow take it.
    "mae": Loss(lambda z, y: float(np.mean(np.abs(z - y))),
                lambda z, y: np.sign(z - y) / z.size),
    "huber": Loss(_huber_value, lambda z, y, delta: np.clip(z - y, -delta, delta) / z.size),
    "binary_crossentropy": Loss(_binary_value, lambda z, y: (sigmoid(z) - y) / z.size),
    "categorical_crossentropy": Loss(
        lambda z, y: float(-np.sum(y * log_softmax(z)) / len(z)), _categorical_grad),
    "sparse_categorical_crossentropy": Loss(_sparse_value, _sparse_grad),
}


def get(name: str) -> Loss:
    """The loss ``name`` (hyperparameters are passed to its functions as keywords)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of: {', '.join(LOSSES)}")
    return LOSSES[name]
