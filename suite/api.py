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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from suite import spec as spec_module
from suite.compare.results import Run
from suite.errors import SpecError
from suite.processes import ProgressFn, ignore_progress
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


def with_overrides(spec: Spec, *, epochs: int | None = None, batch_size: int | None = None,
                   seed: int | None = None, dtype: str | None = None,
                   shuffle: bool | None = None, max_steps: int | None = None,
                   data: str | None = None, target: str | None = None,
                   standardize: bool | None = None) -> Spec:
    """``spec`` with the given training and data values replaced (None keeps the spec's),
    validated as a spec file's would be."""
    changed = spec.with_training(epochs=epochs, batch_size=batch_size, seed=seed, dtype=dtype,
                                 shuffle=shuffle, max_steps=max_steps)
    return changed.with_data(name=data, target=target, standardize=standardize)


@dataclass(frozen=True)
class ComparePlan:
    """A comparison before it runs: the spec with its overrides, and the options."""

    spec: Spec
    options: Any  # suite.compare.plan.Options

    def run(self, on_event: ProgressFn = ignore_progress) -> Run:
        """Run every backend; returns the finished :class:`Run`."""
        from suite.compare import session

        return Run(session.run(self.spec, self.options, on_event))


def plan_compare(spec: str | Path | Sequential | Spec, data: str | None = None,
                 backends: list[str] | None = None, *, epochs: int | None = None,
                 batch_size: int | None = None, seed: int | None = None,
                 dtype: str | None = None, shuffle: bool | None = None,
                 max_steps: int | None = None, target: str | None = None,
                 standardize: bool | None = None, threads: int | None = None,
                 timing: bool = True, timing_steps: int = 50, timeout_s: float = 600.0,
                 out: str | Path | None = None, root: str | Path = "reports",
                 force: bool = False, record: str | None = None,
                 record_budget: str | None = None, repeat: int = 1,
                 attribution: str = "auto") -> ComparePlan:
    """:func:`compare`'s run, checked but not started (``suite compare`` shows the
    network before it runs)."""
    from suite.compare.plan import Options

    loaded = with_overrides(load_spec(spec), epochs=epochs, batch_size=batch_size, seed=seed,
                            dtype=dtype, shuffle=shuffle, max_steps=max_steps, data=data,
                            target=target, standardize=standardize)
    options = Options(backends=backends, threads=threads, timing=timing,
                      timing_steps=timing_steps, timeout_s=timeout_s,
                      out=Path(out) if out else None, root=Path(root), force=force,
                      record=record, record_budget=record_budget, repeat=repeat,
                      attribution=attribution)
    return ComparePlan(loaded, options)


def compare(spec: str | Path | Sequential | Spec, data: str | None = None,
            backends: list[str] | None = None, *, epochs: int | None = None,
            batch_size: int | None = None, seed: int | None = None, dtype: str | None = None,
            shuffle: bool | None = None, max_steps: int | None = None,
            target: str | None = None, standardize: bool | None = None,
            threads: int | None = None, timing: bool = True, timing_steps: int = 50,
            timeout_s: float = 600.0, out: str | Path | None = None,
            root: str | Path = "reports", force: bool = False, record: str | None = None,
            record_budget: str | None = None, repeat: int = 1, attribution: str = "auto",
            on_event: ProgressFn = ignore_progress) -> Run:
    """Run every backend on the spec and return the finished :class:`Run`.

    Bad values (an unknown name, ``threads=0``, ``timeout_s=-1``) raise
    :class:`suite.errors.UserError` before anything runs, with the message that
    ``suite compare`` prints for them.

    ``record`` says which steps keep their gradients and parameters: ``"all"``,
    ``"auto"`` (as many as ``record_budget`` holds, default ``"1GB"``) or
    ``"first=N,every=K"``; None takes the spec's ``[record]`` table.

    ``repeat=2`` runs the reference's and each backend's lockstep run twice and reports
    whether they were bit-identical (``Run.determinism``, run.json's ``determinism``).

    ``attribution`` says which backends get a parts run after the lockstep runs, to place a
    drift in the forward, the backward or the optimizer (suite.compare.attribution):
    ``"auto"`` those outside the noise, ``"always"`` every backend, ``"never"`` none.
    """
    return plan_compare(spec, data, backends, epochs=epochs, batch_size=batch_size,
                        seed=seed, dtype=dtype, shuffle=shuffle, max_steps=max_steps,
                        target=target, standardize=standardize, threads=threads,
                        timing=timing, timing_steps=timing_steps, timeout_s=timeout_s,
                        out=out, root=root, force=force, record=record,
                        record_budget=record_budget, repeat=repeat,
                        attribution=attribution).run(on_event)


