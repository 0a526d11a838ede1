"""Optimizers: a registry of update rules, the published (and torch) formulas.

Every hyperparameter comes from ``spec.optimizer.params`` (names as in
``suite.catalogue.OPTIMIZERS``). ``update(params, grads)`` changes the arrays of
``params`` in place; state lives per parameter name and starts at zero.
``update_flat`` does the same, with the same numbers, on parameters held as views of one
flat array (the trainer's fast path: cache-sized blocks, and for a large plain SGD
step NumPy's BLAS on its threads). Conventions
(see ``backends.reference.CONVENTIONS``) switch to a framework's own formula.
Arithmetic stays in the parameters' dtype: hyperparameters are Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from backends.base import Params
from backends.reference import blas, flat, float32_constant, resolve_conventions

#: elements per block of :meth:`Optimizer.update_flat`: a block of a parameter, its
#: gradient, its state and the scratch array stay in a core's L2 cache between the passes
#: of one update rule (measured on 10M float32: 1.4x faster than whole-array passes, 2.5x
#: faster than p -= lr * g with its temporary; 16K and 256K blocks were slower)
BLOCK = 1 << 16


class Optimizer:
    """Shared plumbing: hyperparameters, conventions, the step count and the state."""

    hyperparameters: tuple[str, ...] = ()

    def __init__(self, hyper: Mapping[str, float | bool],
                 conventions: Mapping[str, str] | None = None):
        missing = [key for key in self.hyperparameters if key not in hyper]
        unknown = [key for key in hyper if key not in self.hyperparameters]
        if missing or unknown:
            raise ValueError(f"{type(self).__name__} takes {', '.join(self.hyperparameters)}. "
                             f"Missing: {missing}; unknown: {unknown}")
        # bools stay bools; numbers become Python floats (never a NumPy float64 scalar)
        self.hyper = {key: value if isinstance(value, bool) else float(value)
                      for key, value in hyper.items()}
        self.conventions = resolve_conventions(conventions)
        self.t = 0  # steps taken; the first update has t = 1
        #: parameter name -> slot -> array (under update_flat: views of the flat state)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._flat_state: dict[str, np.ndarray] = {}
        self._layout: flat.Layout = {}
        self._size = 0
        self._scratch: np.ndarray | None = None

    def update(self, params: Params, grads: Params) -> None:
        """One step on every parameter, in place."""
        self.t += 1
        for name, param in params.items():
            self.step(name, param, grads[name])

    def update_flat(self, params: np.ndarray, grads: np.ndarray, layout: flat.Layout,
                    overwrite_grads: bool = False) -> None:
        """One step on parameters held as views of one contiguous 1-d array ``params``
        (their gradients likewise in ``grads``), in place; ``layout`` names the pieces.

        Every rule is elementwise, so this is :meth:`update` on all parameters at once,
        with the same numbers; it runs in blocks of :data:`BLOCK` elements that stay in
        cache, or, where the rule has one and ``overwrite_grads`` allows it to use
        ``grads`` as its scratch, in :meth:`flat_step`. The state of each parameter in
        :attr:`state` is a view of the flat state.
        """
        self.t += 1
        self._layout, self._size = layout, params.size
        if overwrite_grads and self.flat_step(params, grads):
            return
        for start in range(0, params.size, BLOCK):
            block = slice(start, start + BLOCK)  # the step's name; the last one is clipped
            self.step(block, params[block], grads[block])

    def slot(self, name: str | slice, slot: str, like: np.ndarray,
             fill: float = 0.0) -> np.ndarray:
        """The state array ``slot`` of parameter ``name`` (or of the block ``name`` of the
        flat array, under :meth:`update_flat`), created filled with ``fill``."""
        if isinstance(name, slice):
            whole = self._flat_state.get(slot)
            if whole is None:
                whole = self._flat_state[slot] = np.full(self._size, fill, like.dtype)
                for member, view in flat.views(whole, self._layout).items():
                    self.state.setdefault(member, {})[slot] = view
            return whole[name]
        slots = self.state.setdefault(name, {})
        if slot not in slots:
            slots[slot] = np.full_like(like, fill)
        return slots[slot]

    def scaled(self, a: np.ndarray, factor: float) -> np.ndarray:
        """factor * a in a scratch array, valid until the next call: no allocation."""
        scratch = self._scratch
        if scratch is None or scratch.size < a.size or scratch.dtype != a.dtype:
            scratch = self._scratch = np.empty(max(a.size, BLOCK), a.dtype)
        out = scratch[:a.size]
        return np.multiply(a, factor, out=out if a.ndim == 1 else out.reshape(a.shape))

    def f32(self, value: float) -> float:
        """A hyperparameter as Keras on TensorFlow holds it (see float32_constant)."""
        return float32_constant(value, self.conventions, "float32_optimizer_constants")

    def attr(self, value: float) -> float:
        """A hyperparameter as an MXNet operator attribute holds it (a C++ float)."""
        return float32_constant(value, self.conventions, "mxnet_float32_attributes")

    def step(self, name: str | slice, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def flat_step(self, p: np.ndarray, g: np.ndarray) -> bool:
        """The step on the whole flat array at once, free to overwrite ``g``: True if done,
        False where the rule has no such form (the default)."""
        return False


class SGD(Optimizer):
    """torch: buf = mu*buf + g; p -= lr*buf (nesterov: p -= lr*(g + mu*buf))."""

    hyperparameters = ("learning_rate", "momentum", "nesterov")

    def __init__(self, hyper: Mapping[str, float | bool],
                 conventions: Mapping[str, str] | None = None):
        super().__init__(hyper, conventions)
        # Keras: ops.cast(self.momentum, dtype); MXNet: sgd_update, sgd_mom_update and
        # nag_mom_update hold lr and momentum as float attributes
        self.mu = self.attr(self.f32(self.hyper["momentum"]))
        self.lr = self.attr(self.hyper["learning_rate"])
        self.nesterov = self.hyper["nesterov"]
        self.keras = self.conventions["sgd_momentum"] == "keras"

    def step(self, name, p, g):
        lr, mu = self.lr, self.mu
        # NOTE: scaled(g, lr) is the product lr * g without a temporary: the same numbers
        if mu == 0.0:
            p -= self.scaled(g, lr)
        elif self.keras:
            v = self.slot(name, "velocity", p)  # v = -lr * buf for a constant lr
            v *= mu
            lr_g = self.scaled(g, lr)
            v -= lr_g
            if self.nesterov:
                p += mu * v - lr_g
            else:
                p += v
        else:
            buf = self.slot(name, "momentum_buffer", p)
            buf *= mu
            buf += g
            p -= (lr * (g + mu * buf)) if self.nesterov else self.scaled(buf, lr)

    def flat_step(self, p, g):
        # g *= lr; p -= g with BLAS's threads on a large array: the numbers of p -= lr * g
        library = blas.level1()
        if (self.mu != 0.0 or self.lr == 0.0 or p.size < BLOCK or library is None
                or not library.handles(p, g)):
            return False
        library.scale(g, self.lr)
        library.subtract(p, g)
        return True


class Adam(Optimizer):
    """m, v: moving averages of g and g^2; p -= lr * m_hat / (sqrt(v_hat) + eps)."""

    hyperparameters = ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad")

    def step(self, name, p, g):
        lr, b1, b2, eps = (self.hyper[k] for k in ("learning_rate", "beta_1", "beta_2",
                                                     "epsilon"))
        # NOTE: MXNet's adam_update holds beta1, beta2 and epsilon as float attributes for
        # the moving averages and the denominator; its bias corrections (Python) are exact.
        b1_op, b2_op, eps = self.attr(b1), self.attr(b2), self.attr(eps)
        m, v = self.slot(name, "m", p), self.slot(name, "v", p)
        m *= b1_op
        m += (1.0 - b1_op) * g
        v *= b2_op
        v += (1.0 - b2_op) * (g * g)
        # NOTE: Keras casts beta_1 and beta_2 (ops.cast(self.beta_1, dtype)) for the bias
        # corrections only; its moving averages use the Python floats 1 - beta.
        b1_hat, b2_hat = (self.f32(b) for b in (b1, b2))
        correction_1, correction_2 = 1.0 - b1_hat ** self.t, 1.0 - b2_hat ** self.t
        if self.hyper["amsgrad"] and self.conventions["amsgrad_max"] == "bias_corrected":
            # NOTE: optax keeps the maximum of v_hat = v / (1 - b2^t); torch and Keras keep
            # the maximum of v and correct it afterwards. They differ once the correction
            # shrinks between a step that set the maximum and a later one.
            v_hat_max = self.slot(name, "v_hat_max", p)
            np.maximum(v_hat_max, v / correction_2, out=v_hat_max)
            p -= lr * (m / correction_1) / (np.sqrt(v_hat_max) + eps)
            return
        if self.hyper["amsgrad"]:  # torch: the running maximum of v replaces v
            v_max = self.slot(name, "v_max", p)
            np.maximum(v_max, v, out=v_max)
            v = v_max
        if self.conventions["adam_epsilon"] == "keras":
            # NOTE: Keras folds both corrections into the step size, so its epsilon is
            # added to sqrt(v), not sqrt(v_hat): "epsilon hat" of the paper's section 2.
            # MXNet computes this step size in Python and rounds it whole to float32.
            step = self.attr(lr * math.sqrt(correction_2) / correction_1)
            p -= step * m / (np.sqrt(v) + eps)
        else:
            p -= self.attr(lr) * (m / correction_1) / (np.sqrt(v / correction_2) + eps)


class AdamW(Adam):
    """Decoupled weight decay p -= lr*wd*p (on the parameter before the step), then Adam."""

    hyperparameters = ("learning_rate", "weight_decay", "beta_1", "beta_2", "epsilon",
                       "amsgrad")

    def step(self, name, p, g):
        wd = self.f32(self.hyper["weight_decay"])  # Keras casts it
        p -= (self.hyper["learning_rate"] * wd) * p
        super().step(name, p, g)


class RMSprop(Optimizer):
    """v = rho*v + (1-rho)*g^2; p -= lr * g / (sqrt(v) + eps); centered subtracts a^2."""

    hyperparameters = ("learning_rate", "rho", "momentum", "epsilon", "centered")

    def step(self, name, p, g):
        # MXNet: rmsprop_update's lr, gamma1, epsilon (rmspropalex_update's gamma2 too)
        lr, rho, mom, eps = (self.attr(self.hyper[k]) for k in ("learning_rate", "rho",
                                                                  "momentum", "epsilon"))
        v = self.slot(name, "square_avg", p)
        v *= rho
        v += (1.0 - rho) * (g * g)
        var = v
        if self.hyper["centered"]:
            a = self.slot(name, "grad_avg", p)
            a *= rho
            a += (1.0 - rho) * g
            var = v - a * a
        keras = self.conventions["rmsprop_epsilon"] == "inside_sqrt"
        denom = np.sqrt(var + eps) if keras else np.sqrt(var) + eps
        if mom == 0.0:
            p -= lr * g / denom
            return
        buf = self.slot(name, "momentum_buffer", p)
        buf *= mom
        if keras:  # Keras keeps the learning rate inside the buffer
            buf += lr * g / denom
            p -= buf
        else:
            buf += g / denom
            p -= lr * buf


class Adagrad(Optimizer):
    """acc = initial + sum of g^2; p -= lr * g / (sqrt(acc) + eps)."""

    hyperparameters = ("learning_rate", "initial_accumulator_value", "epsilon")

    def step(self, name, p, g):
        lr, eps = self.hyper["learning_rate"], self.hyper["epsilon"]
        # Keras fills its accumulator through initializers.Constant, which casts the value
        initial = self.f32(self.hyper["initial_accumulator_value"])
        acc = self.slot(name, "sum", p, fill=initial)
        acc += g * g
        if self.conventions["adagrad_epsilon"] == "inside_sqrt":
            p -= lr * g / np.sqrt(acc + eps)
        else:
            p -= lr * g / (np.sqrt(acc) + eps)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}


def get(name: str, hyper: Mapping[str, float | bool],
        conventions: Mapping[str, str] | None = None) -> Optimizer:
    """A fresh optimizer ``name`` with the spec's hyperparameters ``hyper``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](hyper, conventions)
