"""The reference optimizers against their formulas written out with scalar math.

Each case runs a few steps on small arrays and compares every step with an elementwise
scalar loop (plain Python floats, its own state) to 1e-12 in float64. Every variant
(momentum, nesterov, amsgrad, centered, and each convention) must differ from its
default, so a variant that silently falls back to the default formula fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backends.reference import CONVENTIONS, optimizers
from backends.reference.flat import layout_of
from backends.reference.flat import views as views_of
from suite import catalogue

# ---------------------------------------------------------------------------- scalar rules
# Each rule takes one element's p and g, that element's own state dict s (keys named as
# the optimizer's state slots) and the step count t (from 1), and returns the new p.
# ``c32`` gives a constant as the framework's formula holds it (float32_optimizer_constants),
# ``m32`` an MXNet operator attribute (mxnet_float32_attributes).


def same(value):
    return value


def float32(value):
    return float(np.float32(value))


def sgd_rule(p, g, s, t, learning_rate, momentum, nesterov, convention="torch", c32=same,
             m32=same):
    lr, mu = m32(learning_rate), m32(c32(momentum))
    if mu == 0.0:
        return p - lr * g
    if convention == "keras":
        v = mu * s.get("velocity", 0.0) - lr * g
        s["velocity"] = v
        return p + mu * v - lr * g if nesterov else p + v
    buf = mu * s.get("momentum_buffer", 0.0) + g
    s["momentum_buffer"] = buf
    return p - lr * (g + mu * buf) if nesterov else p - lr * buf


def adam_rule(p, g, s, t, learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=0.0,
              convention="paper", c32=same, amsgrad_max="raw", m32=same):
    p = p - learning_rate * c32(weight_decay) * p
    b1_op, b2_op, epsilon = m32(beta_1), m32(beta_2), m32(epsilon)  # MXNet's adam_update
    m = b1_op * s.get("m", 0.0) + (1.0 - b1_op) * g
    v = b2_op * s.get("v", 0.0) + (1.0 - b2_op) * g * g
    s["m"], s["v"] = m, v
    beta_1, beta_2 = c32(beta_1), c32(beta_2)  # in the bias corrections only
    if amsgrad and amsgrad_max == "bias_corrected":  # optax: max of v_hat, not of v
        v_hat = s["v_hat_max"] = max(s.get("v_hat_max", 0.0), v / (1.0 - beta_2 ** t))
        return p - learning_rate * (m / (1.0 - beta_1 ** t)) / (math.sqrt(v_hat) + epsilon)
    if amsgrad:
        v = s["v_max"] = max(s.get("v_max", 0.0), v)
    if convention == "keras":
        # MXNet rounds this step size (computed in double) to float32 as a whole
        step = m32(learning_rate * math.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t))
        return p - step * m / (math.sqrt(v) + epsilon)
    learning_rate = m32(learning_rate)
    m_hat = m / (1.0 - beta_1 ** t)
    v_hat = v / (1.0 - beta_2 ** t)
    return p - learning_rate * m_hat / (math.sqrt(v_hat) + epsilon)


def rmsprop_rule(p, g, s, t, learning_rate, rho, momentum, epsilon, centered,
                 convention="outside_sqrt", c32=same, m32=same):  # Keras casts none
    learning_rate, rho, momentum, epsilon = (m32(x) for x in (learning_rate, rho, momentum,
                                                              epsilon))
    v = rho * s.get("square_avg", 0.0) + (1.0 - rho) * g * g
    s["square_avg"] = v
    if centered:
        a = rho * s.get("grad_avg", 0.0) + (1.0 - rho) * g
        s["grad_avg"] = a
        v = v - a * a
    inside = convention == "inside_sqrt"
    denom = math.sqrt(v + epsilon) if inside else math.sqrt(v) + epsilon
    if momentum == 0.0:
        return p - learning_rate * g / denom
    key = "momentum_buffer"
    if inside:
        s[key] = momentum * s.get(key, 0.0) + learning_rate * g / denom
        return p - s[key]
    s[key] = momentum * s.get(key, 0.0) + g / denom
    return p - learning_rate * s[key]


def adagrad_rule(p, g, s, t, learning_rate, initial_accumulator_value, epsilon,
                 convention="outside_sqrt", c32=same, m32=same):  # MXNet: all in Python
    acc = s.get("sum", c32(initial_accumulator_value)) + g * g
    s["sum"] = acc
    if convention == "inside_sqrt":
        return p - learning_rate * g / math.sqrt(acc + epsilon)
    return p - learning_rate * g / (math.sqrt(acc) + epsilon)


RULES = {"sgd": sgd_rule, "adam": adam_rule, "adamw": adam_rule, "rmsprop": rmsprop_rule,
         "adagrad": adagrad_rule}
CONVENTION_OF = {"sgd": "sgd_momentum", "adam": "adam_epsilon", "adamw": "adam_epsilon",
                 "rmsprop": "rmsprop_epsilon", "adagrad": "adagrad_epsilon"}

# ---------------------------------------------------------------------------- cases

# A large epsilon makes its placement visible far above the 1e-12 tolerance.
HYPER = {
    "sgd": {"learning_rate": 0.1, "momentum": 0.0, "nesterov": False},
    "adam": {"learning_rate": 0.1, "beta_1": 0.9, "beta_2": 0.99, "epsilon": 1e-2,
             "amsgrad": False},
    "adamw": {"learning_rate": 0.1, "weight_decay": 0.3, "beta_1": 0.9, "beta_2": 0.99,
              "epsilon": 1e-2, "amsgrad": False},
    "rmsprop": {"learning_rate": 0.05, "rho": 0.8, "momentum": 0.0, "epsilon": 1e-2,
                "centered": False},
    "adagrad": {"learning_rate": 0.1, "initial_accumulator_value": 0.1, "epsilon": 1e-2},
}

F32 = {"float32_optimizer_constants": "tensorflow"}
MX32 = {"mxnet_float32_attributes": "mxnet"}

# id -> (optimizer, changed hyperparameters, conventions, the id of its default or None)
CASES = {
    "sgd": ("sgd", {}, {}, None),
    "sgd-momentum": ("sgd", {"momentum": 0.9}, {}, "sgd"),
    "sgd-nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}, {}, "sgd-momentum"),
    "sgd-momentum-keras": ("sgd", {"momentum": 0.9}, {"sgd_momentum": "keras"}, "sgd-momentum"),
    "sgd-nesterov-keras": ("sgd", {"momentum": 0.9, "nesterov": True},
                           {"sgd_momentum": "keras"}, "sgd-nesterov"),
    "adam": ("adam", {}, {}, None),
    "adam-amsgrad": ("adam", {"amsgrad": True}, {}, "adam"),
    "adam-keras": ("adam", {}, {"adam_epsilon": "keras"}, "adam"),
    "adam-amsgrad-keras": ("adam", {"amsgrad": True}, {"adam_epsilon": "keras"},
                           "adam-amsgrad"),
    "adamw": ("adamw", {}, {}, "adam"),
    "adamw-amsgrad": ("adamw", {"amsgrad": True}, {}, "adamw"),
    # optax: the maximum of the bias-corrected second moment
    "adam-amsgrad-optax": ("adam", {"amsgrad": True}, {"amsgrad_max": "bias_corrected"},
                           "adam-amsgrad"),
    "adamw-amsgrad-optax": ("adamw", {"amsgrad": True}, {"amsgrad_max": "bias_corrected"},
                            "adamw-amsgrad"),
    "adamw-keras": ("adamw", {}, {"adam_epsilon": "keras"}, "adamw"),
    "rmsprop": ("rmsprop", {}, {}, None),
    "rmsprop-centered": ("rmsprop", {"centered": True}, {}, "rmsprop"),
    "rmsprop-momentum": ("rmsprop", {"momentum": 0.7}, {}, "rmsprop"),
    "rmsprop-centered-momentum": ("rmsprop", {"centered": True, "momentum": 0.7}, {},
                                  "rmsprop-momentum"),
    "rmsprop-keras": ("rmsprop", {}, {"rmsprop_epsilon": "inside_sqrt"}, "rmsprop"),
    "rmsprop-centered-keras": ("rmsprop", {"centered": True},
                               {"rmsprop_epsilon": "inside_sqrt"}, "rmsprop-centered"),
    "rmsprop-momentum-keras": ("rmsprop", {"momentum": 0.7},
                               {"rmsprop_epsilon": "inside_sqrt"}, "rmsprop-momentum"),
    "rmsprop-centered-momentum-keras": ("rmsprop", {"centered": True, "momentum": 0.7},
                                        {"rmsprop_epsilon": "inside_sqrt"},
                                        "rmsprop-centered-momentum"),
    "adagrad": ("adagrad", {}, {}, None),
    "adagrad-keras": ("adagrad", {}, {"adagrad_epsilon": "inside_sqrt"}, "adagrad"),
    # TensorFlow's float32-rounded constants, alone and with each Keras formula
    "sgd-momentum-f32": ("sgd", {"momentum": 0.9}, F32, "sgd-momentum"),
    "sgd-nesterov-keras-f32": ("sgd", {"momentum": 0.9, "nesterov": True},
                               {"sgd_momentum": "keras", **F32}, "sgd-nesterov-keras"),
    "adam-f32": ("adam", {}, F32, "adam"),
    "adam-keras-f32": ("adam", {}, {"adam_epsilon": "keras", **F32}, "adam-keras"),
    "adamw-keras-f32": ("adamw", {}, {"adam_epsilon": "keras", **F32}, "adamw-keras"),
    "rmsprop-centered-momentum-keras-f32": ("rmsprop", {"centered": True, "momentum": 0.7},
                                            {"rmsprop_epsilon": "inside_sqrt", **F32},
                                            "rmsprop-centered-momentum-keras"),
    "adagrad-keras-f32": ("adagrad", {}, {"adagrad_epsilon": "inside_sqrt", **F32},
                          "adagrad-keras"),
    # the activation and L2 groups of float32 constants leave every optimizer unchanged
    "sgd-nesterov-f32-activation": ("sgd", {"momentum": 0.9, "nesterov": True},
                                    {"float32_activation_constants": "tensorflow"},
                                    "sgd-nesterov"),
    "adamw-keras-f32-activation": ("adamw", {}, {"adam_epsilon": "keras",
                                                 "float32_activation_constants": "tensorflow"},
                                   "adamw-keras"),
    "adagrad-f32-l2": ("adagrad", {}, {"float32_l2": "tensorflow"}, "adagrad"),
    # MXNet's float32 operator attributes, with MXNet's own formulas
    "sgd-mxnet": ("sgd", {}, MX32, "sgd"),
    "sgd-momentum-keras-mxnet": ("sgd", {"momentum": 0.9}, {"sgd_momentum": "keras", **MX32},
                                 "sgd-momentum-keras"),
    "sgd-nesterov-mxnet": ("sgd", {"momentum": 0.9, "nesterov": True}, MX32, "sgd-nesterov"),
    "adam-keras-mxnet": ("adam", {}, {"adam_epsilon": "keras", **MX32}, "adam-keras"),
    "rmsprop-keras-mxnet": ("rmsprop", {}, {"rmsprop_epsilon": "inside_sqrt", **MX32},
                            "rmsprop-keras"),
    "rmsprop-centered-momentum-keras-mxnet": ("rmsprop", {"centered": True, "momentum": 0.7},
                                              {"rmsprop_epsilon": "inside_sqrt", **MX32},
                                              "rmsprop-centered-momentum-keras"),
    # MXNet's AdaGrad update runs in Python with float64 scalars
    "adagrad-keras-mxnet": ("adagrad", {}, {"adagrad_epsilon": "inside_sqrt", **MX32},
                            "adagrad-keras"),
}
# variants that must equal their default exactly: Keras's RMSprop casts no constant, and
# the activation and L2 groups concern no optimizer; MXNet's AdaGrad rounds nothing
UNCHANGED = {"rmsprop-centered-momentum-keras-f32", "sgd-nesterov-f32-activation",
             "adamw-keras-f32-activation", "adagrad-f32-l2", "adagrad-keras-mxnet"}
STEPS = 4


def start(dtype=np.float64):
    rng = np.random.default_rng(0)
    return {"w": rng.standard_normal((3, 2)).astype(dtype),
            "b": rng.standard_normal(2).astype(dtype)}


def gradient_sequence(dtype=np.float64):
    """Large gradients first, then small ones, so that amsgrad's running max matters."""
    rng = np.random.default_rng(1)
    return [{"w": (rng.standard_normal((3, 2)) * scale).astype(dtype),
             "b": (rng.standard_normal(2) * scale).astype(dtype)}
            for scale in (3.0, 0.1, 1.0, 0.05)[:STEPS]]


