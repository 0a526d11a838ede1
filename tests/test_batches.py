"""Batch order: fixed by the suite from the seed; without shuffle, batch k is rows k*b on."""

from __future__ import annotations

import numpy as np

from suite.batches import count_steps, epoch_orders, steps
from suite.spec import Training


def test_without_shuffle_batch_k_starts_at_row_k_times_batch_size():
    orders = epoch_orders(10, Training(batch_size=4, epochs=2, shuffle=False))
    rows = [s.rows.tolist() for s in steps(orders, 4)]
    assert rows[:3] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert rows[3] == [0, 1, 2, 3]
    assert [s.index for s in steps(orders, 4)] == list(range(6))
    assert [s.epoch for s in steps(orders, 4)] == [0, 0, 0, 1, 1, 1]


def test_shuffled_orders_are_permutations_fixed_by_the_seed():
    training = Training(epochs=3, seed=5, shuffle=True)
    orders = epoch_orders(50, training)
    for order in orders:
        assert sorted(order.tolist()) == list(range(50))
    assert not np.array_equal(orders[0], orders[1])
    np.testing.assert_array_equal(orders, epoch_orders(50, training))
    assert not np.array_equal(orders, epoch_orders(50, Training(epochs=3, seed=6)))


def test_max_steps_and_count():
    training = Training(batch_size=4, epochs=3, max_steps=5)
    orders = epoch_orders(10, training)
    assert len(list(steps(orders, 4, training.max_steps))) == 5 == count_steps(10, training)
    assert count_steps(10, Training(batch_size=4, epochs=3)) == 9
