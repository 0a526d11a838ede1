"""The backend contract (backends/base.py), in-process, for every built-in backend.

Each check runs against hand-written NumPy formulas, float64 unless named. Where a
framework knowingly departs from a published formula, the check is an expected failure
here and its own test module pins the departure.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

# keras-torch and keras-jax are absent: Keras picks its backend once per process, and this
# process runs Keras on TensorFlow. The conformance kit (tests/test_kit.py) runs them in
# workers of their own.
BACKENDS = ["numpy", "torch", "keras", "tensorflow", "jax", "pytensor"]

# backend -> the modules whose versions versions() reports
VERSIONED = {
    "numpy": {"numpy"},
    "torch": {"torch"},
    "keras": {"keras", "tensorflow"},
    "tensorflow": {"tensorflow"},
    "jax": {"jax", "jaxlib", "optax"},
    "pytensor": {"pytensor"},
}

# backend -> whether its framework sees a CUDA device here
CUDA_VISIBLE = {
    "numpy": lambda: False,
    "torch": lambda: importlib.import_module("torch").cuda.is_available(),
    "keras": lambda: bool(
        importlib.import_module("tensorflow").config.list_physical_devices("GPU")),
    "tensorflow": lambda: bool(
        importlib.import_module("tensorflow").config.list_physical_devices("GPU")),
    "jax": lambda: any(d.platform == "gpu" for d in importlib.import_module("jax").devices()),
    "pytensor": lambda: False,  # declared CPU only
}

# (backend, feature) -> why its result is not the published formula's in float64
DEPARTURES = {
    ("keras", f"activation:{name}"): "float32 constant in float64 (test_keras_backend.py)"
    for name in ("leaky_relu", "gelu", "gelu_tanh")
} | {("keras", "regularizer:l2"): "float32 l2 factor in float64 (test_keras_backend.py)"} | {
    ("tensorflow", f"activation:{name}"): "tf.nn float32 constant in float64 "
    "(test_tensorflow_backend.py)" for name in ("leaky_relu", "gelu", "gelu_tanh")
}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request, load_backend):
    return load_backend(request.param)


def expect_departure(request, backend, feature: str) -> None:
    """Mark the running test a strict expected failure where ``backend`` departs."""
    reason = DEPARTURES.get((backend.name, feature))
    if reason:
        request.applymarker(pytest.mark.xfail(raises=AssertionError, strict=True,
                                              reason=reason))


def logits(x, params, layer=0):
    """z = x W + b of one Dense layer, shape (batch, units)."""
    return x @ params[f"dense_{layer}/kernel"] + params[f"dense_{layer}/bias"]


def test_get_params_returns_the_given_params(build):
    """Canonical names, shapes (fan_in, fan_out) and values survive the backend's layout."""
    trainer, params = build()
    got = trainer.get_params()
    assert sorted(got) == sorted(params)
    for name, value in params.items():
        assert got[name].shape == value.shape
        np.testing.assert_array_equal(got[name], value)


def test_loss_and_grads_does_not_update(build, batch):
    """loss_and_grads leaves the parameters as they were."""
    trainer, params = build()
    trainer.loss_and_grads(*batch())
    for name, value in trainer.get_params().items():
        np.testing.assert_array_equal(value, params[name])


def test_train_step_returns_the_loss_before_its_update(build, batch):
    """train_step returns the batch's loss at the parameters it then moves."""
    trainer, params = build()
    x, y = batch()
    probe, _ = trainer.loss_and_grads(x, y)
    assert trainer.train_step(x, y) == pytest.approx(probe, rel=1e-12)
    moved = trainer.get_params()
    assert any(not np.array_equal(moved[k], params[k]) for k in params)


def test_second_train_step_returns_its_own_batch_loss(build, batch):
    """Not a running mean over the two steps."""
    trainer, _ = build()
    xa, ya = batch(seed=1)
    xb, yb = batch(seed=2)
    yb = yb * 10.0  # a loss far from the first batch's
    first = trainer.train_step(xa, ya)
    probe, _ = trainer.loss_and_grads(xb, yb)
    second = trainer.train_step(xb, yb)
    assert second == pytest.approx(probe, rel=1e-12)
    assert abs(second - (first + probe) / 2) > 1e-3


def test_mse_gradients_of_one_dense_layer_match_numpy(build, batch):
    """loss = mean(r**2) over all n*m elements, r = xW + b - y: dW = 2/(nm) x.T r."""
    trainer, params = build([{"units": 2}])
    x, y = batch()
    residual = logits(x, params) - y
    loss, grads = trainer.loss_and_grads(x, y)
    scale = 2.0 / residual.size
    assert loss == pytest.approx(np.mean(residual ** 2), rel=1e-12)
    np.testing.assert_allclose(grads["dense_0/kernel"], scale * x.T @ residual, rtol=1e-12)
    np.testing.assert_allclose(grads["dense_0/bias"], scale * residual.sum(0), rtol=1e-12)


