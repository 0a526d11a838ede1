"""PyTensor backend (Theano's successor): a symbolic graph, pytensor.grad and compiled updates.

The parameters live in shared variables (``pytensor.shared``) under the canonical layout
(kernel (fan_in, fan_out), bias (fan_out,)); the forward pass is ``pt.dot(h, W) + b``
with pytensor.tensor's elementwise ops; the loss is built from pytensor ops on the
logits; gradients come from ``pytensor.grad``. Theano never had an optimizer library:
its native training step is a compiled function with symbolic ``updates`` on shared
state variables, ``pytensor.function([x, y], loss, updates=...)``. The update rules below
are written that way, as the published formulas (the reference's), with every
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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import Backend, Batch, Params, Trainer, canonical_params, cycled, dense_names

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


class _Updates:
    """Symbolic update rules: state as shared variables of the run's dtype, starting at
    ``fill``; ``c`` makes constants in that dtype. Subclasses return (variable, new) pairs."""

    def __init__(self, pytensor, pt, c: Callable, hyper: dict, dtype: np.dtype):
        self.pytensor, self.pt, self.c, self.hyper, self.dtype = pytensor, pt, c, hyper, dtype
        self.state: list[Any] = []  # every shared state variable, for the dtype checks

    def slot(self, param, name: str, fill: float = 0.0):
        value = np.full_like(param.get_value(borrow=True), fill, dtype=self.dtype)
        var = self.pytensor.shared(value, name=f"{param.name}/{name}")
        self.state.append(var)
        return var

    def step_count(self):
        """t, the number of this update (1 first), as a shared scalar of the run's dtype."""
        t = self.pytensor.shared(np.asarray(0.0, dtype=self.dtype), name="t")
        self.state.append(t)
        return t, t + self.c(1.0)

    def __call__(self, params: list, grads: list) -> list[tuple[Any, Any]]:
        raise NotImplementedError


class _SGD(_Updates):
    """torch: buf = mu*buf + g; p -= lr*buf (nesterov: p -= lr*(g + mu*buf))."""

    def __call__(self, params, grads):
        c, h = self.c, self.hyper
        lr, mu = c(h["learning_rate"]), h["momentum"]
        if mu == 0.0:  # nesterov without momentum is plain SGD (Keras semantics)
            return [(p, p - lr * g) for p, g in zip(params, grads, strict=True)]
        updates = []
        for p, g in zip(params, grads, strict=True):
            buf = self.slot(p, "momentum_buffer")
            new_buf = c(mu) * buf + g
            step = g + c(mu) * new_buf if h["nesterov"] else new_buf
            updates += [(buf, new_buf), (p, p - lr * step)]
        return updates


class _Adam(_Updates):
    """m, v: moving averages of g and g^2; p -= lr * m_hat / (sqrt(v_hat) + eps); AMSGrad
    keeps the running maximum of v (torch's form) in place of v."""

    decay = False

    def __call__(self, params, grads):
        pt, c, h = self.pt, self.c, self.hyper
        lr, b1, b2, eps = (h[k] for k in ("learning_rate", "beta_1", "beta_2", "epsilon"))
        t, new_t = self.step_count()
        correction_1 = c(1.0) - c(b1) ** new_t
        correction_2 = c(1.0) - c(b2) ** new_t
        updates = [(t, new_t)]
        for p, g in zip(params, grads, strict=True):
            m, v = self.slot(p, "m"), self.slot(p, "v")
            new_m = c(b1) * m + c(1.0 - b1) * g
            new_v = c(b2) * v + c(1.0 - b2) * (g * g)
            updates += [(m, new_m), (v, new_v)]
            if h["amsgrad"]:
                v_max = self.slot(p, "v_max")
                new_v = pt.maximum(v_max, new_v)
                updates.append((v_max, new_v))
            # decoupled weight decay on the parameter before the step (AdamW)
            start = p - c(lr * h["weight_decay"]) * p if self.decay else p
            step = c(lr) * (new_m / correction_1) / (pt.sqrt(new_v / correction_2) + c(eps))
            updates.append((p, start - step))
        return updates


class _AdamW(_Adam):
    decay = True


class _RMSprop(_Updates):
    """v = rho*v + (1-rho)*g^2; p -= lr * g / (sqrt(v) + eps); centered subtracts a^2;
    momentum: buf = mom*buf + g/denom, p -= lr*buf (torch's form)."""

    def __call__(self, params, grads):
        pt, c, h = self.pt, self.c, self.hyper
        lr, rho, mom, eps = (h[k] for k in ("learning_rate", "rho", "momentum", "epsilon"))
        updates = []
        for p, g in zip(params, grads, strict=True):
            v = self.slot(p, "square_avg")
            new_v = c(rho) * v + c(1.0 - rho) * (g * g)
            updates.append((v, new_v))
            var = new_v
            if h["centered"]:
                a = self.slot(p, "grad_avg")
                new_a = c(rho) * a + c(1.0 - rho) * g
                updates.append((a, new_a))
                var = new_v - new_a * new_a
            denom = pt.sqrt(var) + c(eps)
            if mom == 0.0:
                updates.append((p, p - c(lr) * g / denom))
                continue
            buf = self.slot(p, "momentum_buffer")
            new_buf = c(mom) * buf + g / denom
            updates += [(buf, new_buf), (p, p - c(lr) * new_buf)]
        return updates


class _Adagrad(_Updates):
    """acc = initial + sum of g^2; p -= lr * g / (sqrt(acc) + eps)."""

    def __call__(self, params, grads):
        pt, c, h = self.pt, self.c, self.hyper
        updates = []
        for p, g in zip(params, grads, strict=True):
            acc = self.slot(p, "sum", fill=h["initial_accumulator_value"])
            new_acc = acc + g * g
            step = c(h["learning_rate"]) * g / (pt.sqrt(new_acc) + c(h["epsilon"]))
            updates += [(acc, new_acc), (p, p - step)]
        return updates


