"""The reference with every sum in another order: the float64 noise of a comparison.

A network whose input features and hidden units are permuted, trained on batches whose
rows are permuted, is the same network on the same data: every output, loss, gradient
and parameter is mathematically equal. Only the order of every sum changes: the matrix
products' contractions (over features, units and rows), the bias gradients' sums over
the rows, the loss's mean. The distance between the two trainings is therefore what an
equally valid implementation may differ by, measured on this network and data: the
noise a float64 comparison can be judged against (docs/backends.md, "The reference's
noise runs").

The optimizers are elementwise, so the permutation changes nothing in them: any
difference they show is the compounded difference of the gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backends.base import Params, Trainer


def unit_orders(sizes: Sequence[int]) -> list[np.ndarray]:
    """Each layer's unit order for layer sizes (input, hidden..., output): the input and
    every hidden layer reversed, the outputs kept (the targets name them)."""
    return [np.arange(n)[::-1].copy() for n in sizes[:-1]] + [np.arange(sizes[-1])]


def permute(params: Params, orders: list[np.ndarray]) -> Params:
    """Canonical parameters in the permuted network's unit order. A reversal is its own
    inverse, so this also brings the permuted network's parameters back."""
    out: Params = {}
    for i in range(len(orders) - 1):
        rows, cols = orders[i], orders[i + 1]
        kernel = np.asarray(params[f"dense_{i}/kernel"])
        out[f"dense_{i}/kernel"] = np.ascontiguousarray(kernel[rows][:, cols])
        out[f"dense_{i}/bias"] = np.ascontiguousarray(np.asarray(params[f"dense_{i}/bias"])[cols])
    return out


class ReorderedTrainer(Trainer):
    """Wraps a reference trainer built on ``permute(params, orders)``; takes and returns
    everything in the canonical order, and hands the inner trainer reversed rows. Never
    timed (no fast_step): it exists to be compared."""

    def __init__(self, inner: Trainer, orders: list[np.ndarray]):
        self.inner = inner
        self.orders = orders

    def _restore(self, params: Params) -> Params:
        return permute(params, self.orders)

    def _rows(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x[::-1][:, self.orders[0]])

    def _batch(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._rows(x), np.ascontiguousarray(y[::-1])

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        loss, grads = self.inner.loss_and_grads(*self._batch(x, y))
        return loss, self._restore(grads)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        return self.inner.train_step(*self._batch(x, y))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.inner.predict(self._rows(x))[::-1])

    def get_params(self) -> Params:
        return self._restore(self.inner.get_params())

    def set_params(self, params: Params) -> None:
        self.inner.set_params(permute(params, self.orders))

    def apply_grads(self, grads: Params) -> None:
        self.inner.apply_grads(permute(grads, self.orders))