def test_sparse_crossentropy_gradients_are_from_logits(build, batch):
    """Fused softmax: dZ = (softmax(z) - onehot) / n."""
    trainer, params = build([{"units": 3, "activation": "softmax"}],
                            loss="sparse_categorical_crossentropy")
    x, _ = batch()
    labels = np.array([0, 2, 1, 1, 0, 2], dtype=np.int64)
    z = logits(x, params)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss, grads = trainer.loss_and_grads(x, labels)
    dz = (p - np.eye(3)[labels]) / len(x)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(6), labels])), rel=1e-12)
    np.testing.assert_allclose(grads["dense_0/kernel"], x.T @ dz, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads["dense_0/bias"], dz.sum(0), rtol=1e-12, atol=1e-15)


def test_l2_penalty_is_in_the_loss_and_gradients(request, backend, build, batch):
    """loss += l2 * sum(W**2) (no factor 1/2); dW += 2 l2 W."""
    expect_departure(request, backend, "regularizer:l2")
    trainer, params = build([{"units": 2, "kernel_regularizer": {"l2": 0.01}}])
    x, y = batch()
    kernel = params["dense_0/kernel"]
    residual = logits(x, params) - y
    loss, grads = trainer.loss_and_grads(x, y)
    assert loss == pytest.approx(np.mean(residual ** 2) + 0.01 * np.sum(kernel ** 2), rel=1e-12)
    expected = 2.0 / residual.size * x.T @ residual + 2 * 0.01 * kernel
    np.testing.assert_allclose(grads["dense_0/kernel"], expected, rtol=1e-12)


def test_one_sgd_step_is_p_minus_lr_g(build, batch):
    """Plain SGD moves every parameter by -lr times its gradient."""
    trainer, params = build()
    x, y = batch()
    _, grads = trainer.loss_and_grads(x, y)
    trainer.train_step(x, y)
    for name, value in trainer.get_params().items():
        np.testing.assert_allclose(value, params[name] - 0.1 * grads[name], rtol=1e-12,
                                   atol=1e-15)


def test_nesterov_without_momentum_is_plain_sgd(build, batch):
    """nesterov=True with momentum 0 is one plain SGD step (Keras semantics)."""
    trainer, params = build(optimizer={"name": "sgd", "learning_rate": 0.1, "nesterov": True})
    x, y = batch()
    _, grads = trainer.loss_and_grads(x, y)
    trainer.train_step(x, y)
    got = trainer.get_params()
    np.testing.assert_allclose(got["dense_0/kernel"],
                               params["dense_0/kernel"] - 0.1 * grads["dense_0/kernel"],
                               rtol=1e-12)


def _gelu(z):
    return 0.5 * z * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


ACTIVATION_FORMULAS = {
    "linear": ({}, lambda z: z),
    "relu": ({}, lambda z: np.maximum(z, 0.0)),
    "leaky_relu": ({"negative_slope": 0.3}, lambda z: np.where(z > 0, z, 0.3 * z)),
    "elu": ({"alpha": 0.7}, lambda z: np.where(z > 0, z, 0.7 * np.expm1(z))),
    "sigmoid": ({}, lambda z: 1.0 / (1.0 + np.exp(-z))),
    "tanh": ({}, np.tanh),
    "softplus": ({}, lambda z: np.log1p(np.exp(z))),
    "gelu": ({}, _gelu),
    "gelu_tanh": ({}, lambda z: 0.5 * z * (1.0 + np.tanh(
        math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3)))),
}


@pytest.mark.parametrize("name", sorted(ACTIVATION_FORMULAS))
def test_activation_matches_its_formula(request, backend, build, batch, name):
    """predict() of one Dense layer is the activation's published formula of xW + b."""
    expect_departure(request, backend, f"activation:{name}")
    extra, formula = ACTIVATION_FORMULAS[name]
    trainer, params = build([{"units": 4, "activation": {"name": name, **extra}}])
    x, _ = batch()
    np.testing.assert_allclose(trainer.predict(x), formula(logits(x, params)), rtol=1e-12,
                               atol=1e-15)


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
def test_loss_matches_its_formula(build, batch, name):
    """The batch's loss is the published formula, cross-entropies from logits."""
    activation, formula = LOSS_FORMULAS[name]
    loss = {"name": name, "delta": 0.5} if name == "huber" else name
    trainer, params = build([{"units": 3, "activation": activation}], loss=loss)
    x, y = batch(m=3)
    if name == "binary_crossentropy":
        y = (y > 0).astype(np.float64)
    if name == "categorical_crossentropy":
        y = np.abs(y) / np.abs(y).sum(1, keepdims=True)  # probability targets
    value, _ = trainer.loss_and_grads(x, y)
    assert value == pytest.approx(formula(logits(x, params), y), rel=1e-12)