OPTIMIZERS: dict[str, type[_Updates]] = {
    "sgd": _SGD,
    "adam": _Adam,
    "adamw": _AdamW,
    "rmsprop": _RMSprop,
    "adagrad": _Adagrad,
}


class PytensorBackend(Backend):
    """PyTensor (symbolic graphs compiled to C, updates as Theano-style rules)."""

    name = "pytensor"
    requires = ("pytensor",)
    extra = "pytensor"

    def __init__(self) -> None:
        self._pytensor: Any = None

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


class PytensorTrainer(Trainer):
    """Shared kernels and biases, and three compiled functions built on first use."""

    def __init__(self, pytensor, spec: Spec, params: Params, dtype: str, device: str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"expected dtype float32 or float64. Received: {dtype!r}")
        if device != "cpu":
            raise ValueError(f"expected device cpu. Received: {device!r}")
        import pytensor.tensor as pt

        self.pytensor, self.pt, self.spec = pytensor, pt, spec
        self.dtype = np.dtype(dtype)
        self.sparse = spec.loss.name == "sparse_categorical_crossentropy"
        self.names = dense_names(len(spec.layers))
        self.shared = [pytensor.shared(value, name=name)
                       for name, value in canonical_params(spec, params, self.dtype).items()]
        self._compiled: dict[str, Any] = {}
        # NOTE: floatX is the dtype pytensor gives Python-float constants and its own
        # internal ones (means, softmax); every constant here is also cast explicitly.
        with pytensor.config.change_flags(floatX=dtype):
            self.x = pt.matrix("x", dtype=dtype)
            self.y = pt.vector("y", dtype="int64") if self.sparse else pt.matrix("y", dtype=dtype)
            logits = self._logits(self.x)
            self.outputs = self._output(logits)
            self.loss = self._objective(logits, self.y)
            self.grads = pytensor.grad(self.loss, self.shared)
            self.optimizer = OPTIMIZERS[spec.optimizer.name](
                pytensor, pt, self.c, spec.optimizer.params, self.dtype)
            self.updates = self.optimizer(self.shared, self.grads)

    # ------------------------------------------------------------------ graph

    def c(self, value: float):
        """A constant in the run's dtype (never a Python float that pytensor would cast)."""
        return self.pt.constant(np.asarray(value, dtype=self.dtype))

    def _logits(self, x):
        """The last layer's pre-activation (the logits of a fused output)."""
        pt, h = self.pt, x
        layers = self.spec.layers
        for i, layer in enumerate(layers):
            h = pt.dot(h, self.shared[2 * i]) + self.shared[2 * i + 1]
            if i < len(layers) - 1:
                act = layer.activation
                h = ACTIVATIONS[act.name](pt, self.c, act.params)(h)
        return h

    def _output(self, logits):
        last = self.spec.layers[-1].activation
        if self.spec.fused_output:
            return FUSED_OUTPUTS[last.name](self.pt, logits)
        return ACTIVATIONS[last.name](self.pt, self.c, last.params)(logits)

    def _objective(self, logits, y):
        spec = self.spec
        loss_fn = LOSSES[spec.loss.name](self.pt, self.c, spec.loss.params)
        value = loss_fn(logits if spec.fused_output else self._output(logits), y)
        for i, layer in enumerate(spec.layers):
            if layer.kernel_l2 > 0:
                # Keras semantics: the penalty is part of the loss (not weight decay).
                value = value + self.c(layer.kernel_l2) * self.pt.sum(
                    self.pt.sqr(self.shared[2 * i]))
        return value

    def _function(self, key: str):
        """The compiled function ``key`` ("train", "loss_and_grads" or "predict"), compiled
        once, on first use."""
        if key not in self._compiled:
            pytensor = self.pytensor
            inputs, outputs, updates = {
                "train": ([self.x, self.y], self.loss, self.updates),
                "loss_and_grads": ([self.x, self.y], [self.loss, *self.grads], []),
                "predict": ([self.x], self.outputs, []),
            }[key]
            with pytensor.config.change_flags(floatX=self.dtype.name):
                self._compiled[key] = pytensor.function(inputs, outputs, updates=updates,
                                                        mode=MODE)
        return self._compiled[key]

    # ------------------------------------------------------------------ conversions

    def _x(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _y(self, y: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(y, dtype=np.int64 if self.sparse else self.dtype)

    # ------------------------------------------------------------------ contract

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        loss, *grads = self._function("loss_and_grads")(self._x(x), self._y(y))
        return float(loss), {name: np.array(g, copy=True)
                             for name, g in zip(self.names, grads, strict=True)}

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        # the outputs are computed from the shared values before the updates apply
        return float(self._function("train")(self._x(x), self._y(y)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.array(self._function("predict")(self._x(x)), copy=True)

    def get_params(self) -> Params:
        return {var.name: var.get_value(borrow=False) for var in self.shared}

    def fast_step(self, batches: Sequence[Batch]) -> Callable[[], None]:
        cycle = cycled(batches, lambda x, y: (self._x(x), self._y(y)))
        function = self._function

        def step() -> None:
            x, y = next(cycle)
            train = function("train")  # train_step's function; compiled on the first call
            # The inputs already have the graph's dtypes: skip pytensor's input checks for
            # this call only, so that train_step keeps them.
            train.trust_input = True
            try:
                train(x, y)  # runs on the host: finished when it returns
            finally:
                train.trust_input = False

        return step