def hyper_of(case):
    name, changed, _, _ = CASES[case]
    return {**HYPER[name], **changed}


def run_reference(case, dtype=np.float64):
    """Every step's parameters from the optimizer under test (and the optimizer)."""
    name, _, conventions, _ = CASES[case]
    opt = optimizers.get(name, hyper_of(case), conventions)
    params = start(dtype)
    arrays = {key: value for key, value in params.items()}
    history = []
    for grads in gradient_sequence(dtype):
        opt.update(params, grads)
        assert all(params[key] is arrays[key] for key in params)  # updated in place
        history.append({key: value.copy() for key, value in params.items()})
    return history, opt


def run_scalar(case):
    """Every step's parameters from the scalar rule, element by element, and the state."""
    name, _, conventions, _ = CASES[case]
    extra = {"convention": conventions[CONVENTION_OF[name]]} if (
        CONVENTION_OF[name] in conventions) else {}
    if conventions.get("float32_optimizer_constants") == "tensorflow":
        extra["c32"] = float32
    if conventions.get("mxnet_float32_attributes") == "mxnet":
        extra["m32"] = float32
    if "amsgrad_max" in conventions:
        extra["amsgrad_max"] = conventions["amsgrad_max"]
    rule = RULES[name]
    params = {key: value.ravel().tolist() for key, value in start().items()}
    states = {key: [{} for _ in values] for key, values in params.items()}
    history = []
    for t, grads in enumerate(gradient_sequence(), start=1):
        for key in params:
            params[key] = [rule(p, g, s, t, **hyper_of(case), **extra) for p, g, s in
                           zip(params[key], grads[key].ravel().tolist(), states[key],
                               strict=True)]
        history.append({key: np.reshape(values, start()[key].shape)
                        for key, values in params.items()})
    final_state = {key: {slot: np.reshape([s[slot] for s in states[key]], start()[key].shape)
                         for slot in states[key][0]} for key in states}
    return history, final_state


