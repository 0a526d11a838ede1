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
    """``value`` and ``grad``; ``both``, where given, computes the two at once sharing
    their common part (the softmax), with the same numbers."""

    value: Callable[..., float]
    grad: Callable[..., np.ndarray]
    both: Callable[..., tuple[float, np.ndarray]] | None = None

    def value_and_grad(self, z: np.ndarray, y: np.ndarray, **params: float
                       ) -> tuple[float, np.ndarray]:
        """(value, grad) of the batch: what a training step needs."""
        if self.both is not None:
            return self.both(z, y, **params)
        return self.value(z, y, **params), self.grad(z, y, **params)


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


def _row_max(z: np.ndarray) -> np.ndarray:
    """z.max(axis=-1, keepdims=True) of a 2-d z, faster for a few columns."""
    if z.shape[-1] >= 64:
        return np.maximum.reduce(z, axis=-1, keepdims=True)
    # NOTE: NumPy reduces a short last axis row by row (slowly) but the first axis of a
    # transposed copy with whole-row vector ops. A maximum is exact in any order (only
    # which of two equal zeros it returns may differ, and z - m changes no value then).
    return np.maximum.reduce(np.ascontiguousarray(z.T), axis=0)[:, None]


def _softmax_parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """shifted = z - max, e = exp(shifted) and its row sums: the terms of log_softmax and
    softmax, computed as those functions compute them (np.add.reduce is what the sum
    method calls)."""
    shifted = z - _row_max(z)
    e = np.exp(shifted)
    return shifted, e, np.add.reduce(e, axis=-1, keepdims=True)


def _categorical_both(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    shifted, e, total = _softmax_parts(z)
    shifted -= np.log(total)  # log_softmax(z)
    value = float(-shifted.dtype.type(np.sum(y * shifted) / len(z)))
    e /= total  # softmax(z)
    e *= y.sum(axis=1, keepdims=True)
    e -= y
    e /= len(z)
    return value, e


def _sparse_both(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    shifted, e, total = _softmax_parts(z)
    rows = np.arange(len(z))
    # NOTE: log_softmax(z)[rows, y] picks shifted - log(total) elementwise: the same
    # numbers when the picked entries alone are subtracted. Their sum over len(z) is
    # np.mean's value: in float32 np.mean divides in float64 and rounds, and that double
    # rounding of a quotient of float32 numbers is exact (53 >= 2 * 24 + 2 bits).
    picked = shifted[rows, y] - np.log(total)[:, 0]
    # (the quotient rounded to the dtype: NumPy 1.x divides a float32 scalar by an int in
    # float64, which the MXNet and Theano environments' reference would keep)
    value = float(-picked.dtype.type(np.add.reduce(picked) / len(z)))
    e /= total  # softmax(z)
    e[rows, y] -= 1.0
    e /= len(z)
    return value, e


LOSSES: dict[str, Loss] = {
    "mse": Loss(lambda z, y: float(np.mean((z - y) ** 2)),
                lambda z, y: (z - y) * (2.0 / z.size)),
    # NOTE: sign(0) = 0, as torch and TensorFlow take it.
    "mae": Loss(lambda z, y: float(np.mean(np.abs(z - y))),
                lambda z, y: np.sign(z - y) / z.size),
    "huber": Loss(_huber_value, lambda z, y, delta: np.clip(z - y, -delta, delta) / z.size),
    "binary_crossentropy": Loss(_binary_value, lambda z, y: (sigmoid(z) - y) / z.size),
    "categorical_crossentropy": Loss(
        lambda z, y: float(-np.sum(y * log_softmax(z)) / len(z)), _categorical_grad,
        _categorical_both),
    "sparse_categorical_crossentropy": Loss(_sparse_value, _sparse_grad, _sparse_both),
}


def get(name: str) -> Loss:
    """The loss ``name`` (hyperparameters are passed to its functions as keywords)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of: {', '.join(LOSSES)}")
    return LOSSES[name]