def resume(run_dir: str | Path, on_event: ProgressFn = ignore_progress) -> Run:
    """Finish a run that stopped (a crash, Ctrl-C, SIGTERM, a power loss): run only the
    backends that did not finish, with the run's own spec, data and options, then write
    the tables and the report of every backend. Finished backends are never re-run."""
    from suite.compare import session

    return Run(session.resume(Path(run_dir), on_event))


@dataclass(frozen=True)
class BenchPlan:
    """A benchmark sweep before it runs: the spec, the grid of sizes and the options."""

    spec: Spec
    sizes: list  # of suite.bench.sizes.Size, smallest work first
    options: Any  # suite.bench.runner.BenchOptions

    def memory(self) -> dict[str, float]:
        """The memory estimate of the largest size; raises UserError when it does not fit."""
        from suite.bench import memory

        return memory.check(self.spec, self.sizes, self.options.memory_limit)

    def run(self, on_event: ProgressFn = ignore_progress) -> Path:
        """Run the sweep; returns the folder with bench.csv, run.json and the report."""
        from suite.bench import runner

        return runner.run(self.spec, self.sizes, self.options, on_event)


def plan_bench(spec: str | Path | Sequential | Spec, backends: list[str] | None = None, *,
               widths: Sequence[int] = (), depths: Sequence[int] = (),
               batch_sizes: Sequence[int] = (), dtype: str | None = None,
               threads: int | None = None, warmup: int = 5, steps: int = 30,
               budget_s: float = 3.0, size_timeout_s: float = 300.0,
               standalone: bool = False, out: str | Path | None = None,
               root: str | Path = "reports", force: bool = False) -> BenchPlan:
    """``suite bench``'s sweep, checked and planned but not run (``--dry-run`` shows it)."""
    from suite.bench import runner, sizes

    loaded = load_spec(spec).with_training(dtype=dtype)
    grid = sizes.grid(loaded, widths, depths, batch_sizes)
    options = runner.BenchOptions(backends=backends, threads=threads, warmup=warmup,
                                  steps=steps, budget_s=budget_s,
                                  size_timeout_s=size_timeout_s, standalone=standalone,
                                  out=Path(out) if out else None, root=Path(root),
                                  force=force)
    return BenchPlan(loaded, grid, options)


def bench(spec: str | Path | Sequential | Spec, backends: list[str] | None = None, *,
          widths: Sequence[int] = (), depths: Sequence[int] = (),
          batch_sizes: Sequence[int] = (), dtype: str | None = None,
          threads: int | None = None, warmup: int = 5, steps: int = 30,
          budget_s: float = 3.0, size_timeout_s: float = 300.0, standalone: bool = False,
          out: str | Path | None = None, root: str | Path = "reports", force: bool = False,
          on_event: ProgressFn = ignore_progress) -> Path:
    """Time every backend on a grid of sizes (``suite bench``); returns the folder that
    holds bench.csv, run.json and the report."""
    return plan_bench(spec, backends, widths=widths, depths=depths, batch_sizes=batch_sizes,
                      dtype=dtype, threads=threads, warmup=warmup, steps=steps,
                      budget_s=budget_s, size_timeout_s=size_timeout_s,
                      standalone=standalone, out=out, root=root, force=force).run(on_event)