# ---------------------------------------------------------------------------- tests


def test_hyperparameter_names_match_the_catalogue():
    assert set(optimizers.OPTIMIZERS) == set(catalogue.OPTIMIZERS)
    for name, cls in optimizers.OPTIMIZERS.items():
        assert set(cls.hyperparameters) == set(catalogue.OPTIMIZERS[name]), name


def test_every_convention_value_is_tested():
    tested = {(key, value) for _, _, conventions, _ in CASES.values()
              for key, value in conventions.items()}
    expected = {(key, value) for key, values in CONVENTIONS.items() for value in values[1:]
                if key != "softplus"}  # softplus: tests/test_reference_gradients.py
    assert tested == expected


@pytest.mark.parametrize("case", list(CASES))
def test_matches_scalar_formula(case):
    got, opt = run_reference(case)
    want, want_state = run_scalar(case)
    for step, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        for key in w:
            np.testing.assert_allclose(g[key], w[key], rtol=1e-12, atol=1e-14,
                                       err_msg=f"{case}: {key} after step {step}")
    # the state too: it tells apart forms that agree for a constant learning rate
    for key, slots in want_state.items():
        assert set(opt.state.get(key, {})) == set(slots), key
        for slot, value in slots.items():
            np.testing.assert_allclose(opt.state[key][slot], value, rtol=1e-12, atol=1e-14,
                                       err_msg=f"{case}: state {slot} of {key}")


