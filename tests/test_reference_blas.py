"""NumPy's own BLAS for the reference's SGD: scal and axpy give NumPy's numbers exactly.

The reference runs a large plain SGD update as g *= lr (scal) and p -= g (axpy with
a = -1) on BLAS's threads (backends/reference/blas.py). These tests pin that the numbers
are NumPy's, bit for bit, special values included, and that the optimizer and the trainer
take that path only where it changes nothing.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from backends.reference import blas, optimizers
from backends.reference.backend import NumpyBackend
from suite.spec import from_dict

LEVEL1 = blas.level1()
needs_blas = pytest.mark.skipif(LEVEL1 is None, reason="NumPy's BLAS was not found here")


def vectors(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(dtype)
    g = (rng.standard_normal(n) * rng.choice([1e-30, 1e-3, 1.0, 1e30], n)).astype(dtype)
    g[:6] = [np.inf, -np.inf, np.nan, 0.0, -0.0, np.finfo(dtype).tiny / 4]  # and a subnormal
    return p, g


def test_numpy_wheels_blas_is_found():
    """On Linux with NumPy's own wheel the library is there (else the path is dead code),
    and its OpenBLAS names its kernel and runs the thread count the environment set."""
    if not sys.platform.startswith("linux"):
        pytest.skip("found through /proc/self/maps")
    assert LEVEL1 is not None
    settings = blas.settings()
    assert isinstance(settings["numpy.blas_config"], str) and settings["numpy.blas_config"]
    threads = settings["numpy.blas_threads"]
    assert isinstance(threads, int) and threads >= 1
    pinned = os.environ.get("OPENBLAS_NUM_THREADS", "")
    # OpenBLAS caps the count at the cores this process may run on
    if pinned.isdigit() and 1 <= int(pinned) <= len(os.sched_getaffinity(0)):
        assert threads == int(pinned)


@needs_blas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [6, 7, 100_003, 1_000_000])
def test_scale_and_subtract_are_numpys_numbers(dtype, n):
    p, g = vectors(n, dtype)
    want = p - 0.01 * g
    got_g, got_p = g.copy(), p.copy()
    LEVEL1.scale(got_g, 0.01)
    np.testing.assert_array_equal(got_g, 0.01 * g)
    LEVEL1.subtract(got_p, got_g)
    np.testing.assert_array_equal(got_p, want)
    assert np.array_equal(np.signbit(got_p), np.signbit(want))


@needs_blas
def test_scale_refuses_factors_blas_may_special_case():
    x = np.ones(4, np.float32)
    for factor in (0.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="finite nonzero factor"):
            LEVEL1.scale(x, factor)


@needs_blas
def test_handles_only_contiguous_vectors_of_one_float_dtype():
    x = np.zeros(10, np.float32)
    assert LEVEL1.handles(x, np.zeros(10, np.float32))
    assert not LEVEL1.handles(x, np.zeros(10, np.float64))
    assert not LEVEL1.handles(x[::2], np.zeros(5, np.float32))
    assert not LEVEL1.handles(x.reshape(2, 5), np.zeros((2, 5), np.float32))
    assert not LEVEL1.handles(np.zeros(10, np.int64), np.zeros(10, np.int64))


@needs_blas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_flat_step_is_the_blocked_update(dtype):
    """Only plain SGD on a large array takes the BLAS path, with the blocked numbers."""
    n = optimizers.BLOCK * 2 + 3
    p, g = vectors(n, dtype, seed=1)
    layout = {"w": (0, (n,))}
    blocked, fast = p.copy(), p.copy()
    kept = g.copy()
    optimizers.get("sgd", {"learning_rate": 0.05, "momentum": 0.0, "nesterov": False}
                   ).update_flat(blocked, g, layout)
    np.testing.assert_array_equal(g, kept)  # not allowed to overwrite: untouched
    sgd = optimizers.get("sgd", {"learning_rate": 0.05, "momentum": 0.0, "nesterov": False})
    assert sgd.flat_step(fast, g.copy())
    np.testing.assert_array_equal(fast, blocked)
    momentum = optimizers.get("sgd", {"learning_rate": 0.05, "momentum": 0.9,
                                      "nesterov": False})
    assert not momentum.flat_step(p.copy(), g.copy())
    assert not sgd.flat_step(p[:100].copy(), g[:100].copy())  # small: NumPy's blocks


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_trainer_with_a_large_sgd_update_follows_the_formulas(dtype):
    """train_step (flat, BLAS) equals loss_and_grads then the per-parameter SGD rule."""
    spec = from_dict({"name": "big", "input_dim": 300,
                      "layers": [{"units": 256, "activation": "relu"},
                                 {"units": 10, "activation": "softmax"}],
                      "loss": "sparse_categorical_crossentropy",
                      "optimizer": {"name": "sgd", "learning_rate": 0.05},
                      "training": {"dtype": dtype}})
    rng = np.random.default_rng(2)
    params = {"dense_0/kernel": rng.standard_normal((300, 256)) / 17,
              "dense_0/bias": rng.standard_normal(256) * 0.1,
              "dense_1/kernel": rng.standard_normal((256, 10)) / 16,
              "dense_1/bias": rng.standard_normal(10) * 0.1}
    assert sum(v.size for v in params.values()) > optimizers.BLOCK
    fast, slow = (NumpyBackend().build(spec, params, dtype, "cpu") for _ in range(2))
    rule = optimizers.get("sgd", spec.optimizer.params)
    for _ in range(3):
        x = rng.standard_normal((16, 300)).astype(dtype)
        y = rng.integers(0, 10, 16)
        loss, grads = slow.loss_and_grads(x, y)
        rule.update(slow.model.params, grads)
        assert fast.train_step(x, y) == loss
    for name, value in slow.get_params().items():
        np.testing.assert_array_equal(fast.get_params()[name], value, err_msg=name)
