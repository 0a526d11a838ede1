"""The ledger: its entries are well formed, apply where they say, and are real.

For every entry with conventions, a small float64 case runs the NumPy reference with and
without the entry's conventions and checks that the two differ the way the entry claims
(its formula, its direction, its size). Entries that only round a constant to float32
must equal the reference run with that constant replaced by its float32 value.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np
import pytest
import specs

from backends.reference import activations, resolve_conventions
from backends.reference.backend import NumpyBackend, ReferenceTrainer
from suite import catalogue, ledger, registry

FEATURE_NAMES = {
    "activation": catalogue.ACTIVATIONS,
    "loss": catalogue.LOSSES,
    "optimizer": catalogue.OPTIMIZERS,
    "initializer": catalogue.INITIALIZERS,
    "dtype": catalogue.DTYPES,
    "regularizer": ("l2",),
}


def f32(value: float) -> float:
    return float(np.float32(value))


# Input 3 -> 5 (hidden, tanh unless told) -> 2 (linear), mse; SGD(0.1) unless told
make_spec = partial(specs.make_spec, sizes=(3, 5, 2), name="ledger")


class Run(NamedTuple):
    outputs: np.ndarray  # (8, 2) on the first batch, before training
    grads: dict[str, np.ndarray]  # of the first batch, before training
    change: dict[str, np.ndarray]  # of every parameter over the steps
    trainer: ReferenceTrainer


def train(spec, conventions, steps=1) -> Run:
    """The reference under ``conventions`` on fixed parameters and batches of 8."""
    rng = np.random.default_rng(0)
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:], strict=True)):
        params[f"dense_{i}/kernel"] = rng.standard_normal((fan_in, fan_out))
        params[f"dense_{i}/bias"] = rng.standard_normal(fan_out) * 0.5
    batches = [(rng.standard_normal((8, 3)) * 2.0, rng.standard_normal((8, 2)))
               for _ in range(steps)]
    trainer = NumpyBackend(conventions).build(spec, params, "float64", "cpu")
    outputs = trainer.predict(batches[0][0])
    grads = trainer.loss_and_grads(*batches[0])[1]
    for x, y in batches:
        trainer.train_step(x, y)
    after = trainer.get_params()
    return Run(outputs, grads, {k: after[k] - params[k] for k in params}, trainer)


def rel(a: dict | np.ndarray, b: dict | np.ndarray) -> float:
    """Relative L2 difference of two arrays or two dicts of arrays (all tensors at once)."""
    if isinstance(a, dict):
        a, b = (np.concatenate([d[k].ravel() for k in sorted(d)]) for d in (a, b))
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ---------------------------------------------------------------------------- demos
# entry id -> a check that the entry's conventions change the reference as claimed.


def demo_adam_epsilon(conventions):
    """Epsilon hat: at t = 1 it sits beside sqrt(v) = sqrt(1 - b2)|g|, not |g|: smaller steps."""
    spec = make_spec(optimizer={"name": "adam", "learning_rate": 0.01, "epsilon": 1e-3})
    keras, paper = train(spec, conventions).change, train(spec, {}).change
    for key in paper:
        assert np.all(np.abs(keras[key]) < np.abs(paper[key])), key
    assert rel(keras, paper) > 1e-3


def demo_rmsprop_epsilon(conventions):
    """sqrt(v + eps), not sqrt(v) + eps: the first step is -lr g / sqrt((1-rho) g^2 + eps)."""
    spec = make_spec(optimizer={"name": "rmsprop", "learning_rate": 0.01, "rho": 0.9,
                                "epsilon": 1e-3})
    keras, paper = train(spec, conventions), train(spec, {})
    for key, g in keras.grads.items():
        np.testing.assert_allclose(keras.change[key], -0.01 * g / np.sqrt(0.1 * g * g + 1e-3),
                                   rtol=1e-12, err_msg=key)
    assert rel(keras.change, paper.change) > 1e-3


def demo_adagrad_epsilon(conventions):
    """sqrt(acc + eps), not sqrt(acc) + eps: the first step is -lr g / sqrt(g^2 + eps)."""
    spec = make_spec(optimizer={"name": "adagrad", "learning_rate": 0.1,
                                "initial_accumulator_value": 0.0, "epsilon": 1e-2})
    keras, paper = train(spec, conventions), train(spec, {})
    for key, g in keras.grads.items():
        np.testing.assert_allclose(keras.change[key], -0.1 * g / np.sqrt(g * g + 1e-2),
                                   rtol=1e-12, err_msg=key)
    assert rel(keras.change, paper.change) > 1e-3


def demo_amsgrad_max(conventions):
    """The maximum of v_hat = v / (1 - b2^t), not of v: the steps differ once the
    correction shrinks; without amsgrad the convention changes nothing."""
    spec = make_spec(optimizer={"name": "adam", "learning_rate": 0.01, "beta_2": 0.9,
                                "amsgrad": True})
    optax, paper = train(spec, conventions, steps=4), train(spec, {}, steps=4)
    assert rel(optax.change, paper.change) > 1e-3
    plain = train(make_spec(optimizer={"name": "adam", "learning_rate": 0.01, "beta_2": 0.9}),
                  conventions, steps=4)
    reference = train(make_spec(optimizer={"name": "adam", "learning_rate": 0.01,
                                           "beta_2": 0.9}), {}, steps=4)
    assert rel(plain.change, reference.change) == 0  # without amsgrad nothing changes


def demo_sgd_momentum(conventions):
    """Keras keeps v = -lr * buf: the same parameters for a constant lr, another state."""
    spec = make_spec(optimizer={"name": "sgd", "learning_rate": 0.1, "momentum": 0.9})
    keras, torch = train(spec, conventions, steps=3), train(spec, {}, steps=3)
    assert rel(keras.change, torch.change) < 1e-14
    for key, slots in torch.trainer.optimizer.state.items():
        np.testing.assert_allclose(keras.trainer.optimizer.state[key]["velocity"],
                                   -0.1 * slots["momentum_buffer"], rtol=1e-13)


def demo_softplus_threshold(conventions):
    """torch's softplus is z itself above 20 (gradient 1); below, the exact formula."""
    torch, exact = activations.get("softplus", conventions), activations.get("softplus")
    z = np.array([-3.0, 0.5, 19.0, 21.0, 30.0])
    got, want = torch.forward(z), exact.forward(z)
    np.testing.assert_array_equal(got[:3], want[:3])
    np.testing.assert_array_equal(got[3:], z[3:])
    assert np.all(want[3:] - z[3:] > 0) and np.all(want[3:] - z[3:] < np.exp(-20.0))


