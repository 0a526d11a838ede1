"""Optimizers: a registry of update rules, the published (and torch) formulas.

Every hyperparameter comes from ``spec.optimizer.params`` (names as in
``suite.catalogue.OPTIMIZERS``). ``update(params, grads)`` changes the arrays of
``params`` in place; state lives per parameter name and starts at zero.
``update_flat`` does the same, with the same numbers, on parameters held as views of one
flat array (the trainer's fast path: cache-sized blocks, and for a large plain SGD
step NumPy's BLAS on its threads); that machinery is the base's,
:mod:`backends.reference.optimizer_base`.

Each rule here is a small whole formula, ``formula(opt, name, p, g)``, as optax writes
``scale_by_adam`` and ``scale_by_amsgrad``: a convention (see
``backends.reference.CONVENTIONS``) swaps in a framework's own formula, chosen by a table
keyed by the convention's value. Arithmetic stays in the parameters' dtype:
hyperparameters are Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from backends.reference import CONVENTIONS
from backends.reference.optimizer_base import BLOCK, Formula, Optimizer

__all__ = ["BLOCK", "OPTIMIZERS", "Formula", "Optimizer", "get"]

# ---------------------------------------------------------------------------- SGD
# These read the constants SGD.choose sets: opt.lr, opt.mu (rounded as the framework
# holds them) and opt.nesterov.


def sgd(opt: SGD, name, p, g):
    """Plain SGD, momentum 0 (every framework): p -= lr * g."""
    # NOTE: scaled(g, lr) is the product lr * g without a temporary: the same numbers
    p -= opt.scaled(g, opt.lr)


def sgd_momentum_torch(opt: SGD, name, p, g):
    """torch (torch/optim/sgd.py), the published form: buf = mu*buf + g; p -= lr*buf
    (nesterov: p -= lr*(g + mu*buf)). TensorFlow's ResourceApplyMomentum too."""
    lr, mu = opt.lr, opt.mu
    buf = opt.slot(name, "momentum_buffer", p)
    buf *= mu
    buf += g
    p -= (lr * (g + mu * buf)) if opt.nesterov else opt.scaled(buf, lr)


def sgd_velocity_keras(opt: SGD, name, p, g):
    """Keras (keras/src/optimizers/sgd.py, update_step): v = mu*v - lr*g; p += v
    (nesterov: p += mu*v - lr*g). v = -lr * buf for a constant lr. MXNet's SGDMomKernel
    (src/operator/optimizer_op-inl.h) and NAG too."""
    lr, mu = opt.lr, opt.mu
    v = opt.slot(name, "velocity", p)  # v = -lr * buf for a constant lr
    v *= mu
    lr_g = opt.scaled(g, lr)
    v -= lr_g
    if opt.nesterov:
        p += mu * v - lr_g
    else:
        p += v


#: sgd_momentum -> SGD's formula with momentum (momentum 0: :func:`sgd`)
SGD_MOMENTUM: dict[str, Formula] = {"torch": sgd_momentum_torch, "keras": sgd_velocity_keras}

# ---------------------------------------------------------------------------- Adam


def _moments(opt: Optimizer, name, p, g):
    """m = b1*m + (1-b1)*g and v = b2*v + (1-b2)*g^2, in place; returns m, v and the bias
    corrections 1 - b1^t, 1 - b2^t."""
    b1, b2 = opt.hyper["beta_1"], opt.hyper["beta_2"]
    # NOTE: MXNet's adam_update holds beta1, beta2 and epsilon as float attributes for
    # the moving averages and the denominator; its bias corrections (Python) are exact.
    b1_op, b2_op = opt.attr(b1), opt.attr(b2)
    m, v = opt.slot(name, "m", p), opt.slot(name, "v", p)
    m *= b1_op
    m += (1.0 - b1_op) * g
    v *= b2_op
    v += (1.0 - b2_op) * (g * g)
    # NOTE: Keras casts beta_1 and beta_2 (ops.cast(self.beta_1, dtype)) for the bias
    # corrections only; its moving averages use the Python floats 1 - beta.
    b1_hat, b2_hat = (opt.f32(b) for b in (b1, b2))
    return m, v, 1.0 - b1_hat ** opt.t, 1.0 - b2_hat ** opt.t


def _epsilon_hat_step_size(opt: Optimizer, correction_1: float, correction_2: float) -> float:
    """lr * sqrt(1 - b2^t) / (1 - b1^t): both corrections folded into the step size."""
    # NOTE: Keras folds both corrections into the step size, so its epsilon is
    # added to sqrt(v), not sqrt(v_hat): "epsilon hat" of the paper's section 2.
    # MXNet computes this step size in Python and rounds it whole to float32.
    return opt.attr(opt.hyper["learning_rate"] * math.sqrt(correction_2) / correction_1)


