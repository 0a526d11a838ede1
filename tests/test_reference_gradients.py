"""The NumPy reference against central finite differences and scalar formulas (float64).

Every activation (in the hidden layers), every loss (with its output activation) and the
L2 penalty: backprop must agree with central differences of the loss to a relative error
||g - g_fd|| / ||g_fd|| below 1e-6. Data are chosen away from kinks, and each test
asserts that premise. The worst figure of each case is printed (pytest -s) and recorded
as the property ``fd_relative_error``.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import specs

from backends.reference import activations, losses
from backends.reference.backend import NumpyBackend
from backends.reference.layers import Activation
from backends.reference.model import Sequential

FD_TOLERANCE = 1e-6
STEP = 1e-5
KINK_MARGIN = 1e-3  # pre-activations / residuals this far from a kink; STEP moves them ~1e-4


# Input 3 -> 4 (hidden, tanh unless told) -> 4 (hidden) -> 2 (``units``, linear unless told);
# mse unless told, float64
make_spec = partial(specs.make_spec, sizes=(3, 4, 4, 2), output="linear", optimizer="sgd",
                    name="fd")


def random_params(spec, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:], strict=True)):
        params[f"dense_{i}/kernel"] = rng.standard_normal((fan_in, fan_out)) * scale
        params[f"dense_{i}/bias"] = rng.standard_normal(fan_out) * 0.5
    return params


def targets(spec, rng, batch):
    units = spec.layers[-1].units
    kind = spec.loss.name
    if kind == "sparse_categorical_crossentropy":
        return rng.integers(0, units, batch).astype(np.int64)
    if kind == "categorical_crossentropy":
        return np.eye(units)[rng.integers(0, units, batch)]
    if kind == "binary_crossentropy":
        return (rng.random((batch, units)) < 0.5).astype(np.float64)
    return rng.standard_normal((batch, units))


def finite_difference(model: Sequential, x, y) -> dict[str, np.ndarray]:
    """Central differences of model.loss, perturbing the model's own arrays in place."""
    grads = {}
    for name, param in model.params.items():
        grad = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            old = param[index]
            param[index] = old + STEP
            up = model.loss(x, y)
            param[index] = old - STEP
            down = model.loss(x, y)
            param[index] = old
            grad[index] = (up - down) / (2 * STEP)
        grads[name] = grad
    return grads


def relative_error(grads, reference) -> float:
    names = sorted(reference)
    got = np.concatenate([grads[n].ravel() for n in names])
    want = np.concatenate([reference[n].ravel() for n in names])
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def check_gradients(spec, record_property, label, seed=0, batch=6):
    rng = np.random.default_rng(seed + 100)
    x = rng.standard_normal((batch, spec.input_dim)) * 1.5
    y = targets(spec, rng, batch)
    model = Sequential(spec, random_params(spec, seed), "float64")
    model.loss(x, y)
    grads = model.backward()
    assert set(grads) == set(model.params)
    for name, grad in grads.items():
        assert grad.shape == model.params[name].shape, name
    error = relative_error(grads, finite_difference(model, x, y))
    record_property("fd_relative_error", error)
    print(f"\nFD {label}: relative error {error:.2e}")
    assert error < FD_TOLERANCE
    return model, x, y


def hidden_preactivations(model: Sequential, x) -> list[np.ndarray]:
    """z of each hidden Dense layer (the inputs of the hidden activations)."""
    found, h = [], x
    for layer in model.layers:
        h = layer.forward(h)
        if layer in model.dense[:-1]:
            found.append(h.copy())  # the layer's workspace: the activation overwrites it
    return found


HIDDEN_CASES = {
    "linear": "linear",
    "relu": "relu",
    "leaky_relu": {"name": "leaky_relu", "negative_slope": 0.3},
    "elu": {"name": "elu", "alpha": 0.7},
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softplus": "softplus",
    "gelu": "gelu",
    "gelu_tanh": "gelu_tanh",
}