def check_rounded_hyperparameter(conventions, make, value, steps=3, low=1e-12):
    """The conventions equal the reference with ``value`` rounded to float32: outputs,
    gradients and the change over ``steps`` steps; and they differ from the exact value's
    by a float32 rounding's amount. ``make(value)`` builds the spec."""
    got = train(make(value), conventions, steps)
    rounded = train(make(f32(value)), {}, steps)
    exact = train(make(value), {}, steps)
    for index in range(3):  # outputs, grads, change
        np.testing.assert_array_equal(*(np.concatenate([a.ravel() for _, a in sorted(
            run[index].items())]) if isinstance(run[index], dict) else run[index]
            for run in (got, rounded)))
    gaps = [rel(got[index], exact[index]) for index in range(3)]
    assert max(gaps) < 1e-6, gaps  # a rounding of the constant, not another formula
    assert max(gaps) > low, gaps


def demo_float32_sgd_momentum(conventions):
    """Equal to the reference with momentum float32(0.9)."""
    check_rounded_hyperparameter(conventions, lambda mu: make_spec(optimizer={
        "name": "sgd", "learning_rate": 0.1, "momentum": mu, "nesterov": True}), 0.9)


def demo_float32_adamw_weight_decay(conventions):
    """Equal to the reference with weight_decay float32(0.01) (betas exact in float32)."""
    check_rounded_hyperparameter(conventions, lambda wd: make_spec(optimizer={
        "name": "adamw", "learning_rate": 0.01, "weight_decay": wd, "beta_1": 0.5,
        "beta_2": 0.75}), 0.01, low=1e-13)


def demo_float32_adagrad_initial(conventions):
    """Equal to the reference with initial_accumulator_value float32(0.1)."""
    check_rounded_hyperparameter(conventions, lambda acc: make_spec(optimizer={
        "name": "adagrad", "learning_rate": 0.1, "initial_accumulator_value": acc}), 0.1)


def demo_float32_l2(conventions):
    """Equal to the reference with l2 = float32(0.01): in the loss and the gradients."""
    check_rounded_hyperparameter(conventions, lambda l2: make_spec(l2=l2), 0.01)


def demo_float32_leaky_relu(conventions):
    """Equal to the reference with negative_slope = float32(0.1)."""
    check_rounded_hyperparameter(conventions, lambda slope: make_spec(hidden={
        "name": "leaky_relu", "negative_slope": slope}), 0.1)


