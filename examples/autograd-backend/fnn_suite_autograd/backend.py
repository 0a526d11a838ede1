"""An fnn-suite backend on HIPS autograd: autograd.numpy forward, autograd.value_and_grad.

The network is a plain function of a dict of NumPy arrays (canonical names and layout, so
nothing is transposed); ``autograd.value_and_grad`` differentiates the loss with respect
to that dict. autograd is imported in :meth:`AutogradBackend.load` only, so listing
backends stays cheap: the registries below therefore take the loaded framework (an
:class:`Autograd`) as their first argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import Backend, Batch, Params, Trainer, cycled

if TYPE_CHECKING:
    from suite.spec import Spec

# NOTE: float32 stays float32 only if no op promotes it. Python floats and ints never do
# (NumPy's NEP 50), but some of autograd's own gradient rules do, in autograd 1.9:
# ``np.mean`` divides by a NumPy int64 count, ``np.where`` pads with ``np.zeros(g.shape)``
# (float64), ``np.maximum``/``np.minimum``/``np.max`` multiply by a float64 mask. Worse,
# it would not show: differentiating with respect to a dict, autograd adds each entry's
# gradient in place into zeros of that entry's dtype, so a float32 run would return
# float32 gradients computed in float64. So this module writes means as ``sum(...) / n``
# with a Python int and branches as products with boolean masks, and its tests
# differentiate every activation and loss with respect to a bare float32 array.

_SQRT1_2 = math.sqrt(0.5)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


@dataclass(frozen=True)
class Autograd:
    """The parts of autograd this backend uses, once :meth:`AutogradBackend.load` ran."""

    np: Any  # autograd.numpy
    value_and_grad: Callable
    erf: Callable  # autograd.scipy.special: scipy's ufuncs with autograd's gradients
    expit: Callable
    logsumexp: Callable


def import_autograd() -> Autograd:
    """Import autograd (seconds the first time; the backend calls it in ``load()``)."""
    import autograd
    import autograd.numpy as anp
    from autograd.scipy import special

    return Autograd(anp, autograd.value_and_grad, special.erf, special.expit,
                    special.logsumexp)


# ---------------------------------------------------------------------------- activations


def _leaky_relu(z, negative_slope: float):
    # leaky_relu'(0) = negative_slope, as in the reference: 0 goes to the negative side
    return z * (z > 0) + (negative_slope * z) * (z <= 0)


def _elu(z, alpha: float, ag: Autograd):
    # expm1 sees 0 where z > 0, so a large positive z never overflows in the unused branch
    negative = z <= 0
    return z * (z > 0) + alpha * ag.np.expm1(z * negative)


def _gelu_tanh(z, ag: Autograd):
    return 0.5 * z * (1.0 + ag.np.tanh(_SQRT_2_PI * (z + _GELU_CUBIC * (z * z * z))))


# name -> (autograd, pre-activation z, activation params) -> activation
ACTIVATIONS: dict[str, Callable[[Autograd, Any, Mapping[str, float]], Any]] = {
    "linear": lambda ag, z, p: z,
    "relu": lambda ag, z, p: z * (z > 0),  # relu'(0) = 0, as in the reference
    "leaky_relu": lambda ag, z, p: _leaky_relu(z, float(p["negative_slope"])),
    "elu": lambda ag, z, p: _elu(z, float(p["alpha"]), ag),
    "sigmoid": lambda ag, z, p: ag.expit(z),
    "tanh": lambda ag, z, p: ag.np.tanh(z),
    "softplus": lambda ag, z, p: ag.np.logaddexp(0.0, z),  # log(1 + exp(z)), exact
    # exact gelu x * Phi(x) with autograd.scipy.special.erf (scipy's float32 ufunc loop)
    "gelu": lambda ag, z, p: 0.5 * z * (1.0 + ag.erf(z * _SQRT1_2)),
    "gelu_tanh": lambda ag, z, p: _gelu_tanh(z, ag),
}


def _log_softmax(ag: Autograd, z):
    return z - ag.logsumexp(z, axis=1, keepdims=True)


# Output activation applied by predict() when it is fused into a from-logits loss.
FUSED_OUTPUTS: dict[str, Callable[[Autograd, Any], Any]] = {
    "sigmoid": lambda ag, z: ag.expit(z),
    "softmax": lambda ag, z: ag.np.exp(_log_softmax(ag, z)),
}

# ---------------------------------------------------------------------------- losses


def _huber(ag: Autograd, z, y, delta: float):
    r = ag.np.abs(z - y)
    small = r <= delta
    return ag.np.sum(small * (0.5 * r * r) + (r > delta) * (delta * (r - 0.5 * delta))) / y.size


def _sparse_crossentropy(ag: Autograd, z, y):
    picked = _log_softmax(ag, z)[np.arange(len(y)), y]
    return -ag.np.sum(picked) / len(y)


# name -> (autograd, outputs z, target y, loss params) -> mean loss. The cross-entropies
# take logits z; y is float (batch, units), or int64 (batch,) for the sparse one. Means
# are sums over a Python int (see the module's NOTE on np.mean).
LOSSES: dict[str, Callable[[Autograd, Any, np.ndarray, Mapping[str, float]], Any]] = {
    "mse": lambda ag, z, y, p: ag.np.sum((z - y) * (z - y)) / y.size,
    "mae": lambda ag, z, y, p: ag.np.sum(ag.np.abs(z - y)) / y.size,
    "huber": lambda ag, z, y, p: _huber(ag, z, y, float(p["delta"])),
    # log(1 + exp(z)) - z*y, the sigmoid fused
    "binary_crossentropy": lambda ag, z, y, p: ag.np.sum(
        ag.np.logaddexp(0.0, z) - z * y) / y.size,
    "categorical_crossentropy": lambda ag, z, y, p: -ag.np.sum(
        y * _log_softmax(ag, z)) / len(y),
    "sparse_categorical_crossentropy": lambda ag, z, y, p: _sparse_crossentropy(ag, z, y),
}

# ---------------------------------------------------------------------------- optimizers

# NOTE: autograd has no step-wise optimizers: autograd.misc.optimizers runs whole loops
# (sgd, rmsprop, adam over num_iters, state kept inside the loop), and its sgd dampens
# momentum (v = mass*v - (1 - mass)*g). The suite needs one update per call, so the
# update rules are written here, on plain NumPy arrays in place, hyperparameters as
# Python floats (which keep float32 float32).


class _Optimizer:
    """The spec's hyperparameters, the step count and per-parameter state (zeros)."""

    def __init__(self, hyper: Mapping[str, float | bool]):
        self.hyper = {k: v if isinstance(v, bool) else float(v) for k, v in hyper.items()}
        self.t = 0  # steps taken; the first update has t = 1
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def update(self, params: Params, grads: Params) -> None:
        self.t += 1
        for name, param in params.items():
            self.step(self.state.setdefault(name, {}), param, grads[name])

    def step(self, state: dict[str, np.ndarray], p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError


class SGD(_Optimizer):
    """buf = momentum*buf + g; p -= lr*buf (nesterov: p -= lr*(g + momentum*buf))."""

    def step(self, state, p, g):
        lr, mu = self.hyper["learning_rate"], self.hyper["momentum"]
        if mu == 0.0:  # nesterov without momentum is plain SGD
            p -= lr * g
            return
        buf = state.setdefault("momentum_buffer", np.zeros_like(p))
        buf *= mu
        buf += g
        p -= lr * (g + mu * buf) if self.hyper["nesterov"] else lr * buf


class Adam(_Optimizer):
    """Kingma and Ba: p -= lr * m_hat / (sqrt(v_hat) + eps); amsgrad keeps max(v)."""

    def step(self, state, p, g):
        lr, b1, b2, eps = (self.hyper[k] for k in ("learning_rate", "beta_1", "beta_2",
                                                     "epsilon"))
        m = state.setdefault("m", np.zeros_like(p))
        v = state.setdefault("v", np.zeros_like(p))
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        if self.hyper["amsgrad"]:  # the running maximum of v replaces v (as torch)
            v_max = state.setdefault("v_max", np.zeros_like(p))
            np.maximum(v_max, v, out=v_max)
            v = v_max
        correction_1, correction_2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        p -= lr * (m / correction_1) / (np.sqrt(v / correction_2) + eps)


OPTIMIZERS: dict[str, type[_Optimizer]] = {"sgd": SGD, "adam": Adam}

_NOT_WRITTEN = ("autograd has no step-wise optimizers (autograd.misc.optimizers runs whole "
                "loops), so this example writes its own update rules and stops at SGD and "
                "Adam: {} is not written")

# ---------------------------------------------------------------------------- backend


class AutogradBackend(Backend):
    """HIPS autograd on NumPy: CPU only, float32 and float64."""

    name = "autograd"
    requires = ("autograd", "scipy")  # scipy: autograd.scipy.special
    extra = ""  # a third-party plug-in: installed with its own distribution
    dtypes = ("float32", "float64")
    devices = ("cpu",)  # autograd runs on NumPy: there is no GPU
    unsupported = {
        "optimizer:adamw": _NOT_WRITTEN.format("AdamW"),
        "optimizer:rmsprop": _NOT_WRITTEN.format("RMSprop"),
        "optimizer:adagrad": _NOT_WRITTEN.format("Adagrad"),
    }

    def __init__(self) -> None:
        self._ag: Autograd | None = None

    def load(self, threads: int) -> None:
        # autograd runs on NumPy, whose BLAS reads its thread count from the environment
        # (OMP_NUM_THREADS and the like) when it loads; the suite sets those before it
        # starts the worker, so there is nothing to pin here.
        self._ag = import_autograd()

    def versions(self) -> dict[str, str]:
        return {"autograd": metadata.version("autograd"), "numpy": np.__version__}

    def build(self, spec: Spec, params: Params, dtype: str, device: str) -> Trainer:
        for feature in (f"dtype:{dtype}", f"device:{device}"):
            answer = self.supports(feature)
            if answer is not True:
                raise ValueError(answer)
        if self._ag is None:
            raise RuntimeError("AutogradBackend.load() must be called before build()")
        return AutogradTrainer(self._ag, spec, params, dtype)


class AutogradTrainer(Trainer):
    """The parameters as a dict of NumPy arrays, a loss function of them, an optimizer."""

    def __init__(self, ag: Autograd, spec: Spec, params: Params, dtype: str):
        self.ag = ag
        self.spec = spec
        self.dtype = np.dtype(dtype)
        self.n_layers = len(spec.layers)
        # our own copies, in the run's dtype: the optimizer updates them in place
        self.params = {name: np.array(params[name], dtype=self.dtype)
                       for i in range(self.n_layers) for name in _names(i)}
        self.sparse = spec.loss.name == "sparse_categorical_crossentropy"
        self.l2 = [(f"dense_{i}/kernel", float(layer.kernel_l2))
                   for i, layer in enumerate(spec.layers) if layer.kernel_l2 > 0]
        self.optimizer = OPTIMIZERS[spec.optimizer.name](spec.optimizer.params)
        self._value_and_grad = ag.value_and_grad(self._loss)

    # ------------------------------------------------------------------ the model

    def _logits(self, params: Mapping[str, Any], x: np.ndarray):
        """Forward pass; the last activation is left out where the loss fuses it."""
        h = x
        last = self.n_layers - 1
        for i, layer in enumerate(self.spec.layers):
            h = self.ag.np.dot(h, params[f"dense_{i}/kernel"]) + params[f"dense_{i}/bias"]
            if not (i == last and self.spec.fused_output):
                act = layer.activation
                h = ACTIVATIONS[act.name](self.ag, h, act.params)
        return h

    def _loss(self, params: Mapping[str, Any], x: np.ndarray, y: np.ndarray):
        loss = LOSSES[self.spec.loss.name](self.ag, self._logits(params, x), y,
                                           self.spec.loss.params)
        for name, l2 in self.l2:  # Keras semantics: the penalty is part of the loss
            kernel = params[name]
            loss = loss + l2 * self.ag.np.sum(kernel * kernel)
        return loss

    def _x(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=self.dtype)

    def _y(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.int64 if self.sparse else self.dtype)

    def _grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        loss, grads = self._value_and_grad(self.params, x, y)
        return float(loss), grads

    # ------------------------------------------------------------------ contract

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        loss, grads = self._grads(self._x(x), self._y(y))
        # autograd's gradients are fresh arrays, not views of our parameters
        return loss, {name: np.array(g) for name, g in grads.items()}

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, grads = self._grads(self._x(x), self._y(y))  # the loss before the update
        self.optimizer.update(self.params, grads)
        return loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self._logits(self.params, self._x(x))
        if self.spec.fused_output:
            out = FUSED_OUTPUTS[self.spec.output_activation](self.ag, out)
        return np.array(out)

    def get_params(self) -> Params:
        return {name: value.copy() for name, value in self.params.items()}

    def fast_step(self, batches: Sequence[Batch]) -> Callable[[], None]:
        # autograd has no compiled mode: its fastest step is train_step itself, eager, on
        # batches already in the run's dtype (converted here, before any clock starts).
        # On the CPU every operation has finished when it returns: nothing to wait for.
        prepared = cycled(batches, lambda x, y: (self._x(x), self._y(y)))
        train_step = self.train_step

        def step() -> None:
            train_step(*next(prepared))

        return step


def _names(i: int) -> tuple[str, str]:
    return f"dense_{i}/kernel", f"dense_{i}/bias"