def test_every_hidden_activation_is_covered():
    """The FD cases cover every activation of the registry but the output-only softmax."""
    assert set(HIDDEN_CASES) == set(activations.ACTIVATIONS) - {"softmax"}


@pytest.mark.parametrize("hidden", list(HIDDEN_CASES.values()), ids=list(HIDDEN_CASES))
def test_hidden_activation_gradients(hidden, record_property):
    """Backprop through two hidden layers of each activation matches central differences."""
    spec = make_spec(hidden=hidden)
    model, x, y = check_gradients(spec, record_property,
                                  f"activation {spec.layers[0].activation.to_dict()}")
    z = np.concatenate([zi.ravel() for zi in hidden_preactivations(model, x)])
    assert np.abs(z).min() > KINK_MARGIN  # premise: no pre-activation near relu's kink
    assert (z > 1).any() and (z < -1).any()  # premise: both sides of zero are exercised


LOSS_CASES = {
    "mse-linear": ("mse", "linear", 2),
    "mse-sigmoid": ("mse", "sigmoid", 2),
    "mae-linear": ("mae", "linear", 2),
    "mae-tanh": ("mae", "tanh", 2),
    "huber-linear": ({"name": "huber", "delta": 0.5}, "linear", 2),
    "binary_crossentropy-sigmoid": ("binary_crossentropy", "sigmoid", 2),
    "categorical_crossentropy-softmax": ("categorical_crossentropy", "softmax", 3),
    "sparse_categorical_crossentropy-softmax": ("sparse_categorical_crossentropy", "softmax", 3),
}


def test_every_loss_is_covered():
    assert {case[0] if isinstance(case[0], str) else case[0]["name"]
            for case in LOSS_CASES.values()} == set(losses.LOSSES)


@pytest.mark.parametrize("loss, output, units", list(LOSS_CASES.values()), ids=list(LOSS_CASES))
def test_loss_gradients(loss, output, units, record_property):
    """Backprop from each loss, with its output activation, matches central differences."""
    spec = make_spec(output=output, loss=loss, units=units)
    model, x, y = check_gradients(spec, record_property, f"loss {spec.loss.name} ({output})",
                                  batch=8)
    residual = np.abs(model.forward(x) - y) if spec.loss.name in ("mae", "huber") else None
    if spec.loss.name == "mae":
        assert residual.min() > KINK_MARGIN  # premise: away from sign's kink
    if spec.loss.name == "huber":
        delta = spec.loss.params["delta"]
        assert np.abs(residual - delta).min() > KINK_MARGIN  # premise: away from the switch
        assert (residual < delta).any() and (residual > delta).any()  # both branches used


@pytest.mark.parametrize("loss, output, units", [("mse", "tanh", 2),
                                                 ("categorical_crossentropy", "softmax", 3)],
                         ids=["mse", "categorical_crossentropy"])
def test_l2_gradients_and_value(loss, output, units, record_property):
    """L2 penalties enter both the loss (l2 * sum W^2, no 1/2) and its gradient."""
    l2 = (0.01, 0.0, 0.05)
    spec = make_spec(output=output, loss=loss, units=units, l2=l2)
    model, x, y = check_gradients(spec, record_property, f"L2 with {loss}")
    penalty = sum(r * float(np.sum(model.params[f"dense_{i}/kernel"] ** 2))
                  for i, r in enumerate(l2))
    plain = Sequential(make_spec(output=output, loss=loss, units=units), model.params, "float64")
    assert model.loss(x, y) == pytest.approx(plain.loss(x, y) + penalty, rel=1e-13)
    assert penalty > 0.01 * plain.loss(x, y)  # premise: the penalty is not negligible


# ---------------------------------------------------------------------------- scalar formulas


