"""The hand-written NumPy reference: the published formulas, backpropagation by hand.

Modules: :mod:`activations` and :mod:`losses` (registries of small pure functions),
:mod:`layers` (one module per layer kind: forward caches, backward returns the delta for
the layer below), :mod:`model` (a Sequential of those), :mod:`optimizers` (a registry of
update rules: small whole formulas chosen by convention, on the flat-array and BLAS
machinery of :mod:`optimizer_base`) and :mod:`backend` (the plug-in, ``NumpyBackend``).

It is also fast, with the same numbers: layers write into arrays they own and reuse
(``out=``, in-place activations), parameters and gradients are views into one flat array
(:mod:`flat`) that an optimizer updates in cache-sized blocks, softmax cross-entropy
shares its softmax between value and gradient, and a large plain SGD update runs on the
BLAS's threads (:mod:`blas`). Each fast form is tested equal to its formula.

Where a framework's native formula differs from the published one, the reference can
reproduce it as a named *convention* (the ledger in ``suite.ledger`` says which
framework uses which), so that the suite can tell a known difference from a failure.
Worker side: standard library and NumPy only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: convention key -> its values, the default (the published formula) first
CONVENTIONS: dict[str, tuple[str, ...]] = {
    # Keras: p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps) ("epsilon hat")
    "adam_epsilon": ("paper", "keras"),
    # Keras: denominator sqrt(v + eps); with momentum m = mom*m + lr*g/denom, p -= m
    "rmsprop_epsilon": ("outside_sqrt", "inside_sqrt"),
    # Keras: p -= lr * g / sqrt(acc + eps)
    "adagrad_epsilon": ("outside_sqrt", "inside_sqrt"),
    # torch Softplus(beta=1, threshold=20): z itself (gradient 1) where z > 20
    "softplus": ("exact", "torch_threshold"),
    # optax: the AMSGrad maximum is taken of the bias-corrected v_hat, not of v
    "amsgrad_max": ("raw", "bias_corrected"),
    # Keras: v = mu*v - lr*g; p += v (nesterov: p += mu*v - lr*g)
    "sgd_momentum": ("torch", "keras"),
    # TensorFlow rounds some Python-float constants to float32 even in a float64 run:
    # tf.cast(0.9, tf.float64) converts 0.9 to a float32 tensor first, and float op
    # attributes (leaky_relu's alpha) are 32-bit. See float32_constant(). One key per
    # group, so that a ledger entry names only what it rounds:
    # Keras's optimizers on TF: SGD momentum, Adam's betas in the bias corrections,
    # AdamW's weight decay, Adagrad's initial accumulator
    "float32_optimizer_constants": ("none", "tensorflow"),
    # Keras's L2 regularizer on TF: the factor
    "float32_l2": ("none", "tensorflow"),
    # tf.nn's activations (Keras on TF and raw TF): leaky_relu's slope, gelu's 1/sqrt(2)
    # and gelu_tanh's 0.044715
    "float32_activation_constants": ("none", "tensorflow"),
    # MXNet 1.9's operators hold their attributes as C++ float even in a float64 run: the
    # optimizer operators' lr, momentum, beta1/beta2, gamma1/gamma2 and epsilon (Adam's
    # step size lr * sqrt(1 - b2^t) / (1 - b1^t) is computed in Python and rounded as a
    # whole), LeakyReLU's slope and ELU's alpha. AdaGrad's update runs in Python: exact.
    "mxnet_float32_attributes": ("none", "mxnet"),
}


def float32_constant(value: float, conventions: Mapping[str, str], key: str) -> float:
    """``value`` as the framework's formula holds it (a Python float either way).

    Where the convention ``key`` (one of the ``float32_*`` keys, or
    ``mxnet_float32_attributes``) is set to a framework ("tensorflow", "mxnet"), that is
    the float32 nearest to ``value``, widened back exactly, as TensorFlow's tf.cast of a
    Python float or a 32-bit operator attribute holds it; for "none", ``value`` itself.
    ``conventions`` must be resolved (see :func:`resolve_conventions`).
    """
    if conventions[key] != "none":
        return float(np.float32(value))
    return float(value)


def resolve_conventions(given: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every convention key with its value: the given ones, the defaults for the rest.

    Raises
    ------
    ValueError
        For an unknown key or value.
    """
    given = dict(given or {})
    for key, value in given.items():
        if key not in CONVENTIONS:
            raise ValueError(f"unknown reference convention {key!r}; expected one of: "
                             f"{', '.join(CONVENTIONS)}")
        if value not in CONVENTIONS[key]:
            raise ValueError(f"unknown value for convention {key!r}; expected one of: "
                             f"{', '.join(CONVENTIONS[key])}. Received: {value!r}")
    return {key: given.get(key, values[0]) for key, values in CONVENTIONS.items()}
