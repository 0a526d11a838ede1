"""The batch order of every epoch, fixed by the suite from the seed. Worker side."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from suite.spec import Training

# A stream of its own, so the order never depends on how parameters were drawn.
_ORDER_STREAM = 7


def epoch_orders(n_samples: int, training: Training) -> np.ndarray:
    """Row order of each epoch, shape (epochs, n_samples): a permutation or 0..n-1."""
    if not training.shuffle:
        return np.tile(np.arange(n_samples, dtype=np.int64), (training.epochs, 1))
    return np.stack([
        np.random.default_rng([training.seed, _ORDER_STREAM, epoch]).permutation(n_samples)
        for epoch in range(training.epochs)
    ]).astype(np.int64)


@dataclass(frozen=True)
class Step:
    index: int  # counts from 0 across epochs
    epoch: int
    rows: np.ndarray  # row indices into x and y


def steps(orders: np.ndarray, batch_size: int, max_steps: int | None = None) -> Iterator[Step]:
    """Every training step in order; with shuffle off, batch k is rows k*batch_size on.

    The last batch of an epoch may be smaller (as in Keras fit and torch's DataLoader
    with drop_last=False).
    """
    index = 0
    for epoch, order in enumerate(orders):
        for start in range(0, len(order), batch_size):
            if max_steps is not None and index >= max_steps:
                return
            yield Step(index, epoch, order[start:start + batch_size])
            index += 1


def count_steps(n_samples: int, training: Training) -> int:
    per_epoch = -(-n_samples // training.batch_size)
    total = per_epoch * training.epochs
    return min(total, training.max_steps) if training.max_steps else total