def _scalar_forward(name: str, z: float, **params) -> float:
    """Each activation written out independently with the math module."""
    formulas = {
        "linear": lambda: z,
        "relu": lambda: max(z, 0.0),
        "leaky_relu": lambda: z if z > 0 else params["negative_slope"] * z,
        "elu": lambda: z if z > 0 else params["alpha"] * (math.exp(z) - 1.0),
        "sigmoid": lambda: 1.0 / (1.0 + math.exp(-z)),
        "tanh": lambda: math.tanh(z),
        "softplus": lambda: math.log(1.0 + math.exp(z)),
        "gelu": lambda: 0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0))),
        "gelu_tanh": lambda: 0.5 * z * (1.0 + math.tanh(math.sqrt(2.0 / math.pi)
                                                         * (z + 0.044715 * z ** 3))),
    }
    return formulas[name]()


@pytest.mark.parametrize("name", list(HIDDEN_CASES))
def test_activation_forward_matches_scalar_formula(name):
    z = np.linspace(-6.0, 6.0, 241)
    params = {k: v for k, v in HIDDEN_CASES[name].items() if k != "name"} if isinstance(
        HIDDEN_CASES[name], dict) else {}
    got = activations.get(name).forward(z, **params)
    want = np.array([_scalar_forward(name, v, **params) for v in z])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


TF32 = {"float32_activation_constants": "tensorflow"}
ROUNDED = ("leaky_relu", "gelu", "gelu_tanh")  # the activations TF32 replaces


@pytest.mark.parametrize("name, conventions", [(n, {}) for n in HIDDEN_CASES]
                         + [("softplus", {"softplus": "torch_threshold"})]
                         + [(n, TF32) for n in ROUNDED],
                         ids=[*HIDDEN_CASES, "softplus-torch_threshold",
                              *(f"{n}-float32_constants" for n in ROUNDED)])
def test_activation_derivative_elementwise(name, conventions):
    """backward(z, out, 1) against central differences over a wide range, tails included."""
    z = np.concatenate([np.linspace(-12.0, 12.0, 481), [-30.0, -19.5, 19.5, 25.0, 40.0]])
    z = z[np.abs(z) > KINK_MARGIN]
    params = {k: v for k, v in HIDDEN_CASES[name].items() if k != "name"} if isinstance(
        HIDDEN_CASES[name], dict) else {}
    fn = activations.get(name, conventions)
    derivative = fn.backward(z, fn.forward(z, **params), np.ones_like(z), **params)
    h = 1e-6
    numeric = (fn.forward(z + h, **params) - fn.forward(z - h, **params)) / (2 * h)
    np.testing.assert_allclose(derivative, numeric, rtol=1e-7, atol=1e-8)


def _tf_scalar_forward(name: str, z: float, **params) -> float:
    """TensorFlow's formulas in float64, with its float32-rounded constants (math module)."""
    c32 = float(np.float32(math.sqrt(0.5)))
    k32 = float(np.float32(0.044715))
    formulas = {
        "leaky_relu": lambda: z if z > 0 else float(np.float32(params["negative_slope"])) * z,
        "gelu": lambda: 0.5 * z * math.erfc(-z * c32),
        "gelu_tanh": lambda: 0.5 * z * (1.0 + math.tanh(0.7978845608028654
                                                         * (z + k32 * z ** 3))),
    }
    return formulas[name]()


@pytest.mark.parametrize("name", ROUNDED)
def test_float32_constants_forward_matches_tensorflow_formula(name):
    """Under float32_constants="tensorflow", TF's formula with its float32 constants; the
    exact activation differs from it by more than float64 rounding."""
    z = np.linspace(-9.0, 6.0, 301)
    params = {"negative_slope": 0.3} if name == "leaky_relu" else {}
    got = activations.get(name, TF32).forward(z, **params)
    want = np.array([_tf_scalar_forward(name, v, **params) for v in z])
    # NOTE: 1 + tanh(u) cancels in gelu_tanh's left tail, in TF's formula as in ours.
    np.testing.assert_allclose(got, want, rtol=1e-14,
                               atol=1e-15 if name == "gelu_tanh" else 1e-300)
    exact = activations.get(name).forward(z, **params)
    sizable = np.abs(want) > 1e-3
    assert np.max(np.abs(exact - want)[sizable] / np.abs(want[sizable])) > 1e-10


