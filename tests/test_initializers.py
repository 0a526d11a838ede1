"""Initial parameters: Keras's definitions, drawn once from the seed, reproducible."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from specs import make_spec

from suite import catalogue
from suite.initializers import INITIALIZERS, initial_params

FAN_IN, FAN_OUT = 400, 600
# The variance each initializer promises (Keras's variance scaling).
VARIANCE = {
    "glorot_uniform": 2 / (FAN_IN + FAN_OUT), "glorot_normal": 2 / (FAN_IN + FAN_OUT),
    "he_uniform": 2 / FAN_IN, "he_normal": 2 / FAN_IN,
    "lecun_uniform": 1 / FAN_IN, "lecun_normal": 1 / FAN_IN,
    "torch_default": 1 / (3 * FAN_IN),
}


def test_every_catalogue_initializer_has_a_function():
    assert set(INITIALIZERS) == set(catalogue.INITIALIZERS)


@pytest.mark.parametrize("name", sorted(VARIANCE))
def test_variance_and_support(name):
    draw = INITIALIZERS[name](np.random.default_rng(1), (FAN_IN, FAN_OUT), FAN_IN, FAN_OUT)
    assert draw.shape == (FAN_IN, FAN_OUT)
    assert abs(draw.var() / VARIANCE[name] - 1) < 0.02
    assert abs(draw.mean()) < 0.01 * np.sqrt(VARIANCE[name]) * 10
    if name.endswith("_normal"):  # truncated at two standard deviations of the raw normal
        raw_std = np.sqrt(VARIANCE[name]) / 0.87962566103423978
        assert np.abs(draw).max() <= 2 * raw_std + 1e-12
    else:
        limit = np.sqrt(3 * VARIANCE[name])
        assert np.abs(draw).max() <= limit and np.abs(draw).max() > 0.99 * limit


def test_constants():
    shape = (3, 2)
    assert not INITIALIZERS["zeros"](None, shape, 3, 2).any()
    assert (INITIALIZERS["ones"](None, shape, 3, 2) == 1).all()


# 5 inputs -> 4 tanh -> 2 linear, float32; the initializers are the hidden layer's
spec = partial(make_spec, sizes=(5, 4, 2), optimizer="sgd", name="spec", dtype="float32")


def test_initial_params_are_canonical_reproducible_and_seeded():
    first, again, other = initial_params(spec()), initial_params(spec()), initial_params(
        spec(seed=1))
    assert {k: v.shape for k, v in first.items()} == {
        "dense_0/kernel": (5, 4), "dense_0/bias": (4,),
        "dense_1/kernel": (4, 2), "dense_1/bias": (2,)}
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.allclose(first["dense_0/kernel"], other["dense_0/kernel"])


def test_changing_one_layer_leaves_the_other_layers_draws_alone():
    a, b = initial_params(spec()), initial_params(spec(kernel_initializer="he_normal"))
    assert not np.allclose(a["dense_0/kernel"], b["dense_0/kernel"])
    np.testing.assert_array_equal(a["dense_1/kernel"], b["dense_1/kernel"])


def test_torch_default_bias_uses_the_layer_fan_in():
    bias = initial_params(spec(bias_initializer="torch_default"))["dense_0/bias"]
    assert np.abs(bias).max() <= 1 / np.sqrt(5) and bias.std() > 0
