"""The Python API, in Keras's vocabulary: Sequential, Dense, optimizers, compare.

    spec = suite.Sequential([suite.Dense(64, activation="relu"),
                             suite.Dense(10, activation="softmax")], input_dim=64)
    spec.compile(optimizer=suite.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                 loss="sparse_categorical_crossentropy")
    run = suite.compare(spec, data="digits", backends=["numpy", "torch", "keras"])
    run.losses   # a pandas DataFrame

Everything funnels into :func:`suite.spec.from_dict`, the same path as a TOML file,
so the three ways of writing a spec give the same normalized spec.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from suite import spec as spec_module
from suite.errors import SpecError
from suite.results import Run
from suite.spec import Spec


class _Named:
    """A component with a name and hyperparameters (optimizer, regularizer, loss)."""

    name = ""

    def __init__(self, **params: Any):
        self.params = params

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


# Keras's class names; each takes that optimizer's hyperparameters as keywords.
optimizers = SimpleNamespace(**{
    cls: type(cls, (_Named,), {"name": name, "__module__": __name__})
    for cls, name in (("SGD", "sgd"), ("Adam", "adam"), ("AdamW", "adamw"),
                      ("RMSprop", "rmsprop"), ("Adagrad", "adagrad"))
})


class L2:
    def __init__(self, l2: float = 0.01):
        self.l2 = l2

    def to_dict(self) -> dict[str, float]:
        return {"l2": self.l2}


regularizers = SimpleNamespace(L2=L2)


class Dense:
    def __init__(self, units: int, activation: str | dict = "linear",
                 kernel_initializer: str = "glorot_uniform", bias_initializer: str = "zeros",
                 kernel_regularizer: L2 | str | dict | None = None):
        self.config = {"units": units, "activation": activation,
                       "kernel_initializer": kernel_initializer,
                       "bias_initializer": bias_initializer,
                       "kernel_regularizer": kernel_regularizer}

    def to_dict(self) -> dict[str, Any]:
        config = dict(self.config)
        if hasattr(config["kernel_regularizer"], "to_dict"):
            config["kernel_regularizer"] = config["kernel_regularizer"].to_dict()
        if config["kernel_regularizer"] is None:
            del config["kernel_regularizer"]
        return config


class Sequential:
    """A spec under construction; ``compile`` names the loss and optimizer."""

    def __init__(self, layers: list[Dense], input_dim: int, name: str = "sequential"):
        self.layers = list(layers)
        self.input_dim = input_dim
        self.name = name
        self.loss: Any = None
        self.optimizer: Any = None

    def compile(self, optimizer: _Named | str | dict, loss: str | dict) -> None:
        self.optimizer = optimizer
        self.loss = loss

    def to_dict(self, **training: Any) -> dict[str, Any]:
        if self.loss is None or self.optimizer is None:
            raise SpecError("the model is not compiled", where=self.name,
                            hint="call .compile(optimizer=..., loss=...) first")
        optimizer = self.optimizer.to_dict() if hasattr(self.optimizer, "to_dict") else (
            self.optimizer)
        return {"name": self.name, "input_dim": self.input_dim,
                "layers": [layer.to_dict() for layer in self.layers],
                "loss": self.loss, "optimizer": optimizer,
                "training": {k: v for k, v in training.items() if v is not None}}

    def to_spec(self, **training: Any) -> Spec:
        return spec_module.from_dict(self.to_dict(**training), source=f"Python spec {self.name}")


def spec_from_dict(raw: dict[str, Any]) -> Spec:
    """A Spec from a plain dict with the TOML file's structure."""
    return spec_module.from_dict(raw, source="Python dict")


def load_spec(source: str | Path | Sequential | Spec) -> Spec:
    """A Spec from a built-in name, a TOML path, a Sequential or a Spec."""
    if isinstance(source, Spec):
        return source
    if isinstance(source, Sequential):
        return source.to_spec()
    return spec_module.load(source)


def compare(spec: str | Path | Sequential | Spec, data: str | None = None,
            backends: list[str] | None = None, *, epochs: int | None = None,
            batch_size: int | None = None, seed: int | None = None, dtype: str | None = None,
            shuffle: bool | None = None, max_steps: int | None = None,
            target: str | None = None, standardize: bool | None = None,
            threads: int | None = None, timing: bool = True, timeout_s: float = 600.0,
            out: str | Path | None = None, root: str | Path = "reports",
            force: bool = False) -> Run:
    """Run every backend on the spec and return the finished :class:`Run`."""
    from suite import harness

    loaded = load_spec(spec).with_training(epochs=epochs, batch_size=batch_size, seed=seed,
                                           dtype=dtype, shuffle=shuffle, max_steps=max_steps)
    loaded = loaded.with_data(name=data, target=target, standardize=standardize)
    options = harness.Options(backends=backends, threads=threads, timing=timing,
                              timeout_s=timeout_s, out=Path(out) if out else None,
                              root=Path(root), force=force)
    return Run(harness.run(loaded, options))


def bench(spec: str | Path | Sequential | Spec, backends: list[str] | None = None, *,
          widths: list[int] = (), depths: list[int] = (), batch_sizes: list[int] = (),
          dtype: str | None = None, threads: int | None = None, steps: int = 30,
          standalone: bool = False, out: str | Path | None = None,
          root: str | Path = "reports", force: bool = False) -> Path:
    """Time every backend on a grid of sizes (``suite bench``); returns the folder that
    holds bench.csv, run.json and the report."""
    from suite.bench import runner, sizes

    loaded = load_spec(spec).with_training(dtype=dtype)
    grid = sizes.grid(loaded, widths, depths, batch_sizes)
    options = runner.BenchOptions(backends=backends, threads=threads, steps=steps,
                                  standalone=standalone, out=Path(out) if out else None,
                                  root=Path(root), force=force)
    return runner.run(loaded, grid, options)
