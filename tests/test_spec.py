"""The spec: TOML, built-in names and the Python API give one normalized spec; bad input
is one clear SpecError that says what, where and what is expected."""

from __future__ import annotations

import json

import pytest

import suite
from suite import spec as specs
from suite.errors import SpecError

DIGITS_TOML = """
name = "digits-mlp"
input_dim = 64
[[layers]]
units = 64
activation = "relu"
kernel_initializer = "glorot_uniform"
bias_initializer = "zeros"
[[layers]]
units = 10
activation = "softmax"
[loss]
name = "sparse_categorical_crossentropy"
[optimizer]
name = "sgd"
learning_rate = 0.1
momentum = 0.9
[training]
batch_size = 32
epochs = 3
seed = 0
dtype = "float32"
shuffle = true
[data]
name = "digits"
standardize = true
"""


def write(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_builtin_and_python_api_give_the_same_normalized_spec(tmp_path):
    from_file = specs.load(write(tmp_path, DIGITS_TOML))
    from_name = specs.load("digits-mlp")
    model = suite.Sequential([suite.Dense(64, activation="relu"),
                              suite.Dense(10, activation="softmax")],
                             input_dim=64, name="digits-mlp")
    model.compile(optimizer=suite.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    from_api = model.to_spec(batch_size=32, epochs=3).with_data(name="digits", standardize=True)
    assert from_file.to_dict() == from_name.to_dict() == from_api.to_dict()
    json.dumps(from_file.to_dict())  # plain JSON, as saved in run.json


def test_normalized_spec_names_every_hyperparameter():
    spec = specs.from_dict({"input_dim": 3, "layers": [
        {"units": 4, "activation": "leaky_relu"}, {"units": 1}],
        "loss": "huber", "optimizer": "adam"})
    raw = spec.to_dict()
    assert raw["layers"][0]["activation"] == {"name": "leaky_relu", "negative_slope": 0.2}
    assert raw["loss"] == {"name": "huber", "delta": 1.0}
    assert raw["optimizer"] == {"name": "adam", "learning_rate": 0.001, "beta_1": 0.9,
                                "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False}
    assert specs.from_dict(raw).to_dict() == raw  # normalizing is idempotent


def test_command_line_values_override_the_file(tmp_path):
    spec = specs.load(write(tmp_path, DIGITS_TOML)).with_training(epochs=1, dtype="float64")
    assert (spec.training.epochs, spec.training.dtype, spec.training.batch_size) == (
        1, "float64", 32)


def test_every_builtin_spec_loads():
    names = specs.builtin_names()
    assert {"digits-mlp", "regression-mlp", "binary-mlp"} <= set(names)
    losses = {specs.builtin(n).loss.name for n in names}
    assert {"mse", "binary_crossentropy", "sparse_categorical_crossentropy"} <= losses


def test_aliases_and_regularizer_forms():
    spec = specs.from_dict({"input_dim": 2, "layers": [
        {"units": 3, "activation": "gelu_approximate", "kernel_regularizer": "l2"},
        {"units": 1, "kernel_regularizer": {"l2": 0.5}}],
        "loss": "mean_squared_error", "optimizer": {"name": "sgd"}})
    assert spec.layers[0].activation.name == "gelu_tanh"
    assert [layer.kernel_l2 for layer in spec.layers] == [0.01, 0.5]
    assert spec.loss.name == "mse"
    assert "regularizer:l2" in spec.features()


BAD = [
    ('activation = "relu"', 'activation = "rleu"', "unknown activation 'rleu'",
     "line 6", "did you mean 'relu'"),
    ("units = 64", "units = 0", "expected a positive integer. Received: units=0", "line 5", ""),
    ('name = "sgd"', 'name = "sgdd"', "unknown optimizer 'sgdd'", "optimizer.name", ""),
    ('name = "sparse_categorical_crossentropy"', 'name = "hinge"', "unknown loss 'hinge'",
     "loss.name", ""),
    ('name = "sparse_categorical_crossentropy"', 'name = "binary_crossentropy"',
     "needs a sigmoid output layer", "layers[1].activation", 'set activation = "sigmoid"'),
    ("momentum = 0.9", "momentum = 0.9\nbeta_1 = 0.5", "sgd has no hyperparameter 'beta_1'",
     "optimizer.beta_1", ""),
    ('dtype = "float32"', 'dtype = "float16"', "unknown dtype 'float16'", "training.dtype", ""),
    ("epochs = 3", "epochs = -1", "expected a positive integer. Received: epochs=-1",
     "training.epochs", ""),
    ("learning_rate = 0.1", 'learning_rate = "fast"', "expected a number. Received: 'fast'",
     "optimizer.learning_rate", ""),
]


@pytest.mark.parametrize("old,new,message,where,hint", BAD,
                         ids=[b[2].split(".")[0][:40] for b in BAD])
def test_bad_fields_say_what_where_and_what_is_expected(tmp_path, old, new, message, where,
                                                        hint):
    path = write(tmp_path, DIGITS_TOML.replace(old, new, 1))
    with pytest.raises(SpecError) as caught:
        specs.load(path)
    text = str(caught.value)
    assert message in text and where in text and str(path) in text and hint in text
    assert "\n" not in text


def test_softmax_is_only_for_the_output_layer():
    with pytest.raises(SpecError, match="softmax is only allowed on the output layer"):
        specs.from_dict({"input_dim": 2, "layers": [{"units": 3, "activation": "softmax"},
                                                    {"units": 2, "activation": "softmax"}],
                         "loss": "categorical_crossentropy", "optimizer": "sgd"})


def test_malformed_toml_names_the_line(tmp_path):
    path = write(tmp_path, "input_dim = 4\n[[layers]\nunits = 3\n")
    with pytest.raises(SpecError, match=r"malformed TOML: .*line 2"):
        specs.load(path)


def test_missing_file_and_unknown_name():
    with pytest.raises(SpecError, match="file not found"):
        specs.load("no_such_spec.toml")
    with pytest.raises(SpecError, match="no built-in spec or file named 'digits-mpl'"):
        specs.load("digits-mpl")


def test_uncompiled_python_spec_is_a_clear_error():
    model = suite.Sequential([suite.Dense(1)], input_dim=2)
    with pytest.raises(SpecError, match="not compiled"):
        model.to_spec()