VARIANTS = [case for case, spec in CASES.items() if spec[3] is not None]


@pytest.mark.parametrize("case", VARIANTS)
def test_variant_differs_from_its_default(case):
    default = CASES[case][3]
    got, opt = run_reference(case)
    base, base_opt = run_reference(default)
    gap = max(np.max(np.abs(g[key] - b[key])) for g, b in zip(got, base, strict=True)
              for key in g)
    if case.startswith("sgd") and case.endswith("-keras"):
        # Equal to torch's form for a constant learning rate: only rounding may differ,
        # but the state is Keras's velocity v = -lr * buf.
        assert gap < 1e-14
        lr = HYPER["sgd"]["learning_rate"]
        for key in ("w", "b"):
            np.testing.assert_allclose(opt.state[key]["velocity"],
                                       -lr * base_opt.state[key]["momentum_buffer"],
                                       rtol=1e-13)
    elif case in UNCHANGED:
        assert gap == 0.0
    elif case.endswith(("-f32", "-mxnet")):
        # float32 rounding of a constant: far below 1e-6, far above float64 rounding
        assert 1e-12 < gap < 1e-6, f"{case} vs {default}: largest difference {gap:.1e}"
    else:
        assert gap > 1e-6, f"{case} equals {default} (largest difference {gap:.1e})"


@pytest.mark.parametrize("case", list(CASES))
def test_float32_stays_float32(case):
    """Parameters and state stay float32 and follow the float64 run to float32 accuracy."""
    got, opt = run_reference(case, np.float32)
    want, _ = run_reference(case)
    for g, w in zip(got, want, strict=True):
        for key in w:
            assert g[key].dtype == np.float32
            np.testing.assert_allclose(g[key], w[key], rtol=1e-4, atol=1e-5)
    assert {a.dtype for slots in opt.state.values() for a in slots.values()} <= {
        np.dtype(np.float32)}