def test_set_params_replaces_the_parameters(build, batch):
    """Attribution (a): after set_params, the parameters and the loss and gradients at them
    are a fresh build's at those parameters."""
    trainer, params = build(optimizer={"name": "adam", "learning_rate": 0.01})
    x, y = batch()
    trainer.train_step(x, y)  # some optimizer state, which set_params leaves alone
    moved = {name: value * 1.5 + 0.25 for name, value in params.items()}
    trainer.set_params(moved)
    for name, value in trainer.get_params().items():
        np.testing.assert_array_equal(value, moved[name])
    fresh, _ = build(optimizer={"name": "adam", "learning_rate": 0.01})
    fresh.set_params(moved)
    loss, grads = trainer.loss_and_grads(x, y)
    fresh_loss, fresh_grads = fresh.loss_and_grads(x, y)
    assert loss == pytest.approx(fresh_loss, rel=1e-14)
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, fresh_grads[name], rtol=1e-14, atol=1e-300)


def test_apply_grads_of_its_own_gradients_is_train_step(build, batch, optimizer_case):
    """Attribution (b): fed the gradients loss_and_grads gives, apply_grads makes
    train_step's update, step after step (the optimizer's state advancing alike)."""
    name, hyper = optimizer_case
    stepped, _ = build(optimizer={"name": name, **hyper})
    applied, _ = build(optimizer={"name": name, **hyper})
    for seed in (1, 2, 3):
        x, y = batch(seed=seed)
        stepped.train_step(x, y)
        applied.apply_grads(applied.loss_and_grads(x, y)[1])
    want = stepped.get_params()
    for key, value in applied.get_params().items():
        np.testing.assert_allclose(value, want[key], rtol=1e-13, atol=1e-15, err_msg=key)


def test_apply_grads_uses_the_given_gradients(build, batch):
    """Not its own: a plain SGD step with zero gradients moves nothing, and with given
    ones moves by -lr g."""
    trainer, params = build()
    zeros = {key: np.zeros_like(value) for key, value in params.items()}
    trainer.apply_grads(zeros)
    for key, value in trainer.get_params().items():
        np.testing.assert_array_equal(value, params[key])
    given = {key: np.full_like(value, 0.5) for key, value in params.items()}
    trainer.apply_grads(given)
    for key, value in trainer.get_params().items():
        np.testing.assert_allclose(value, params[key] - 0.1 * 0.5, rtol=1e-14)


def test_float32_run_stays_float32(build, batch):
    """Gradients, parameters and outputs of a float32 run are float32."""
    trainer, _ = build(dtype="float32")
    x, y = (a.astype(np.float32) for a in batch())
    _, grads = trainer.loss_and_grads(x, y)
    trainer.train_step(x, y)
    trainer.set_params({key: value.astype(np.float64) for key, value in grads.items()})
    trainer.apply_grads(grads)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
    assert {p.dtype for p in trainer.get_params().values()} == {np.dtype(np.float32)}
    assert trainer.predict(x).dtype == np.float32


def test_fused_softmax_predict_gives_probabilities(build, batch):
    """With a from-logits cross-entropy, predict() still applies the softmax."""
    trainer, _ = build([{"units": 4, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
                       loss="categorical_crossentropy")
    out = trainer.predict(batch()[0])
    assert out.shape == (6, 3)
    assert (out > 0).all()
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-12)


def test_fused_sigmoid_predict_gives_probabilities(build, batch):
    """With a from-logits binary cross-entropy, predict() still applies the sigmoid."""
    trainer, params = build([{"units": 1, "activation": "sigmoid"}], loss="binary_crossentropy")
    x, _ = batch()
    np.testing.assert_allclose(trainer.predict(x), 1.0 / (1.0 + np.exp(-logits(x, params))),
                               rtol=1e-12)


def test_time_steps_returns_one_positive_time_per_step(build, batch):
    """time_steps(batches, n) cycles through the batches: n wall times in seconds."""
    trainer, _ = build()
    times = trainer.time_steps([batch(seed=1), batch(seed=2)], 5)
    assert len(times) == 5
    assert all(isinstance(t, float) and t > 0 for t in times)


def test_cuda_is_declared_only_when_available(backend):
    """supports("device:cuda") is True with a visible GPU, else a reason; the CPU always."""
    answer = backend.supports("device:cuda")
    if CUDA_VISIBLE[backend.name]():
        assert answer is True
    else:
        assert isinstance(answer, str) and answer
    assert backend.supports("device:cpu") is True


def test_versions_are_the_imported_frameworks(backend):
    """versions() names each framework module it runs on, with that module's version."""
    versions = backend.versions()
    assert set(versions) == VERSIONED[backend.name]
    for module, version in versions.items():
        assert version == importlib.import_module(module).__version__


def test_cuda_matches_cpu_in_float64(backend, build, batch):
    """The same float64 loss and gradients on the GPU as on the CPU."""
    if backend.supports("device:cuda") is not True:
        pytest.skip(f"{backend.name} has no CUDA device here")
    cpu, params = build(device="cpu")
    gpu, _ = build(device="cuda")
    x, y = batch()
    cpu_loss, cpu_grads = cpu.loss_and_grads(x, y)
    gpu_loss, gpu_grads = gpu.loss_and_grads(x, y)
    assert gpu_loss == pytest.approx(cpu_loss, rel=1e-12)
    for name in params:
        np.testing.assert_allclose(gpu_grads[name], cpu_grads[name], rtol=1e-10, atol=1e-14)
