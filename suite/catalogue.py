"""What a spec may name: activations, losses, optimizers, initializers, dtypes.

Each entry maps a Keras name to its hyperparameters and their Keras defaults. A
normalized spec always carries every hyperparameter explicitly, so no backend's own
default ever matters. Worker side: standard library only.
"""

from __future__ import annotations

ACTIVATIONS: dict[str, dict[str, float]] = {
    "linear": {},
    "relu": {},
    "leaky_relu": {"negative_slope": 0.2},
    "elu": {"alpha": 1.0},
    "sigmoid": {},
    "tanh": {},
    "softplus": {},
    "gelu": {},  # exact: x * Phi(x), with erf
    "gelu_tanh": {},  # the tanh approximation
    "softmax": {},  # output layer only, fused into cross-entropy
}

LOSSES: dict[str, dict[str, float]] = {
    "mse": {},
    "mae": {},
    "huber": {"delta": 1.0},
    "binary_crossentropy": {},
    "categorical_crossentropy": {},
    "sparse_categorical_crossentropy": {},
}

OPTIMIZERS: dict[str, dict[str, float | bool]] = {
    "sgd": {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False},
    "adam": {
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
    },
    "adamw": {
        "learning_rate": 0.001,
        "weight_decay": 0.004,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
        "amsgrad": False,
    },
    "rmsprop": {
        "learning_rate": 0.001,
        "rho": 0.9,
        "momentum": 0.0,
        "epsilon": 1e-7,
        "centered": False,
    },
    "adagrad": {"learning_rate": 0.001, "initial_accumulator_value": 0.1, "epsilon": 1e-7},
}

INITIALIZERS: tuple[str, ...] = (
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "zeros",
    "ones",
    "torch_default",  # torch.nn.Linear's own: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
)

DTYPES: tuple[str, ...] = ("float32", "float64")
DEVICES: tuple[str, ...] = ("cpu", "cuda")

# Keras spellings that mean the same thing.
ALIASES: dict[str, str] = {
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
    "huber_loss": "huber",
    "gelu_approximate": "gelu_tanh",
    "none": "linear",
}

# Cross-entropies are computed from logits by every backend: the output activation is
# fused into the loss, so the loss fixes which output activation it needs.
FUSED_OUTPUT: dict[str, str] = {
    "binary_crossentropy": "sigmoid",
    "categorical_crossentropy": "softmax",
    "sparse_categorical_crossentropy": "softmax",
}

# What kind of target each loss expects, checked against the data.
TARGET_KIND: dict[str, str] = {
    "mse": "real",
    "mae": "real",
    "huber": "real",
    "binary_crossentropy": "binary",
    "categorical_crossentropy": "one_hot",
    "sparse_categorical_crossentropy": "class_index",
}