def test_step_count_and_state_are_per_optimizer():
    """Bias correction uses t from 1; a fresh optimizer starts again at t = 0."""
    history, opt = run_reference("adam")
    assert opt.t == STEPS
    again, _ = run_reference("adam")
    np.testing.assert_array_equal(history[0]["w"], again[0]["w"])


def test_adagrad_accumulator_starts_at_initial_value():
    opt = optimizers.get("adagrad", HYPER["adagrad"])
    params, grads = {"w": np.ones(2)}, {"w": np.array([0.5, -2.0])}
    opt.update(params, grads)
    np.testing.assert_allclose(opt.state["w"]["sum"], 0.1 + grads["w"] ** 2, rtol=1e-15)


def test_rejects_wrong_hyperparameters_and_conventions():
    with pytest.raises(ValueError, match="momentum"):
        optimizers.get("sgd", {"learning_rate": 0.1})
    with pytest.raises(ValueError, match="unknown"):
        optimizers.get("sgd", {**HYPER["sgd"], "decay": 0.1})
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get("lion", {})
    with pytest.raises(ValueError, match="sgd_momentum"):
        optimizers.get("sgd", HYPER["sgd"], {"sgd_momentum": "tf"})
    with pytest.raises(ValueError, match="unknown reference convention"):
        optimizers.get("adam", HYPER["adam"], {"adam_epsilon_hat": "keras"})


# ---------------------------------------------------------------------------- flat updates


def flatten(arrays):
    """One flat array holding ``arrays`` (name -> array), its views and its layout."""
    layout = layout_of({key: value.shape for key, value in arrays.items()})
    whole = np.concatenate([value.ravel() for value in arrays.values()])
    return whole, views_of(whole, layout), layout


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_flat_update_equals_update_bit_for_bit(case, dtype):
    """update_flat on one contiguous array is update on each parameter: the same numbers,
    the gradients untouched, and each parameter's state a view under its own name."""
    name, _, conventions, _ = CASES[case]
    want, want_opt = run_reference(case, dtype)
    opt = optimizers.get(name, hyper_of(case), conventions)
    flat, views, layout = flatten(start(dtype))
    for step, grads in enumerate(gradient_sequence(dtype)):
        flat_grads = flatten(grads)[0]
        kept = flat_grads.copy()
        opt.update_flat(flat, flat_grads, layout)
        np.testing.assert_array_equal(flat_grads, kept)
        for key in views:
            assert views[key].dtype == dtype
            np.testing.assert_array_equal(views[key], want[step][key], err_msg=key)
    assert opt.t == want_opt.t
    for key, slots in want_opt.state.items():
        assert set(opt.state[key]) == set(slots)
        for slot, value in slots.items():
            assert np.shares_memory(opt.state[key][slot], opt._flat_state[slot])
            np.testing.assert_array_equal(opt.state[key][slot], value, err_msg=slot)


@pytest.mark.parametrize("name", ["sgd-momentum", "sgd-nesterov-keras", "adam-amsgrad",
                                  "rmsprop-centered-momentum"])
def test_flat_update_across_blocks(name):
    """A flat array of several blocks (and a partial last one) updates like one array."""
    opt_name, _, conventions, _ = CASES[name]
    rng = np.random.default_rng(7)
    shapes = {"w": (5, optimizers.BLOCK // 2 + 5), "b": (optimizers.BLOCK // 3,)}
    params = {key: rng.standard_normal(shape).astype(np.float32) for key, shape in shapes.items()}
    plain = {key: value.copy() for key, value in params.items()}
    flat, views, layout = flatten(params)
    assert flat.size > 2 * optimizers.BLOCK and flat.size % optimizers.BLOCK
    flat_opt = optimizers.get(opt_name, hyper_of(name), conventions)
    opt = optimizers.get(opt_name, hyper_of(name), conventions)
    for scale in (3.0, 0.1, 1.0):
        grads = {key: (rng.standard_normal(shape) * scale).astype(np.float32)
                 for key, shape in shapes.items()}
        opt.update(plain, grads)
        flat_opt.update_flat(flat, flatten(grads)[0], layout)
    for key in shapes:
        np.testing.assert_array_equal(views[key], plain[key], err_msg=key)
        for slot, value in opt.state[key].items():
            np.testing.assert_array_equal(flat_opt.state[key][slot], value, err_msg=slot)
