"""The NumPy reference as a backend plug-in: ``NumpyBackend`` and its trainer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from backends.base import Backend, Batch, Params, Trainer, cycled
from backends.reference import (
    activations,
    blas,
    losses,
    optimizers,
    reordered,
    resolve_conventions,
)
from backends.reference.model import Sequential

if TYPE_CHECKING:
    from suite.spec import Spec


class ReferenceTrainer(Trainer):
    """A :class:`Sequential` and its optimizer; the same code path for every method."""

    def __init__(self, model: Sequential, optimizer: optimizers.Optimizer):
        self.model = model
        self.optimizer = optimizer

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        loss = self.model.loss(x, y)
        return float(loss), self.model.backward()  # copies: the caller keeps them

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        model = self.model
        loss = model.loss(x, y)
        model.backward(copy=False)  # into model.flat_grads, which no one else keeps
        self.optimizer.update_flat(model.flat_params, model.flat_grads, model.layout,
                                   overwrite_grads=True)
        return float(loss)

    def set_params(self, params: Params) -> None:
        for name, value in self.model.params.items():
            value[...] = params[name]  # into the flat array's views, cast to its dtype

    def apply_grads(self, grads: Params) -> None:
        model = self.model
        for name, value in model.grads.items():
            value[...] = grads[name]
        # NOTE: the same flat update as train_step's, so fed the gradients loss_and_grads
        # gave, it makes bit for bit the update train_step makes
        self.optimizer.update_flat(model.flat_params, model.flat_grads, model.layout,
                                   overwrite_grads=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def get_params(self) -> Params:
        return {name: value.copy() for name, value in self.model.params.items()}

    def fast_step(self, batches: Sequence[Batch]) -> Callable[[], None]:
        data = cycled(batches, self.model.prepare)
        train_step = self.train_step

        def step() -> None:
            train_step(*next(data))

        return step


#: the orders of operations the reference can sum in (see backends.reference.reordered)
ORDERS = ("natural", "reversed")


class NumpyBackend(Backend):
    """The hand-written reference; ``conventions`` select a framework's known formulas.

    The comparison's own runs of it take two more options: ``dtype`` computes in another
    precision than the run's (``"float64"``: the exact answer a float32 run is measured
    against), ``order="reversed"`` sums everything in another order (the noise of a float64
    run). Neither changes a formula.
    """

    name = "numpy"
    requires = ("numpy",)

    def __init__(self, conventions: Mapping[str, str] | None = None, dtype: str | None = None,
                 order: str = "natural"):
        resolve_conventions(conventions)  # fail early on an unknown key or value
        if dtype not in (None, "float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64. Received: {dtype!r}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}. Received: {order!r}")
        self.conventions = dict(conventions or {})
        self.dtype, self.order = dtype, order
        self.threads: int | None = None

    def load(self, threads: int) -> None:
        # Nothing to import. NumPy's BLAS reads its thread count (OMP_NUM_THREADS,
        # OPENBLAS_NUM_THREADS, MKL_NUM_THREADS) once, when it loads: the harness sets
        # those variables before it starts the worker process, so there is nothing to do
        # here.
        self.threads = threads

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def runtime_settings(self) -> dict[str, object]:
        """NumPy's BLAS as built (``numpy.blas``) and, for OpenBLAS, as it runs: the kernel
        it picked for this CPU (``numpy.blas_config``) and its thread count
        (``numpy.blas_threads``, which the harness's OPENBLAS_NUM_THREADS set)."""
        try:
            built = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            settings: dict[str, object] = {"numpy.blas": f"{built['name']} {built['version']}"}
        except (KeyError, TypeError, ValueError):
            settings = {"numpy.blas": "unknown"}
        settings.update(blas.settings())
        return settings

    def supports(self, feature: str) -> bool | str:
        declared = super().supports(feature)  # dtypes, devices and `unsupported`
        if declared is not True:
            return declared
        kind, _, name = feature.partition(":")
        # optimizer:adam+amsgrad: every variant is written; activation:gelu@float64: every
        # dtype is run
        name = name.partition("@")[0].partition("+")[0]
        known = {
            "activation": activations.ACTIVATIONS,
            "loss": losses.LOSSES,
            "optimizer": optimizers.OPTIMIZERS,
            "regularizer": ("l2",),
        }
        if kind in ("initializer", "dtype", "device"):
            return True  # the suite draws the initial parameters; dtypes, devices: above
        if kind not in known:
            return f"unknown feature kind {kind!r} in {feature!r}"
        if name not in known[kind]:
            return f"no {kind} {name!r} in the NumPy reference"
        return True

    def build(self, spec: Spec, params: Params, dtype: str, device: str) -> Trainer:
        for feature in (f"dtype:{dtype}", f"device:{device}"):
            answer = self.supports(feature)
            if answer is not True:
                raise ValueError(answer)
        dtype = self.dtype or dtype
        orders = reordered.unit_orders(spec.sizes) if self.order == "reversed" else None
        if orders is not None:
            params = reordered.permute(params, orders)
        model = Sequential(spec, params, dtype, self.conventions)
        optimizer = optimizers.get(spec.optimizer.name, spec.optimizer.params,
                                   self.conventions)
        trainer = ReferenceTrainer(model, optimizer)
        return trainer if orders is None else reordered.ReorderedTrainer(trainer, orders)

