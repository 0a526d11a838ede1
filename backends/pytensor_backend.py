"""PyTensor backend (Theano's successor): a symbolic graph, pytensor.grad and compiled updates.

The parameters live in shared variables (``pytensor.shared``) under the canonical layout
(kernel (fan_in, fan_out), bias (fan_out,)); the forward pass is ``pt.dot(h, W) + b``
with pytensor.tensor's elementwise ops; the loss is built from pytensor ops on the
logits; gradients come from ``pytensor.grad``. Theano never had an optimizer library:
its native training step is a compiled function with symbolic ``updates`` on shared
state variables, ``pytensor.function([x, y], loss, updates=...)``. The update rules
(``backends.theano_family``, shared with the Theano backend, as is the trainer's
contract) are written that way, as the published formulas (the reference's), with every
hyperparameter a constant in the run's dtype. pytensor is imported in
:meth:`PytensorBackend.load` only; the registries take the imported modules.

Compilation: ``MODE`` is "NUMBA", PyTensor 3's own default (its FAST_RUN with the "auto"
linker): the fast_run and numba graph rewrites, each function compiled by numba (with
pytensor's default numba__fastmath: contraction, reassociation, approximate functions)
and cached on disk under pytensor's compiledir. Its steps run faster than in "CVM"
(Theano's classic C ops run by the C VM, whose Dot22 and Gemm fall back to NumPy's C API
without a linked BLAS), at the price of a longer compile (see docs/performance.md,
section "PyTensor: numba mode"); the hand-written loop (backends/standalone/pytensor_loop.py)
runs in the same default mode. ``MODE = "CVM"`` selects the C VM.

Threads: in numba mode a Dot is numba's np.dot, which calls the BLAS that SciPy ships
(OpenBLAS, its pool sized from OPENBLAS_NUM_THREADS / OMP_NUM_THREADS when it loads,
which the harness sets); the elementwise loops are single-threaded numba code. (In CVM
mode the Dot22 and Gemm ops reach NumPy's own OpenBLAS through its C API, and C
elementwise ops would use OpenMP if pytensor's ``openmp`` flag were on;
:meth:`PytensorBackend.load` keeps it off.) The standard library and NumPy cannot
resize these pools afterwards. Not pinned: nothing else in a step does arithmetic.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import Backend, Params, Trainer
from backends.theano_family import OPTIMIZERS, SymbolicTrainer

if TYPE_CHECKING:
    from suite.spec import Spec

# The mode every function is compiled with: PyTensor 3's default, named (see above).
MODE = "NUMBA"

_SQRT1_2 = math.sqrt(0.5)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715

# name -> (pt, c, activation params) -> elementwise function of the pre-activation z;
# ``c(value)`` is a constant in the run's dtype.
ACTIVATIONS: dict[str, Callable[[Any, Callable, dict], Callable]] = {
    "linear": lambda pt, c, p: lambda z: z,
    # NOTE: a switch, not pt.maximum(z, 0): Maximum's gradient goes to x where x == y, so
    # maximum's relu'(0) would be 1; the switch gives 0 there, the reference's convention.
    "relu": lambda pt, c, p: lambda z: pt.switch(z > 0, z, c(0.0)),
    # leaky_relu'(0) = negative_slope (the switch takes the second branch at 0)
    "leaky_relu": lambda pt, c, p: lambda z: pt.switch(z > 0, z, c(p["negative_slope"]) * z),
    # expm1 of min(z, 0) only: exp of a large z in the unused branch would make its
    # gradient inf * 0 = nan
    "elu": lambda pt, c, p: lambda z: pt.switch(
        z > 0, z, c(p["alpha"]) * pt.expm1(pt.minimum(z, c(0.0)))),
    "sigmoid": lambda pt, c, p: pt.sigmoid,
    "tanh": lambda pt, c, p: pt.tanh,
    # NOTE: pytensor's Softplus switches between exp(z), log1p(exp(z)), z + exp(-z) and z
    # at -37, 18 and 33.3; each piece is log(1 + exp(z)) to within float64 rounding there.
    "softplus": lambda pt, c, p: pt.softplus,
    # x * Phi(x) with Phi(x) = 0.5 * erfc(-x / sqrt 2): no cancellation in the left tail
    "gelu": lambda pt, c, p: lambda z: c(0.5) * z * pt.erfc(z * c(-_SQRT1_2)),
    "gelu_tanh": lambda pt, c, p: lambda z: c(0.5) * z * (c(1.0) + pt.tanh(
        c(_SQRT_2_PI) * (z + c(_GELU_CUBIC) * z * z * z))),
}

# Output activation applied by predict() when it is fused into a from-logits loss.
FUSED_OUTPUTS: dict[str, Callable[[Any, Any], Any]] = {
    "sigmoid": lambda pt, z: pt.sigmoid(z),
    "softmax": lambda pt, z: pt.special.softmax(z, axis=-1),
}


def _huber(pt, c, p):
    delta = p["delta"]

    def loss(z, y):
        d = z - y
        quadratic = c(0.5) * d * d
        linear = c(delta) * (pt.abs(d) - c(0.5 * delta))
        return pt.mean(pt.switch(pt.abs(d) <= c(delta), quadratic, linear))

    return loss


def _sparse(pt, c, p):
    def loss(z, y):
        return -pt.mean(pt.special.log_softmax(z, axis=-1)[pt.arange(z.shape[0]), y])

    return loss


# name -> (pt, c, loss params) -> loss(z, y), the mean over what the reference averages
# (all elements for mse, mae, huber and binary cross-entropy, the batch for the
# categorical ones). Cross-entropies take logits.
LOSSES: dict[str, Callable[[Any, Callable, dict], Callable]] = {
    "mse": lambda pt, c, p: lambda z, y: pt.mean(pt.sqr(z - y)),
    # NOTE: Abs's gradient is sign(x), 0 at 0, as the reference's.
    "mae": lambda pt, c, p: lambda z, y: pt.mean(pt.abs(z - y)),
    "huber": _huber,
    # log(1 + exp(z)) - z*y, the sigmoid fused into the loss
    "binary_crossentropy": lambda pt, c, p: lambda z, y: pt.mean(pt.softplus(z) - z * y),
    # probability targets of shape (batch, classes)
    "categorical_crossentropy": lambda pt, c, p: lambda z, y: -pt.mean(
        pt.sum(y * pt.special.log_softmax(z, axis=-1), axis=-1)),
    # int64 class indices of shape (batch,)
    "sparse_categorical_crossentropy": _sparse,
}


class PytensorBackend(Backend):
    """PyTensor (symbolic graphs compiled to C, updates as Theano-style rules)."""

    name = "pytensor"
    requires = ("pytensor",)
    extra = "pytensor"
    repro = "backends.repro.theano"  # one part for Theano and PyTensor: repro_settings

    def __init__(self) -> None:
        self._pytensor: Any = None

    def repro_settings(self) -> dict[str, object]:
        return {"framework": "pytensor"}

    def load(self, threads: int) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"expected a positive integer. Received: threads={threads!r}")
        import pytensor
        import pytensor.tensor  # noqa: F401

        # single-threaded elementwise C loops: the only pool is numpy's BLAS (see above)
        pytensor.config.openmp = False
        self._pytensor = pytensor

    def versions(self) -> dict[str, str]:
        return {"pytensor": str(self._require().__version__)}

    def runtime_settings(self) -> dict[str, object]:
        config = self._require().config
        settings: dict[str, object] = {"pytensor.mode": MODE}
        for flag in ("linker", "floatX", "openmp", "openmp_elemwise_minsize", "blas__ldflags",
                     "numba__fastmath", "numba__cache"):
            with warnings.catch_warnings():  # blas__ldflags warns that it found no BLAS
                warnings.simplefilter("ignore")
                value = getattr(config, flag)
            settings[f"pytensor.config.{flag}"] = (
                value if isinstance(value, (bool, int, float)) else str(value))
        # (numba's own thread pool runs parallel loops only, which pytensor never asks for)
        return settings

    def build(self, spec: Spec, params: Params, dtype: str, device: str) -> Trainer:
        return PytensorTrainer(self._require(), spec, params, dtype, device)

    def _require(self):
        if self._pytensor is None:
            raise RuntimeError("PytensorBackend.load() must be called before use")
        return self._pytensor


class PytensorTrainer(SymbolicTrainer):
    """Shared kernels and biases, and compiled functions each built on first use."""

    activations, fused_outputs, losses = ACTIVATIONS, FUSED_OUTPUTS, LOSSES
    optimizers = OPTIMIZERS
    float64_count = False  # Adam's step count and bias corrections in the run's dtype
    train_key, apply_key = "train", "apply"  # (its tests read ``_compiled`` by these)

    def __init__(self, pytensor, spec: Spec, params: Params, dtype: str, device: str):
        import pytensor.tensor as pt

        super().__init__(pytensor, pt, spec, params, dtype, device)

    def c(self, value: float):
        """A constant in the run's dtype (never a Python float that pytensor would cast)."""
        return self.tensor.constant(np.asarray(value, dtype=self.dtype))

    def _graph_flags(self):
        # NOTE: floatX is the dtype pytensor gives Python-float constants and its own
        # internal ones (means, softmax); every constant here is also cast explicitly.
        return self.framework.config.change_flags(floatX=self.dtype.name)

    def _compile(self, inputs: list, outputs, updates: list):
        return self.framework.function(inputs, outputs, updates=updates, mode=MODE)

    def apply_grads(self, grads: Params) -> None:
        # NOTE: in train_step's graph the gradient and the update are fused and compiled
        # together (numba's fastmath contracts and reassociates): fed loss_and_grads's
        # gradients, this matches train_step's update to rounding (2e-16 relative after three
        # float64 steps, some optimizers bit for bit), not always exactly.
        super().apply_grads(grads)
