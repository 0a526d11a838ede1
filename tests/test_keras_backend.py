"""The Keras (TensorFlow) backend against hand-written NumPy formulas (float64 unless named)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from suite.initializers import initial_params
from suite.spec import from_dict

# Skip without importing: load() must set KERAS_BACKEND before keras is first imported.
if importlib.util.find_spec("keras") is None or importlib.util.find_spec("tensorflow") is None:
    pytest.skip("keras and tensorflow are not installed", allow_module_level=True)

from backends.keras_backend import KerasBackend  # noqa: E402


@pytest.fixture(scope="module")
def backend() -> KerasBackend:
    b = KerasBackend()
    b.load(1)
    return b


def keras():
    import keras as module

    return module


def make_spec(layers, loss="mse", optimizer=None, input_dim=3, dtype="float64"):
    return from_dict({
        "name": "t", "input_dim": input_dim, "layers": layers, "loss": loss,
        "optimizer": optimizer or {"name": "sgd", "learning_rate": 0.1},
        "training": {"dtype": dtype},
    })


def batch(n=6, d=3, m=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((n, m))


MLP = [{"units": 4, "activation": "tanh"}, {"units": 2}]


def build(backend, spec, dtype="float64"):
    params = initial_params(spec)
    return backend.build(spec, params, dtype, "cpu"), params


def test_get_params_returns_the_given_params(backend):
    """Canonical names, shapes (fan_in, fan_out) and values survive the (out, in) layout."""
    trainer, params = build(backend, make_spec(MLP))
    got = trainer.get_params()
    assert sorted(got) == sorted(params)
    for name, value in params.items():
        assert got[name].shape == value.shape
        np.testing.assert_array_equal(got[name], value)


def test_loss_and_grads_does_not_update(backend):
    trainer, params = build(backend, make_spec(MLP))
    trainer.loss_and_grads(*batch())
    for name, value in trainer.get_params().items():
        np.testing.assert_array_equal(value, params[name])


def test_train_step_returns_the_loss_before_its_update(backend):
    trainer, params = build(backend, make_spec(MLP))
    x, y = batch()
    probe, _ = trainer.loss_and_grads(x, y)
    assert trainer.train_step(x, y) == pytest.approx(probe, rel=1e-12)
    moved = trainer.get_params()
    assert any(not np.array_equal(moved[k], params[k]) for k in params)


def test_second_train_step_returns_its_own_batch_loss(backend):
    """Not a running mean over the two steps."""
    trainer, _ = build(backend, make_spec(MLP))
    xa, ya = batch(seed=1)
    xb, yb = batch(seed=2)
    yb = yb * 10.0  # a loss far from the first batch's
    first = trainer.train_step(xa, ya)
    probe, _ = trainer.loss_and_grads(xb, yb)
    second = trainer.train_step(xb, yb)
    assert second == pytest.approx(probe, rel=1e-12)
    assert abs(second - (first + probe) / 2) > 1e-3


def test_mse_gradients_of_one_dense_layer_match_numpy(backend):
    """loss = mean(r**2) over all n*m elements, r = xW + b - y: dW = 2/(nm) x.T r."""
    spec = make_spec([{"units": 2}])
    trainer, params = build(backend, spec)
    x, y = batch()
    residual = x @ params["dense_0/kernel"] + params["dense_0/bias"] - y
    loss, grads = trainer.loss_and_grads(x, y)
    scale = 2.0 / residual.size
    assert loss == pytest.approx(np.mean(residual ** 2), rel=1e-12)
    np.testing.assert_allclose(grads["dense_0/kernel"], scale * x.T @ residual, rtol=1e-12)
    np.testing.assert_allclose(grads["dense_0/bias"], scale * residual.sum(0), rtol=1e-12)


def test_sparse_crossentropy_gradients_are_from_logits(backend):
    """Fused softmax: dZ = (softmax(z) - onehot) / n."""
    spec = make_spec([{"units": 3, "activation": "softmax"}],
                     loss="sparse_categorical_crossentropy")
    trainer, params = build(backend, spec)
    x, _ = batch()
    labels = np.array([0, 2, 1, 1, 0, 2], dtype=np.int64)
    z = x @ params["dense_0/kernel"] + params["dense_0/bias"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss, grads = trainer.loss_and_grads(x, labels)
    dz = (p - np.eye(3)[labels]) / len(x)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(6), labels])), rel=1e-12)
    np.testing.assert_allclose(grads["dense_0/kernel"], x.T @ dz, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads["dense_0/bias"], dz.sum(0), rtol=1e-12, atol=1e-15)


def test_l2_penalty_is_in_the_loss_with_a_float32_factor(backend):
    """Keras adds l2 * sum(W**2) to the loss, but casts the Python factor through float32.

    NOTE: keras.regularizers.L2 computes ops.cast(self.l2, x.dtype), and tf.cast of a
    Python float makes a float32 constant first; even a float64 run uses float32(0.01).
    """
    spec = make_spec([{"units": 2, "kernel_regularizer": {"l2": 0.01}}])
    trainer, params = build(backend, spec)
    x, y = batch()
    kernel = params["dense_0/kernel"]
    residual = x @ kernel + params["dense_0/bias"] - y
    loss, grads = trainer.loss_and_grads(x, y)
    data_grad = 2.0 / residual.size * x.T @ residual
    for l2, matches in ((float(np.float32(0.01)), True), (0.01, False)):
        expected_loss = np.mean(residual ** 2) + l2 * np.sum(kernel ** 2)
        assert bool(loss == pytest.approx(expected_loss, rel=1e-13, abs=0)) is matches
        close = np.allclose(grads["dense_0/kernel"], data_grad + 2 * l2 * kernel, rtol=1e-13,
                            atol=0)
        assert bool(close) is matches


def test_one_sgd_step_is_p_minus_lr_g(backend):
    trainer, params = build(backend, make_spec(MLP))
    x, y = batch()
    _, grads = trainer.loss_and_grads(x, y)
    trainer.train_step(x, y)
    for name, value in trainer.get_params().items():
        np.testing.assert_allclose(value, params[name] - 0.1 * grads[name], rtol=1e-12,
                                   atol=1e-15)


OPTIMIZER_SPECS = {
    "sgd": {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True},
    "adam": {"learning_rate": 0.002, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-6,
             "amsgrad": True},
    "adamw": {"learning_rate": 0.003, "weight_decay": 0.02, "beta_1": 0.85, "beta_2": 0.98,
              "epsilon": 1e-5, "amsgrad": False},
    "rmsprop": {"learning_rate": 0.004, "rho": 0.8, "momentum": 0.3, "epsilon": 1e-4,
                "centered": True},
    "adagrad": {"learning_rate": 0.005, "initial_accumulator_value": 0.2, "epsilon": 1e-3},
}


@pytest.mark.parametrize("name", sorted(OPTIMIZER_SPECS))
def test_optimizer_receives_every_hyperparameter(backend, name):
    hp = OPTIMIZER_SPECS[name]
    trainer, _ = build(backend, make_spec(MLP, optimizer={"name": name, **hp}))
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


def test_compiled_without_xla_on_cpu_and_floatx_restored(backend):
    trainer, _ = build(backend, make_spec(MLP))
    assert trainer.model.jit_compile is False
    assert keras().config.floatx() == "float32"


def test_nesterov_without_momentum_is_plain_sgd(backend):
    spec = make_spec(MLP, optimizer={"name": "sgd", "learning_rate": 0.1, "nesterov": True})
    trainer, params = build(backend, spec)
    x, y = batch()
    _, grads = trainer.loss_and_grads(x, y)
    trainer.train_step(x, y)
    got = trainer.get_params()
    np.testing.assert_allclose(got["dense_0/kernel"],
                               params["dense_0/kernel"] - 0.1 * grads["dense_0/kernel"],
                               rtol=1e-12)


def test_sgd_momentum_factor_is_rounded_to_float32(backend):
    """Keras SGD: v = mu v - lr g, p += v, with ops.cast(mu, float64) of a float32 mu.

    NOTE: the same cast rounds Adam's beta_1/beta_2 in the bias corrections, AdamW's
    weight_decay and Adagrad's initial_accumulator_value in a float64 run.
    """
    spec = make_spec([{"units": 2}], optimizer={"name": "sgd", "learning_rate": 0.1,
                                                 "momentum": 0.9})
    trainer, params = build(backend, spec)
    batches = [batch(seed=1), batch(seed=2)]
    grads = []
    for x, y in batches:
        grads.append(trainer.loss_and_grads(x, y)[1]["dense_0/kernel"])
        trainer.train_step(x, y)
    got = trainer.get_params()["dense_0/kernel"]
    for mu, matches in ((float(np.float32(0.9)), True), (0.9, False)):
        v = -0.1 * grads[0]
        v = mu * v - 0.1 * grads[1]
        expected = params["dense_0/kernel"] - 0.1 * grads[0] + v
        assert bool(np.allclose(got, expected, rtol=1e-14, atol=0)) is matches


def _f32(value: float) -> float:
    return float(np.float32(value))


INV_SQRT2 = 1.0 / math.sqrt(2.0)


def _gelu(z, inv_sqrt2=INV_SQRT2):
    return 0.5 * z * np.vectorize(math.erfc)(-z * inv_sqrt2)


def _gelu_tanh(z, coeff=0.044715):
    return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + coeff * z ** 3)))


ACTIVATION_FORMULAS = {
    "linear": ({}, lambda z: z),
    "relu": ({}, lambda z: np.maximum(z, 0.0)),
    "elu": ({"alpha": 0.7}, lambda z: np.where(z > 0, z, 0.7 * np.expm1(z))),
    "sigmoid": ({}, lambda z: 1.0 / (1.0 + np.exp(-z))),
    "tanh": ({}, np.tanh),
    "softplus": ({}, lambda z: np.log1p(np.exp(z))),
}

# NOTE: in float64, TensorFlow rounds a constant of these to float32: tf.nn.leaky_relu's
# alpha is a float32 op attribute; tf.nn.gelu casts 1/sqrt(2) (exact) and 0.044715
# (tanh form) from Python floats, which tf.cast makes float32 first
# (tensorflow/python/ops/nn_ops.py).
ROUNDED_ACTIVATIONS = {
    "leaky_relu": ({"negative_slope": 0.3}, lambda z, r: np.where(z > 0, z, r(0.3) * z)),
    "gelu": ({}, lambda z, r: _gelu(z, r(INV_SQRT2))),
    "gelu_tanh": ({}, lambda z, r: _gelu_tanh(z, r(0.044715))),
}


def _outputs_and_logits(backend, name, extra):
    spec = make_spec([{"units": 4, "activation": {"name": name, **extra}}])
    trainer, params = build(backend, spec)
    x, _ = batch()
    return trainer.predict(x), x @ params["dense_0/kernel"] + params["dense_0/bias"]


@pytest.mark.parametrize("name", sorted(ACTIVATION_FORMULAS))
def test_activation_matches_its_formula(backend, name):
    extra, formula = ACTIVATION_FORMULAS[name]
    out, z = _outputs_and_logits(backend, name, extra)
    np.testing.assert_allclose(out, formula(z), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(ROUNDED_ACTIVATIONS))
def test_activation_uses_a_float32_constant_in_float64(backend, name):
    extra, formula = ROUNDED_ACTIVATIONS[name]
    out, z = _outputs_and_logits(backend, name, extra)
    np.testing.assert_allclose(out, formula(z, _f32), rtol=1e-13, atol=1e-16)
    assert not np.allclose(out, formula(z, float), rtol=1e-12, atol=0)


def _bce(z, y):
    return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))


def _cce(z, y):
    shifted = z - z.max(1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return -np.mean((y * logp).sum(1))


LOSS_FORMULAS = {
    "mse": ("linear", lambda z, y: np.mean((z - y) ** 2)),
    "mae": ("linear", lambda z, y: np.mean(np.abs(z - y))),
    "huber": ("linear", lambda z, y: np.mean(np.where(
        np.abs(z - y) <= 0.5, 0.5 * (z - y) ** 2, 0.5 * np.abs(z - y) - 0.5 * 0.25))),
    "binary_crossentropy": ("sigmoid", _bce),
    "categorical_crossentropy": ("softmax", _cce),
}


@pytest.mark.parametrize("name", sorted(LOSS_FORMULAS))
def test_loss_matches_its_formula(backend, name):
    activation, formula = LOSS_FORMULAS[name]
    loss = {"name": name, "delta": 0.5} if name == "huber" else name
    spec = make_spec([{"units": 3, "activation": activation}], loss=loss)
    trainer, params = build(backend, spec)
    x, y = batch(m=3)
    if name == "binary_crossentropy":
        y = (y > 0).astype(np.float64)
    if name == "categorical_crossentropy":
        y = np.abs(y) / np.abs(y).sum(1, keepdims=True)  # probability targets
    z = x @ params["dense_0/kernel"] + params["dense_0/bias"]
    value, _ = trainer.loss_and_grads(x, y)
    assert value == pytest.approx(formula(z, y), rel=1e-12)


def test_float32_run_stays_float32(backend):
    spec = make_spec(MLP, dtype="float32")
    trainer, _ = build(backend, spec, "float32")
    x, y = batch()
    _, grads = trainer.loss_and_grads(x.astype(np.float32), y.astype(np.float32))
    trainer.train_step(x.astype(np.float32), y.astype(np.float32))
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
    assert {p.dtype for p in trainer.get_params().values()} == {np.dtype(np.float32)}
    assert trainer.predict(x.astype(np.float32)).dtype == np.float32


def test_fused_softmax_predict_gives_probabilities(backend):
    spec = make_spec([{"units": 4, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
                     loss="categorical_crossentropy")
    trainer, _ = build(backend, spec)
    out = trainer.predict(batch()[0])
    assert out.shape == (6, 3)
    assert (out > 0).all()
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-12)


def test_fused_sigmoid_predict_gives_probabilities(backend):
    spec = make_spec([{"units": 1, "activation": "sigmoid"}], loss="binary_crossentropy")
    trainer, params = build(backend, spec)
    x, _ = batch()
    z = x @ params["dense_0/kernel"] + params["dense_0/bias"]
    np.testing.assert_allclose(trainer.predict(x), 1.0 / (1.0 + np.exp(-z)), rtol=1e-12)


def test_time_steps_returns_one_positive_time_per_step(backend):
    trainer, _ = build(backend, make_spec(MLP))
    times = trainer.time_steps([batch(seed=1), batch(seed=2)], 5)
    assert len(times) == 5
    assert all(isinstance(t, float) and t > 0 for t in times)


def test_cuda_is_declared_only_when_available(backend):
    import tensorflow as tf

    answer = backend.supports("device:cuda")
    if tf.config.list_physical_devices("GPU"):
        assert answer is True
    else:
        assert isinstance(answer, str) and answer
    assert backend.supports("device:cpu") is True
    assert backend.versions() == {"keras": keras().__version__, "tensorflow": tf.__version__}



def test_cuda_matches_cpu_in_float64(backend):
    if backend.supports("device:cuda") is not True:
        pytest.skip("TensorFlow sees no GPU")
    spec = make_spec(MLP)
    params = initial_params(spec)
    x, y = batch()
    cpu = backend.build(spec, params, "float64", "cpu").loss_and_grads(x, y)
    gpu = backend.build(spec, params, "float64", "cuda").loss_and_grads(x, y)
    assert gpu[0] == pytest.approx(cpu[0], rel=1e-12)
    for name in params:
        np.testing.assert_allclose(gpu[1][name], cpu[1][name], rtol=1e-10, atol=1e-14)