def test_kink_conventions():
    """relu'(0) = 0, leaky_relu'(0) = slope, and mae's sign(0) = 0."""
    zero = np.zeros(1)
    relu = activations.get("relu")
    assert relu.backward(zero, relu.forward(zero), np.ones(1))[0] == 0.0
    leaky = activations.get("leaky_relu")
    assert leaky.backward(zero, zero, np.ones(1), negative_slope=0.2)[0] == 0.2
    assert losses.get("mae").grad(np.array([[1.0, 2.0]]), np.array([[1.0, 3.0]]))[0, 0] == 0.0


def test_torch_softplus_threshold_differs_only_above_20():
    exact = activations.get("softplus")
    torch_like = activations.get("softplus", {"softplus": "torch_threshold"})
    z = np.array([-5.0, 0.0, 19.9, 20.5, 25.0])
    got, want = torch_like.forward(z), exact.forward(z)
    np.testing.assert_array_equal(got[:3], want[:3])
    assert got[3] == 20.5 and want[3] > 20.5  # exact adds log1p(exp(-20.5)) ~ 1.3e-9
    np.testing.assert_array_equal(torch_like.backward(z, got, np.ones(5))[3:], [1.0, 1.0])
    assert exact.backward(z, want, np.ones(5))[3] < 1.0