def demo_float32_adam_betas(conventions):
    """The first Keras step scales by sqrt(1 - b2_32) / (1 - b1_32) instead of the exact one."""
    conventions = {**ledger.by_id("keras-adam-epsilon").conventions, **conventions}
    spec = make_spec(optimizer={"name": "adam", "learning_rate": 0.01, "beta_1": 0.9,
                                "beta_2": 0.999})
    got, exact = train(spec, conventions), train(spec, {"adam_epsilon": "keras"})
    factor = (np.sqrt(1 - f32(0.999)) / (1 - f32(0.9))) / (np.sqrt(1 - 0.999) / (1 - 0.9))
    assert 1e-6 < abs(factor - 1.0) < 1e-4  # premise: beta_2's rounding, amplified 1/(1-b2)
    for key in exact.change:
        np.testing.assert_allclose(got.change[key], exact.change[key] * factor, rtol=1e-13,
                                   err_msg=key)
        for slot in ("m", "v"):  # the moving averages use 1 - beta exactly
            np.testing.assert_array_equal(got.trainer.optimizer.state[key][slot],
                                          exact.trainer.optimizer.state[key][slot])


def check_activation(name, conventions, formula, low, high):
    """The variant follows ``formula``, and the model's outputs and gradients move by a
    float32 rounding's amount, the activation itself by between ``low`` and ``high``."""
    z = np.linspace(-6.0, 6.0, 121)
    variant, exact = activations.get(name, conventions), activations.get(name)
    np.testing.assert_allclose(variant.forward(z), formula(z), rtol=1e-14, atol=1e-300)
    assert low < rel(variant.forward(z), exact.forward(z)) < high
    got, plain = train(make_spec(hidden=name), conventions), train(make_spec(hidden=name), {})
    for index in range(3):  # outputs, grads, change
        assert 1e-12 < rel(got[index], plain[index]) < 1e-6


def demo_float32_gelu(conventions):
    """0.5 z erfc(-z c) with c = float32(1/sqrt 2), 1.7e-8 relative below 1/sqrt 2."""
    c = f32(0.7071067811865476)
    check_activation("gelu", conventions, lambda z: 0.5 * z * activations.erfc(-z * c),
                     1e-10, 1e-7)


def demo_float32_gelu_tanh(conventions):
    """The cubic coefficient float32(0.044715)."""
    k, s = f32(0.044715), np.sqrt(2.0 / np.pi)
    check_activation("gelu_tanh", conventions,
                     lambda z: 0.5 * z * (1.0 + np.tanh(s * (z + k * z ** 3))), 1e-10, 1e-7)


def demo_mxnet_float32_attributes(conventions):
    """MXNet's C++ float attributes: SGD (NAG) equals the reference with lr and momentum
    rounded; Adam's whole step size is rounded; elu's alpha is rounded; leaky_relu's
    negative branch is the float32 product float32(z) * float32(slope)."""
    def nag(lr, mu):
        return make_spec(optimizer={"name": "sgd", "learning_rate": lr, "momentum": mu,
                                    "nesterov": True})

    got, exact = train(nag(0.1, 0.9), conventions, 3), train(nag(0.1, 0.9), {}, 3)
    rounded = train(nag(f32(0.1), f32(0.9)), {}, 3)
    for key in got.change:
        np.testing.assert_array_equal(got.change[key], rounded.change[key], err_msg=key)
    assert 1e-12 < rel(got.change, exact.change) < 1e-6
    # Adam (betas and epsilon exact in float32): only the step size's rounding remains
    keras_form = ledger.by_id("mxnet-adam-epsilon").conventions
    adam = make_spec(optimizer={"name": "adam", "learning_rate": 0.01, "beta_1": 0.5,
                                "beta_2": 0.75, "epsilon": 2.0 ** -10})
    got, exact = train(adam, {**keras_form, **conventions}), train(adam, keras_form)
    step = 0.01 * np.sqrt(1 - 0.75) / (1 - 0.5)
    factor = f32(step) / step
    assert 1e-9 < abs(factor - 1.0) < 1e-6
    for key in exact.change:
        np.testing.assert_allclose(got.change[key], exact.change[key] * factor, rtol=1e-13,
                                   err_msg=key)
    # elu under SGD(0.125), exact in float32, so that only alpha rounds
    check_rounded_hyperparameter(conventions, lambda alpha: make_spec(hidden={
        "name": "elu", "alpha": alpha}, optimizer={"name": "sgd", "learning_rate": 0.125}),
        0.3)
    z = np.linspace(-6.0, 6.0, 121)
    leaky = activations.get("leaky_relu", conventions).forward(z, negative_slope=0.1)
    product = (z.astype(np.float32) * np.float32(0.1)).astype(np.float64)
    np.testing.assert_array_equal(leaky, np.where(z > 0, z, product))
    assert 1e-10 < rel(leaky, activations.get("leaky_relu").forward(z, 0.1)) < 1e-6