def adam(opt: Optimizer, name, p, g):
    """Adam as published (Kingma & Ba, algorithm 1) and in torch (torch/optim/adam.py):
    m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t); p -= lr * m_hat / (sqrt(v_hat) + eps)."""
    m, v, correction_1, correction_2 = _moments(opt, name, p, g)
    lr, eps = opt.attr(opt.hyper["learning_rate"]), opt.attr(opt.hyper["epsilon"])
    p -= lr * (m / correction_1) / (np.sqrt(v / correction_2) + eps)


def adam_epsilon_hat(opt: Optimizer, name, p, g):
    """Keras (keras/src/optimizers/adam.py, update_step), MXNet (python/mxnet/optimizer/
    optimizer.py, Adam.update; AdamUpdateKernel) and TensorFlow (ApplyAdamNonCuda):
    p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)."""
    m, v, correction_1, correction_2 = _moments(opt, name, p, g)
    eps = opt.attr(opt.hyper["epsilon"])
    step = _epsilon_hat_step_size(opt, correction_1, correction_2)
    p -= step * m / (np.sqrt(v) + eps)


def amsgrad(opt: Optimizer, name, p, g):
    """AMSGrad in torch (torch/optim/adam.py, amsgrad=True): the running maximum of v
    replaces v; p -= lr * m_hat / (sqrt(max(v) / (1 - b2^t)) + eps)."""
    m, v, correction_1, correction_2 = _moments(opt, name, p, g)
    lr, eps = opt.attr(opt.hyper["learning_rate"]), opt.attr(opt.hyper["epsilon"])
    v_max = opt.slot(name, "v_max", p)
    np.maximum(v_max, v, out=v_max)
    p -= lr * (m / correction_1) / (np.sqrt(v_max / correction_2) + eps)


def amsgrad_epsilon_hat(opt: Optimizer, name, p, g):
    """AMSGrad in Keras (keras/src/optimizers/adam.py, amsgrad) and TensorFlow
    (ApplyAdamWithAmsgrad): the running maximum of v in the epsilon-hat form,
    p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(max(v)) + eps)."""
    m, v, correction_1, correction_2 = _moments(opt, name, p, g)
    eps = opt.attr(opt.hyper["epsilon"])
    v_max = opt.slot(name, "v_max", p)
    np.maximum(v_max, v, out=v_max)
    step = _epsilon_hat_step_size(opt, correction_1, correction_2)
    p -= step * m / (np.sqrt(v_max) + eps)


def amsgrad_v_hat_max(opt: Optimizer, name, p, g):
    """AMSGrad in optax (optax/_src/transform.py, scale_by_amsgrad): the running maximum
    of v_hat = v / (1 - b2^t); p -= lr * m_hat / (sqrt(max(v_hat)) + eps). optax has no
    epsilon-hat form: this formula stands for either adam_epsilon."""
    m, v, correction_1, correction_2 = _moments(opt, name, p, g)
    lr, eps = opt.hyper["learning_rate"], opt.attr(opt.hyper["epsilon"])
    # NOTE: optax keeps the maximum of v_hat = v / (1 - b2^t); torch and Keras keep
    # the maximum of v and correct it afterwards. They differ once the correction
    # shrinks between a step that set the maximum and a later one.
    v_hat_max = opt.slot(name, "v_hat_max", p)
    np.maximum(v_hat_max, v / correction_2, out=v_hat_max)
    p -= lr * (m / correction_1) / (np.sqrt(v_hat_max) + eps)


#: adam_epsilon -> Adam's formula (amsgrad False)
ADAM: dict[str, Formula] = {"paper": adam, "keras": adam_epsilon_hat}
#: amsgrad_max -> adam_epsilon -> AMSGrad's formula (amsgrad True)
AMSGRAD: dict[str, dict[str, Formula]] = {
    "raw": {"paper": amsgrad, "keras": amsgrad_epsilon_hat},
    "bias_corrected": dict.fromkeys(CONVENTIONS["adam_epsilon"], amsgrad_v_hat_max),
}

# ---------------------------------------------------------------------------- RMSprop


def _rmsprop_constants(opt: Optimizer) -> tuple[float, float, float, float]:
    """lr, rho, momentum and epsilon, as the formulas hold them."""
    # MXNet: rmsprop_update's lr, gamma1, epsilon (rmspropalex_update's gamma2 too)
    return tuple(opt.attr(opt.hyper[k]) for k in ("learning_rate", "rho", "momentum",
                                                    "epsilon"))


def _rmsprop_variance(opt: Optimizer, name, p, g, rho: float) -> np.ndarray:
    """v = rho*v + (1-rho)*g^2 in place; centered: also a = rho*a + (1-rho)*g, and
    v - a^2 is returned instead of v."""
    v = opt.slot(name, "square_avg", p)
    v *= rho
    v += (1.0 - rho) * (g * g)
    if not opt.hyper["centered"]:
        return v
    a = opt.slot(name, "grad_avg", p)
    a *= rho
    a += (1.0 - rho) * g
    return v - a * a


