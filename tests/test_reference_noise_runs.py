"""The reference's two noise-run options: ``dtype`` (the float64 shadow of a float32 run)
and ``order="reversed"`` (every sum in another order, for a float64 run).

A reordered training is the same training: its numbers agree with the natural order's to
rounding, and differ from them somewhere (else it would measure no noise). The shadow
computes in float64 from float32 inputs, so it sits closer to the exact answer than the
float32 run by orders of magnitude.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import specs

from backends.reference.backend import NumpyBackend
from backends.reference.reordered import permute, unit_orders

make_spec = partial(specs.make_spec, sizes=(9, 12, 8, 4), hidden="tanh",
                    loss="sparse_categorical_crossentropy", name="noise")
OPTIMIZERS = ({"name": "sgd", "learning_rate": 0.1, "momentum": 0.9},
              {"name": "adam", "learning_rate": 0.01})


def _params(spec, dtype="float64"):
    rng = np.random.default_rng(1)
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:], strict=True)):
        params[f"dense_{i}/kernel"] = (rng.standard_normal((fan_in, fan_out))
                                       / np.sqrt(fan_in)).astype(dtype)
        params[f"dense_{i}/bias"] = (rng.standard_normal(fan_out) * 0.1).astype(dtype)
    return params


def _train(backend, spec, dtype, steps=20):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, spec.sizes[0])).astype(dtype)
    y = rng.integers(0, spec.sizes[-1], 64)
    trainer = backend.build(spec, _params(spec, dtype), dtype, "cpu")
    first = trainer.predict(x[:16])
    loss, grads = trainer.loss_and_grads(x[:16], y[:16])
    for step in range(steps):
        rows = slice(16 * (step % 4), 16 * (step % 4) + 16)
        trainer.train_step(x[rows], y[rows])
    return first, grads, trainer.get_params()


def _rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b)


def test_permute_is_its_own_inverse_and_keeps_the_outputs():
    spec = make_spec(optimizer=OPTIMIZERS[0])
    params = _params(spec)
    orders = unit_orders(spec.sizes)
    assert list(orders[-1]) == list(range(spec.sizes[-1]))
    again = permute(permute(params, orders), orders)
    assert all(np.array_equal(again[k], params[k]) for k in params)


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o["name"])
def test_the_reordered_reference_trains_the_same_network_to_rounding(optimizer):
    spec = make_spec(optimizer=optimizer)
    natural = _train(NumpyBackend(), spec, "float64")
    reordered = _train(NumpyBackend(order="reversed"), spec, "float64")
    errors = [_rel(reordered[0], natural[0])]
    errors += [_rel(reordered[1][k], natural[1][k]) for k in natural[1]]
    errors += [_rel(reordered[2][k], natural[2][k]) for k in natural[2]]
    assert max(errors) < 1e-13  # the same numbers, to float64 rounding
    assert max(errors) > 0  # and not the same sums: it measures something


def test_the_float64_shadow_computes_in_float64_from_the_float32_start():
    spec = make_spec(optimizer=OPTIMIZERS[0], dtype="float32")
    start = _params(spec, "float32")
    x = np.random.default_rng(3).standard_normal((16, spec.sizes[0])).astype(np.float32)
    shadow = NumpyBackend(dtype="float64").build(spec, start, "float32", "cpu")
    wide = {k: v.astype(np.float64) for k, v in start.items()}
    plain64 = NumpyBackend().build(make_spec(optimizer=OPTIMIZERS[0]), wide, "float64", "cpu")
    float32 = NumpyBackend().build(spec, start, "float32", "cpu")
    assert shadow.predict(x).dtype == np.float64
    np.testing.assert_array_equal(shadow.predict(x), plain64.predict(x))
    assert 1e-9 < _rel(float32.predict(x), shadow.predict(x)) < 1e-5  # float32's rounding


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="order must be one of natural, reversed"):
        NumpyBackend(order="random")
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        NumpyBackend(dtype="float16")