DEMOS = {
    "keras-adam-epsilon": demo_adam_epsilon,
    "keras-rmsprop-epsilon": demo_rmsprop_epsilon,
    "keras-adagrad-epsilon": demo_adagrad_epsilon,
    "keras-sgd-momentum": demo_sgd_momentum,
    "torch-softplus-threshold": demo_softplus_threshold,
    "keras-float32-sgd-momentum": demo_float32_sgd_momentum,
    "keras-float32-adam-betas": demo_float32_adam_betas,
    "keras-float32-adamw-weight-decay": demo_float32_adamw_weight_decay,
    "keras-float32-adagrad-initial-accumulator": demo_float32_adagrad_initial,
    "keras-float32-l2": demo_float32_l2,
    "keras-float32-leaky-relu": demo_float32_leaky_relu,
    "keras-float32-gelu": demo_float32_gelu,
    "keras-float32-gelu-tanh": demo_float32_gelu_tanh,
    "tensorflow-adam-epsilon": demo_adam_epsilon,
    "tensorflow-rmsprop-epsilon": demo_rmsprop_epsilon,
    "tensorflow-float32-leaky-relu": demo_float32_leaky_relu,
    "tensorflow-float32-gelu": demo_float32_gelu,
    "tensorflow-float32-gelu-tanh": demo_float32_gelu_tanh,
    "keras-torch-softplus-threshold": demo_softplus_threshold,
    "mxnet-adam-epsilon": demo_adam_epsilon,
    "mxnet-rmsprop-epsilon": demo_rmsprop_epsilon,
    "mxnet-adagrad-epsilon": demo_adagrad_epsilon,
    "mxnet-sgd-momentum": demo_sgd_momentum,
    "mxnet-softplus-threshold": demo_softplus_threshold,
    "mxnet-float32-attributes": demo_mxnet_float32_attributes,
    "jax-adagrad-epsilon": demo_adagrad_epsilon,
    "jax-amsgrad-max": demo_amsgrad_max,
}

WITH_CONVENTIONS = [entry.id for entry in ledger.ENTRIES if entry.conventions]


# ---------------------------------------------------------------------------- tests


def test_every_entry_with_conventions_has_a_demo():
    assert set(DEMOS) == set(WITH_CONVENTIONS)


@pytest.mark.parametrize("entry_id", WITH_CONVENTIONS)
def test_entry_difference_is_real(entry_id):
    """The reference with the entry's conventions differs from it as the entry says."""
    DEMOS[entry_id](ledger.by_id(entry_id).conventions)


@pytest.mark.parametrize("entry", ledger.ENTRIES, ids=[e.id for e in ledger.ENTRIES])
def test_entry_is_well_formed(entry):
    """Valid reference conventions, known backends, features and dtypes of the catalogue."""
    resolve_conventions(entry.conventions)  # raises on an unknown key or value
    assert entry.backends and set(entry.backends) <= set(registry.builtin_names())
    for feature in entry.features:
        kind, _, name = feature.partition(":")
        assert name in FEATURE_NAMES[kind], feature
    assert set(entry.dtypes) <= set(catalogue.DTYPES)
    assert entry.title and entry.reference and entry.backend and entry.source
    assert entry.to_dict()["dtypes"] == list(entry.dtypes)


def test_ids_are_unique():
    ids = [entry.id for entry in ledger.ENTRIES]
    assert len(ids) == len(set(ids))


def test_float32_entries_apply_only_in_float64():
    """gelu with SGD momentum: the Keras float32 entries join the variant in float64 only."""
    sgd = {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}
    wide = make_spec(hidden="gelu", optimizer=sgd)
    narrow = make_spec(hidden="gelu", optimizer=sgd, dtype="float32")
    wide_ids = {e.id for e in ledger.applicable(wide, "keras")}
    assert {"keras-float32-gelu", "keras-float32-sgd-momentum", "keras-sgd-momentum"} <= wide_ids
    wide_conventions = ledger.conventions_for(wide, "keras")
    assert wide_conventions["float32_activation_constants"] == "tensorflow"
    assert wide_conventions["float32_optimizer_constants"] == "tensorflow"
    assert "float32_l2" not in wide_conventions  # no L2 in this spec
    narrow_ids = {e.id for e in ledger.applicable(narrow, "keras")}
    assert narrow_ids == {"keras-sgd-momentum"}
    assert not any(k.startswith("float32") for k in ledger.conventions_for(narrow, "keras"))
    assert not any(k.startswith("float32") for k in ledger.conventions_for(wide, "torch"))


def test_entries_apply_by_feature_and_backend():
    tanh_adam = make_spec(hidden="tanh", optimizer={"name": "adam"})
    assert [e.id for e in ledger.applicable(tanh_adam, "keras")] == [
        "keras-adam-epsilon", "keras-float32-adam-betas"]
    assert ledger.applicable(tanh_adam, "torch") == []
    assert ledger.conventions_for(make_spec(hidden="softplus"), "torch") == {
        "softplus": "torch_threshold"}