def rmsprop_epsilon_outside(opt: Optimizer, name, p, g):
    """torch (torch/optim/rmsprop.py), the published form: denom = sqrt(v) + eps;
    p -= lr * g / denom; with momentum buf = mom*buf + g/denom, p -= lr*buf."""
    lr, rho, mom, eps = _rmsprop_constants(opt)
    denom = np.sqrt(_rmsprop_variance(opt, name, p, g, rho)) + eps
    if mom == 0.0:
        p -= lr * g / denom
        return
    buf = opt.slot(name, "momentum_buffer", p)
    buf *= mom
    buf += g / denom
    p -= lr * buf


def rmsprop_epsilon_inside(opt: Optimizer, name, p, g):
    """Keras (keras/src/optimizers/rmsprop.py, update_step), TensorFlow (ApplyRMSProp,
    ApplyCenteredRMSProp) and MXNet (RMSPropUpdate, RMSPropAlexUpdate):
    denom = sqrt(v + eps); p -= lr * g / denom; with momentum the learning rate is inside
    the buffer, buf = mom*buf + lr*g/denom, p -= buf."""
    lr, rho, mom, eps = _rmsprop_constants(opt)
    denom = np.sqrt(_rmsprop_variance(opt, name, p, g, rho) + eps)
    if mom == 0.0:
        p -= lr * g / denom
        return
    buf = opt.slot(name, "momentum_buffer", p)
    buf *= mom
    buf += lr * g / denom  # Keras keeps the learning rate inside the buffer
    p -= buf


#: rmsprop_epsilon -> RMSprop's formula
RMSPROP: dict[str, Formula] = {"outside_sqrt": rmsprop_epsilon_outside,
                               "inside_sqrt": rmsprop_epsilon_inside}

# ---------------------------------------------------------------------------- Adagrad


def _accumulate(opt: Optimizer, name, p, g) -> np.ndarray:
    """acc = initial + sum of g^2, in place."""
    # Keras fills its accumulator through initializers.Constant, which casts the value
    initial = opt.f32(opt.hyper["initial_accumulator_value"])
    acc = opt.slot(name, "sum", p, fill=initial)
    acc += g * g
    return acc


def adagrad_epsilon_outside(opt: Optimizer, name, p, g):
    """torch (torch/optim/adagrad.py), the published form, and TensorFlow
    (ResourceApplyAdagradV2): p -= lr * g / (sqrt(acc) + eps)."""
    lr, eps = opt.hyper["learning_rate"], opt.hyper["epsilon"]
    acc = _accumulate(opt, name, p, g)
    p -= lr * g / (np.sqrt(acc) + eps)


def adagrad_epsilon_inside(opt: Optimizer, name, p, g):
    """Keras (keras/src/optimizers/adagrad.py, update_step), MXNet (python/mxnet/optimizer/
    optimizer.py, AdaGrad.update) and optax (optax/_src/transform.py, scale_by_rss):
    p -= lr * g / sqrt(acc + eps)."""
    lr, eps = opt.hyper["learning_rate"], opt.hyper["epsilon"]
    acc = _accumulate(opt, name, p, g)
    p -= lr * g / np.sqrt(acc + eps)


#: adagrad_epsilon -> Adagrad's formula
ADAGRAD: dict[str, Formula] = {"outside_sqrt": adagrad_epsilon_outside,
                               "inside_sqrt": adagrad_epsilon_inside}

# ---------------------------------------------------------------------------- optimizers


class SGD(Optimizer):
    """torch: buf = mu*buf + g; p -= lr*buf (nesterov: p -= lr*(g + mu*buf))."""

    hyperparameters = ("learning_rate", "momentum", "nesterov")

    def choose(self):
        # Keras: ops.cast(self.momentum, dtype); MXNet: sgd_update, sgd_mom_update and
        # nag_mom_update hold lr and momentum as float attributes
        self.mu = self.attr(self.f32(self.hyper["momentum"]))
        self.lr = self.attr(self.hyper["learning_rate"])
        self.nesterov = self.hyper["nesterov"]
        if self.mu == 0.0:
            return sgd
        return SGD_MOMENTUM[self.conventions["sgd_momentum"]]

    def flat_step(self, p, g):
        return self.mu == 0.0 and self.descend_on_blas(p, g, self.lr)


class Adam(Optimizer):
    """m, v: moving averages of g and g^2; p -= lr * m_hat / (sqrt(v_hat) + eps)."""

    hyperparameters = ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad")

    def choose(self):
        epsilon = self.conventions["adam_epsilon"]
        if self.hyper["amsgrad"]:
            return AMSGRAD[self.conventions["amsgrad_max"]][epsilon]
        return ADAM[epsilon]


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

    def choose(self):
        return RMSPROP[self.conventions["rmsprop_epsilon"]]


class Adagrad(Optimizer):
    """acc = initial + sum of g^2; p -= lr * g / (sqrt(acc) + eps)."""

    hyperparameters = ("learning_rate", "initial_accumulator_value", "epsilon")

    def choose(self):
        return ADAGRAD[self.conventions["adagrad_epsilon"]]


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
