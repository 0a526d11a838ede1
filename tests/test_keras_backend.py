"""What is Keras's own in the keras backend; the shared contract is test_backend_contract.py.

Keras casts several Python-float constants through float32 even in a float64 run; the
tests here pin each such rounding (the exact value matches, the unrounded one does not).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import THREADS


@pytest.fixture(scope="module")
def backend(load_backend):
    return load_backend("keras")


def _f32(value: float) -> float:
    return float(np.float32(value))


def test_l2_penalty_is_in_the_loss_with_a_float32_factor(build, batch):
    """Keras adds l2 * sum(W**2) to the loss, but casts the Python factor through float32.

    NOTE: keras.regularizers.L2 computes ops.cast(self.l2, x.dtype), and tf.cast of a
    Python float makes a float32 constant first; even a float64 run uses float32(0.01).
    """
    trainer, params = build([{"units": 2, "kernel_regularizer": {"l2": 0.01}}])
    x, y = batch()
    kernel = params["dense_0/kernel"]
    residual = x @ kernel + params["dense_0/bias"] - y
    loss, grads = trainer.loss_and_grads(x, y)
    data_grad = 2.0 / residual.size * x.T @ residual
    for l2, matches in ((_f32(0.01), True), (0.01, False)):
        expected_loss = np.mean(residual ** 2) + l2 * np.sum(kernel ** 2)
        assert bool(loss == pytest.approx(expected_loss, rel=1e-13, abs=0)) is matches
        close = np.allclose(grads["dense_0/kernel"], data_grad + 2 * l2 * kernel, rtol=1e-13,
                            atol=0)
        assert bool(close) is matches


def test_optimizer_receives_every_hyperparameter(build, optimizer_case):
    name, hp = optimizer_case
    trainer, _ = build(optimizer={"name": name, **hp})
    opt = trainer.model.optimizer
    assert type(opt).__name__.lower() == name
    for key, value in hp.items():
        got = getattr(opt, key)
        got = float(got.numpy()) if key == "learning_rate" else got
        assert got == value, key
    # float64 run: the learning-rate variable is float64, so lr is not rounded to float32
    assert opt.learning_rate.dtype == "float64"
    assert opt.weight_decay == (hp["weight_decay"] if name == "adamw" else None)
    assert (opt.clipnorm, opt.clipvalue, opt.global_clipnorm, opt.use_ema) == (
        None, None, None, False)


def test_compiled_without_xla_on_cpu_and_floatx_restored(build):
    import keras

    trainer, _ = build()
    assert trainer.model.jit_compile is False
    assert keras.config.floatx() == "float32"


def test_sgd_momentum_factor_is_rounded_to_float32(build, batch):
    """Keras SGD: v = mu v - lr g, p += v, with ops.cast(mu, float64) of a float32 mu.

    NOTE: the same cast rounds Adam's beta_1/beta_2 in the bias corrections, AdamW's
    weight_decay and Adagrad's initial_accumulator_value in a float64 run.
    """
    trainer, params = build([{"units": 2}], optimizer={"name": "sgd", "learning_rate": 0.1,
                                                       "momentum": 0.9})
    grads = []
    for x, y in (batch(seed=1), batch(seed=2)):
        grads.append(trainer.loss_and_grads(x, y)[1]["dense_0/kernel"])
        trainer.train_step(x, y)
    got = trainer.get_params()["dense_0/kernel"]
    for mu, matches in ((_f32(0.9), True), (0.9, False)):
        v = -0.1 * grads[0]
        v = mu * v - 0.1 * grads[1]
        expected = params["dense_0/kernel"] - 0.1 * grads[0] + v
        assert bool(np.allclose(got, expected, rtol=1e-14, atol=0)) is matches


INV_SQRT2 = 1.0 / math.sqrt(2.0)


def _gelu(z, inv_sqrt2):
    return 0.5 * z * np.vectorize(math.erfc)(-z * inv_sqrt2)


def _gelu_tanh(z, coeff):
    return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + coeff * z ** 3)))


# NOTE: in float64, TensorFlow rounds a constant of these to float32: tf.nn.leaky_relu's
# alpha is a float32 op attribute; tf.nn.gelu casts 1/sqrt(2) (exact) and 0.044715
# (tanh form) from Python floats, which tf.cast makes float32 first
# (tensorflow/python/ops/nn_ops.py).
ROUNDED_ACTIVATIONS = {
    "leaky_relu": ({"negative_slope": 0.3}, lambda z, r: np.where(z > 0, z, r(0.3) * z)),
    "gelu": ({}, lambda z, r: _gelu(z, r(INV_SQRT2))),
    "gelu_tanh": ({}, lambda z, r: _gelu_tanh(z, r(0.044715))),
}


@pytest.mark.parametrize("name", sorted(ROUNDED_ACTIVATIONS))
def test_activation_uses_a_float32_constant_in_float64(build, batch, name):
    extra, formula = ROUNDED_ACTIVATIONS[name]
    trainer, params = build([{"units": 4, "activation": {"name": name, **extra}}])
    x, _ = batch()
    out = trainer.predict(x)
    z = x @ params["dense_0/kernel"] + params["dense_0/bias"]
    np.testing.assert_allclose(out, formula(z, _f32), rtol=1e-13, atol=1e-16)
    assert not np.allclose(out, formula(z, float), rtol=1e-12, atol=0)


def test_fast_step_trains_like_train_step_between_other_calls(build, batch):
    """fast_step steps Keras's own compiled train function (Adam, float64), cycling
    through its batches; train_step between its steps continues the same training."""
    adam = {"name": "adam", "learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.99,
            "epsilon": 1e-7, "amsgrad": False}
    fast, _ = build(optimizer=adam)
    stepped, _ = build(optimizer=adam)
    data = [batch(seed=1), batch(n=4, seed=2)]
    step = fast.fast_step(data)
    for _ in range(3):
        assert step() is None
    for i in range(3):
        stepped.train_step(*data[i % 2])
    assert fast.train_step(*data[1]) == stepped.train_step(*data[1])
    step()  # data[1]: the cycle goes on
    stepped.train_step(*data[1])
    for name, value in stepped.get_params().items():
        np.testing.assert_array_equal(fast.get_params()[name], value, err_msg=name)
    assert {p.dtype for p in fast.get_params().values()} == {np.dtype(np.float64)}


def test_runtime_settings_report_threads_and_no_tf32(backend):
    """After load(2): TensorFlow's pools as it reports them, TF32 off. (Both pools are
    pinned only where TensorFlow's runtime had not started yet in this process, and a load
    that finds it started refuses unless the intra-op pool already agrees: so both hold
    THREADS.)"""
    settings = backend.runtime_settings()
    assert settings["keras.backend"] == "tensorflow"
    assert settings["tensorflow.intra_op_parallelism_threads"] == THREADS
    assert settings["tensorflow.inter_op_parallelism_threads"] == THREADS
    assert settings["tensorflow.tensor_float_32_execution"] is False
