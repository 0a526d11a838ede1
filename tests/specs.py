"""The small specs the tests build: one builder for every test module.

``make_spec(...)`` gives a normalized :class:`suite.spec.Spec`, ``spec_dict(...)`` the raw
dict that it normalizes. Unless told otherwise the spec is the backend tests' network:
3 inputs -> 4 tanh -> 2 linear, mse, plain SGD with learning rate 0.1, float64, named "t".
A module whose tests share other settings binds them once, e.g.
``make_spec = functools.partial(specs.make_spec, sizes=(3, 5, 2), name="ledger")``.

Imported as a plain module (``from specs import make_spec``), not through conftest.py.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from suite import catalogue
from suite.spec import Spec, from_dict

SGD = {"name": "sgd", "learning_rate": 0.1}


def spec_dict(*, sizes: Sequence[int] = (3, 4, 2), input_dim: int | None = None,
              units: int | None = None, layers: list[dict] | None = None,
              hidden: str | dict = "tanh", output: str | dict | None = None,
              l2: float | Sequence[float] = 0.0, kernel_initializer: str | None = None,
              bias_initializer: str | None = None, loss: str | dict = "mse",
              optimizer: str | dict | None = None, name: str = "t", dtype: str = "float64",
              batch_size: int | None = None, epochs: int | None = None,
              seed: int | None = None, shuffle: bool | None = None, data: str | None = None,
              target: str | None = None, standardize: bool | None = None) -> dict[str, Any]:
    """The raw spec dict; a ``None`` leaves that field to the spec's own default.

    sizes: (inputs, hidden widths..., outputs); ``input_dim`` and ``units`` replace its
        first and last entry.
    layers: the layer dicts themselves, instead of those made from ``sizes`` (whose first
        entry, or ``input_dim``, stays the input width).
    hidden, output: the activation (a name or a dict) of the hidden layers and of the
        output layer; the output's default is the one the loss needs (softmax or sigmoid
        for the cross-entropies), linear otherwise.
    l2: the L2 factor of every hidden layer's kernel (0: none), or one factor per layer,
        the output layer's included.
    kernel_initializer, bias_initializer: those of the hidden layers.
    optimizer: a name or a dict; ``None`` is :data:`SGD`.
    data, target, standardize: the data source (a dataset name or a file path) and its
        options.
    """
    if input_dim is None:
        input_dim = sizes[0]
    if layers is None:
        layers = _layers(list(sizes[1:]), units, hidden, output, l2, kernel_initializer,
                         bias_initializer, loss)
    training = {"dtype": dtype, "batch_size": batch_size, "epochs": epochs, "seed": seed,
                "shuffle": shuffle}
    raw = {"name": name, "input_dim": input_dim, "layers": layers, "loss": loss,
           "optimizer": SGD if optimizer is None else optimizer,
           "training": {key: value for key, value in training.items() if value is not None}}
    if data is not None:
        source = {"name": data, "target": target, "standardize": standardize}
        raw["data"] = {key: value for key, value in source.items() if value is not None}
    elif target is not None or standardize is not None:
        raise ValueError("target and standardize are options of a data source: give data")
    return copy.deepcopy(raw)  # nothing shared with the defaults or the caller


def make_spec(**options: Any) -> Spec:
    """The normalized spec of :func:`spec_dict` with these keyword arguments."""
    return from_dict(spec_dict(**options))


def _layers(widths: list[int], units: int | None, hidden: str | dict, output: str | dict | None,
            l2: float | Sequence[float], kernel_initializer: str | None,
            bias_initializer: str | None, loss: str | dict) -> list[dict]:
    if units is not None:
        widths[-1] = units
    if output is None:
        loss_name = loss["name"] if isinstance(loss, dict) else loss
        output = catalogue.FUSED_OUTPUT.get(loss_name, "linear")
    factors = list(l2) if isinstance(l2, Sequence) else [l2] * (len(widths) - 1) + [0.0]
    if len(factors) != len(widths):
        raise ValueError(f"l2: one factor per layer ({len(widths)}). Received: {l2!r}")
    layers = []
    for i, (width, factor) in enumerate(zip(widths, factors, strict=True)):
        is_hidden = i < len(widths) - 1
        layer = {"units": width, "activation": hidden if is_hidden else output}
        if factor:
            layer["kernel_regularizer"] = {"l2": factor}
        if is_hidden and kernel_initializer is not None:
            layer["kernel_initializer"] = kernel_initializer
        if is_hidden and bias_initializer is not None:
            layer["bias_initializer"] = bias_initializer
        layers.append(layer)
    return layers
