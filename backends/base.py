"""The backend contract: what every framework plug-in implements.

Only NumPy arrays and plain JSON cross this boundary. Parameters use the canonical
names ``dense_<i>/kernel`` with shape (fan_in, fan_out) and ``dense_<i>/bias`` with
shape (fan_out,); each backend converts to its own layout. A backend uses its
framework's own layers, autograd, loss and optimizer, passes every hyperparameter of
the spec explicitly, and never shuffles, initializes weights or reports running means.

Worker side: standard library and NumPy only here; a backend module imports its
framework inside :meth:`Backend.load`, so listing backends never imports a framework.
"""

from __future__ import annotations

import abc
import importlib.metadata as metadata
import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    from suite.spec import Spec

Params = dict[str, np.ndarray]
Batch = tuple[np.ndarray, np.ndarray]
Converted = TypeVar("Converted")


class Trainer(abc.ABC):
    """One model, built from the suite's initial parameters, with its optimizer.

    ``x`` is an array of shape (batch, input_dim) in the run's dtype. ``y`` is the target:
    shape (batch, units) in the run's dtype for mse, mae, huber, binary and categorical
    cross-entropy, or shape (batch,) int64 class indices for sparse categorical
    cross-entropy.
    """

    @abc.abstractmethod
    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        """The batch's mean loss (with L2 penalties) and its gradients; no update."""

    @abc.abstractmethod
    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer update on the batch; returns that batch's own loss before it."""

    @abc.abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs of shape (batch, units), output activation applied (probabilities)."""

    @abc.abstractmethod
    def get_params(self) -> Params:
        """Current parameters under canonical names and layout, as NumPy arrays."""

    # Attribution (suite.compare.parts): the backend's parts run alone, each from the
    # reference's own inputs, so that a drift is placed in one of them. Both are optional:
    # a backend without them gets no attribution, and says so in its verdict.

    def set_params(self, params: Params) -> None:
        """Replace the model's parameters by ``params`` (canonical names and layout, in the
        run's dtype), leaving the optimizer's state as it is: :meth:`loss_and_grads` then
        gives the forward and backward alone, at the reference's parameters."""
        raise NotImplementedError(f"{type(self).__name__} does not implement set_params")

    def apply_grads(self, grads: Params) -> None:
        """One update by the backend's own optimizer with ``grads`` (canonical names and
        layout) in place of its own gradients; its state (moments, step count) advances as
        in :meth:`train_step`. Fed the reference's gradients, that is the update alone.

        Given the gradients :meth:`loss_and_grads` returns, it makes the update
        :meth:`train_step` makes (tests/test_backend_contract.py checks it).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement apply_grads")

    def fast_step(self, batches: Sequence[Batch]) -> Callable[[], None]:
        """A function that runs one training step per call, in the framework's fastest
        idiomatic form (a compiled step: tf.function, jax.jit, Keras's train function).

        ``batches`` are converted to the framework's own form here, before any clock
        starts; each call takes the next one in turn and returns only once the device has
        finished (synchronize on a GPU), so that timing one call times one step. The first
        call includes any trace or compile. :meth:`time_steps` and the pytest-benchmark
        suite time this function. :func:`cycled` converts and cycles the batches.
        """
        raise NotImplementedError(
            f"{type(self).__name__} implements neither fast_step nor time_steps")

    def time_steps(self, batches: Sequence[Batch], n: int) -> list[float]:
        """Run ``n`` training steps of :meth:`fast_step`; each step's wall time in seconds.

        Override this instead of :meth:`fast_step` only when a step cannot be one call.
        """
        if not batches:
            raise ValueError("time_steps needs at least one batch. Received: none")
        step = self.fast_step(batches)
        times: list[float] = []
        for _ in range(n):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return times


class Backend(abc.ABC):
    """A framework plug-in. Construction is cheap; :meth:`load` imports the framework.

    What a backend can run is declared in class constants, which the default
    :meth:`supports` reads: ``dtypes``, ``devices`` and ``unsupported`` (feature ->
    reason). Override :meth:`supports` only for answers known after :meth:`load` (is a
    GPU visible?), and call ``super().supports(feature)`` for the rest.
    """

    name: str = ""
    #: distributions whose versions are reported and whose absence makes it unavailable
    requires: tuple[str, ...] = ()
    #: the fnn-suite extra that installs ``requires`` (empty for a third-party plug-in)
    extra: str = ""
    #: pip requirements of an environment of its own (e.g. an old NumPy): when set, the
    #: suite builds that virtual environment on first use and runs the worker there
    #: (see suite/envs.py); ``requires`` is then looked up there, not here
    environment: tuple[str, ...] = ()
    #: dtypes and devices it runs
    dtypes: tuple[str, ...] = ("float32", "float64")
    devices: tuple[str, ...] = ("cpu",)
    #: feature (``kind:name``) -> why this backend cannot run it
    unsupported: Mapping[str, str] = {}
    #: the module of its reproducer's framework part (backends/repro/torch.py is one:
    #: ``compute(state)`` with the framework alone), or empty: no reproducer is written
    repro: str = ""

    @abc.abstractmethod
    def load(self, threads: int) -> None:
        """Import the framework and pin its intra-op thread count to ``threads``."""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """Framework name -> version, for run.json (call after :meth:`load`)."""

    def supports(self, feature: str) -> bool | str:
        """True, or the reason this backend cannot run ``feature`` (``kind:name``).

        Features come from :meth:`suite.spec.Spec.features` plus ``device:<name>``.
        """
        if feature in self.unsupported:
            return self.unsupported[feature]
        kind, _, value = feature.partition(":")
        if kind == "dtype" and value not in self.dtypes:
            return f"{self.name} runs {', '.join(self.dtypes)}. Received: dtype {value!r}"
        if kind == "device" and value not in self.devices:
            return f"{self.name} runs on {', '.join(self.devices)}. Received: device {value!r}"
        return True

    def repro_settings(self) -> dict[str, object]:
        """What its reproducer's framework part (:attr:`repro`) needs to know besides the
        network and state, as JSON (Keras: which backend it runs on); read before
        :meth:`load`."""
        return {}

    def runtime_settings(self) -> dict[str, object]:
        """What the framework reports of its thread pools and float32 matmul precision,
        read after :meth:`load`, for run.json: e.g. ``{"torch.num_threads": 2,
        "torch.allow_tf32": False}``. The harness records the thread environment variables
        it set (OMP_NUM_THREADS, ...) itself.
        """
        return {}

    @abc.abstractmethod
    def build(self, spec: Spec, params: Params, dtype: str, device: str) -> Trainer:
        """A trainer whose model holds exactly ``params`` (cast to ``dtype``)."""


def canonical_params(spec: Spec, params: Params, dtype: str | np.dtype) -> Params:
    """``params`` checked for names and shapes, as fresh arrays in ``dtype``, in layer order
    (kernel then bias): what a backend copies into its own layout in ``build``.

    Raises
    ------
    ValueError
        Naming the layer whose kernel (fan_in, fan_out) or bias (fan_out,) has another shape.
    """
    checked: Params = {}
    for i, (fan_in, layer) in enumerate(zip(spec.sizes[:-1], spec.layers, strict=True)):
        kernel = np.array(params[f"dense_{i}/kernel"], dtype=dtype, copy=True)
        bias = np.array(params[f"dense_{i}/bias"], dtype=dtype, copy=True)
        if kernel.shape != (fan_in, layer.units) or bias.shape != (layer.units,):
            raise ValueError(f"dense_{i}: expected kernel {(fan_in, layer.units)} and bias "
                             f"{(layer.units,)}. Received: {kernel.shape} and {bias.shape}")
        checked[f"dense_{i}/kernel"], checked[f"dense_{i}/bias"] = kernel, bias
    return checked


def cycled(batches: Sequence[Batch],
           convert: Callable[[np.ndarray, np.ndarray], Converted]) -> Iterator[Converted]:
    """``convert(x, y)`` of every batch, endlessly in turn: the data a :meth:`Trainer.fast_step`
    steps through.

    Every batch is converted here, before this returns (so before any clock starts, and
    inside whatever device scope the caller holds), not on the first pass of the cycle.

    Raises
    ------
    ValueError
        When ``batches`` is empty: a step would have nothing to train on.
    """
    if not batches:
        raise ValueError("fast_step needs at least one batch. Received: none")
    return itertools.cycle([convert(x, y) for x, y in batches])


def dense_names(n_layers: int) -> list[str]:
    """Canonical parameter names in layer order: kernel then bias for each layer."""
    return [f"dense_{i}/{part}" for i in range(n_layers) for part in ("kernel", "bias")]


def installed_distribution(*names: str) -> str:
    """The first of ``names`` that is installed (else the first), for ``requires``.

    Some frameworks ship under several distributions with one import package
    (tensorflow, tensorflow-cpu); reading metadata imports nothing.
    """
    for name in names:
        try:
            metadata.version(name)
            return name
        except metadata.PackageNotFoundError:
            continue
    return names[0]