def test_erf_and_erfc_match_math_module():
    """The vectorized Cody erf/erfc agree with math.erf/math.erfc to 1e-15 relative."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-27.0, 27.0, 20001), rng.uniform(-6, 6, 20000),
                        rng.standard_normal(5000) * 0.3, 10.0 ** rng.uniform(-300, 1, 2000),
                        [0.0, 0.46875, -0.46875, 4.0, -4.0]])
    want_erf = np.array([math.erf(v) for v in x])
    got_erf = activations.erf(x)
    nonzero = want_erf != 0
    worst_erf = np.max(np.abs(got_erf - want_erf)[nonzero] / np.abs(want_erf[nonzero]))
    assert np.all(got_erf[~nonzero] == 0.0)
    want_erfc = np.array([math.erfc(v) for v in x])
    got_erfc = activations.erfc(x)
    normal = want_erfc > 1e-300  # below that math.erfc returns subnormals
    worst_erfc = np.max(np.abs(got_erfc - want_erfc)[normal] / want_erfc[normal])
    print(f"\nerf: worst relative error {worst_erf:.2e}; erfc: {worst_erfc:.2e}")
    assert worst_erf <= 1e-15 and worst_erfc <= 1e-15
    assert np.isnan(activations.erf(np.array([np.nan]))[0])
    np.testing.assert_array_equal(activations.erf(np.array([np.inf, -np.inf])), [1.0, -1.0])
    np.testing.assert_array_equal(activations.erfc(np.array([np.inf, -np.inf])), [0.0, 2.0])


def _scalar_loss(name: str, z: np.ndarray, y: np.ndarray, delta: float = 1.0) -> float:
    """Each loss written out with loops and the math module (probabilities, not logits)."""
    rows, total = z.shape[0], 0.0
    if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        for i in range(rows):
            norm = sum(math.exp(v) for v in z[i])
            probs = [math.exp(v) / norm for v in z[i]]
            if name == "sparse_categorical_crossentropy":
                total -= math.log(probs[int(y[i])])
            else:
                total -= sum(t * math.log(p) for t, p in zip(y[i], probs, strict=True))
        return total / rows
    for zi, yi in zip(z.ravel(), y.ravel(), strict=True):
        r = zi - yi
        if name == "mse":
            total += r * r
        elif name == "mae":
            total += abs(r)
        elif name == "huber":
            total += 0.5 * r * r if abs(r) <= delta else delta * (abs(r) - 0.5 * delta)
        else:
            p = 1.0 / (1.0 + math.exp(-zi))
            total -= yi * math.log(p) + (1.0 - yi) * math.log(1.0 - p)
    return total / z.size


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_loss_value_matches_scalar_formula(name):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((7, 3)) * 2.0
    if name == "sparse_categorical_crossentropy":
        y = rng.integers(0, 3, 7).astype(np.int64)
    elif name == "categorical_crossentropy":
        y = np.eye(3)[rng.integers(0, 3, 7)]
    elif name == "binary_crossentropy":
        y = (rng.random((7, 3)) < 0.5).astype(np.float64)
    else:
        y = rng.standard_normal((7, 3))
    params = {"delta": 0.8} if name == "huber" else {}
    got = losses.get(name).value(z, y, **params)
    assert isinstance(got, float)
    assert got == pytest.approx(_scalar_loss(name, z, y, **params), rel=1e-13)


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_loss_gradient_in_logits(name):
    """grad(z, y) against central differences in z, soft labels included for the CEs."""
    rng = np.random.default_rng(2)
    z = rng.standard_normal((5, 3)) * 2.0
    y = (rng.integers(0, 3, 5).astype(np.int64) if name.startswith("sparse")
         else rng.random((5, 3)))  # soft, unnormalized targets test the sum_j y_j factor
    params = {"delta": 0.8} if name == "huber" else {}
    if name in ("mae", "huber"):  # premise: residuals away from the kinks (0 and delta)
        assert np.abs(np.abs(z - y) - params.get("delta", 0.0)).min() > KINK_MARGIN
    loss = losses.get(name)
    numeric = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        bump = np.zeros_like(z)
        bump[index] = STEP
        numeric[index] = (loss.value(z + bump, y, **params)
                          - loss.value(z - bump, y, **params)) / (2 * STEP)
    error = relative_error({"z": loss.grad(z, y, **params)}, {"z": numeric})
    print(f"\nFD loss {name} in logits: relative error {error:.2e}")
    assert error < FD_TOLERANCE


def test_fused_forward_is_logits_and_predict_applies_the_output():
    spec = make_spec(output="softmax", loss="categorical_crossentropy", units=3)
    model = Sequential(spec, random_params(spec), "float64")
    x = np.random.default_rng(3).standard_normal((5, 3))
    logits = model.forward(x)
    probs = model.predict(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.log(probs) - np.log(probs)[:, :1], logits - logits[:, :1],
                               rtol=1e-12, atol=1e-12)
    binary = make_spec(output="sigmoid", loss="binary_crossentropy", units=2)
    model = Sequential(binary, random_params(binary), "float64")
    np.testing.assert_allclose(model.predict(x), 1.0 / (1.0 + np.exp(-model.forward(x))),
                               rtol=1e-14)


# ---------------------------------------------------------------------------- float32


@pytest.mark.parametrize("name", list(activations.ACTIVATIONS))
def test_activations_keep_float32(name):
    z = np.linspace(-5, 5, 12, dtype=np.float32).reshape(3, 4)
    fn = activations.get(name)
    params = {"negative_slope": 0.2} if name == "leaky_relu" else (
        {"alpha": 1.0} if name == "elu" else {})
    out = fn.forward(z, **params)
    assert out.dtype == np.float32
    if name != "softmax":
        assert fn.backward(z, out, np.ones_like(z), **params).dtype == np.float32


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_losses_keep_float32(name):
    z = np.linspace(-2, 2, 12, dtype=np.float32).reshape(4, 3)
    y = (np.arange(4, dtype=np.int64) % 3 if name.startswith("sparse")
         else np.eye(3, dtype=np.float32)[[0, 1, 2, 0]])
    params = {"delta": 1.0} if name == "huber" else {}
    assert losses.get(name).grad(z, y, **params).dtype == np.float32


@pytest.mark.parametrize("loss, output, units", list(LOSS_CASES.values()), ids=list(LOSS_CASES))
def test_trainer_keeps_float32(loss, output, units):
    """Gradients, parameters after a step and predictions stay float32 (no silent upcast)."""
    spec = make_spec(hidden="gelu", output=output, loss=loss, units=units, l2=(0.01, 0, 0),
                     optimizer="adam")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3)).astype(np.float32)
    y = targets(spec, rng, 6)
    y = y if y.dtype == np.int64 else y.astype(np.float32)
    trainer = NumpyBackend().build(spec, random_params(spec), "float32", "cpu")
    loss_value, grads = trainer.loss_and_grads(x, y)
    assert isinstance(loss_value, float) and math.isfinite(loss_value)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
    trainer.train_step(x, y)
    assert {p.dtype for p in trainer.get_params().values()} == {np.dtype(np.float32)}
    assert trainer.predict(x).dtype == np.float32


@pytest.mark.parametrize("hidden", list(HIDDEN_CASES.values()), ids=list(HIDDEN_CASES))
def test_hidden_activations_keep_float32_in_the_model(hidden):
    spec = make_spec(hidden=hidden, loss={"name": "huber", "delta": 0.5})
    model = Sequential(spec, random_params(spec), "float32")
    x = np.random.default_rng(6).standard_normal((4, 3)).astype(np.float32)
    model.loss(x, np.zeros((4, 2), dtype=np.float32))
    assert {g.dtype for g in model.backward().values()} == {np.dtype(np.float32)}


def test_numpy_float64_hyperparameters_do_not_upcast():
    """NumPy 2 lets a np.float64 scalar upcast a float32 array; the layer converts them."""
    layer = Activation("leaky_relu", {"negative_slope": np.float64(0.3)})
    z = np.array([[-1.0, 2.0]], dtype=np.float32)
    assert layer.forward(z).dtype == np.float32
    assert layer.backward(np.ones_like(z)).dtype == np.float32


# ---------------------------------------------------------------------------- the trainer


def test_trainer_contract():
    """loss_and_grads does not update; train_step returns the loss before its update;
    get_params returns copies; time_steps gives one timing per step."""
    spec = make_spec(output="softmax", loss="sparse_categorical_crossentropy", units=3)
    params = random_params(spec)
    trainer = NumpyBackend().build(spec, params, "float64", "cpu")
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    first, _ = trainer.loss_and_grads(x, y)
    assert trainer.loss_and_grads(x, y)[0] == first  # no update in between
    before = trainer.get_params()
    for name in params:
        np.testing.assert_array_equal(before[name], params[name])
    before["dense_0/kernel"][:] = 0.0  # a copy: the trainer must not see this
    assert trainer.train_step(x, y) == first
    after = trainer.get_params()
    assert not np.all(after["dense_0/kernel"] == 0.0)
    assert not np.array_equal(after["dense_0/kernel"], params["dense_0/kernel"])
    assert trainer.loss_and_grads(x, y)[0] < first
    params["dense_0/kernel"][:] = 0.0  # the caller's arrays were copied at build time too
    assert trainer.get_params()["dense_0/kernel"].any()
    times = trainer.time_steps([(x, y), (x[:3], y[:3])], 5)
    assert len(times) == 5 and all(t > 0 for t in times)


def test_backend_declares_what_it_supports():
    backend = NumpyBackend()
    assert backend.name == "numpy" and backend.versions() == {"numpy": np.__version__}
    spec = make_spec(output="softmax", loss="categorical_crossentropy", units=3)
    for feature in spec.features() + ["device:cpu", "dtype:float32"]:
        assert backend.supports(feature) is True, feature
    assert isinstance(backend.supports("device:cuda"), str)
    assert isinstance(backend.supports("activation:swish"), str)
    with pytest.raises(ValueError, match="numpy runs on cpu. Received: device .cuda."):
        backend.build(spec, random_params(spec), "float64", "cuda")


def test_unknown_conventions_raise():
    with pytest.raises(ValueError, match="unknown reference convention"):
        NumpyBackend(conventions={"adam_eps": "keras"})
    with pytest.raises(ValueError, match="adam_epsilon"):
        NumpyBackend(conventions={"adam_epsilon": "torch"})
    with pytest.raises(ValueError, match="softplus"):
        activations.get("softplus", {"softplus": "approximate"})
