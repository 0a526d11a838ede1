"""What the Theano and PyTensor backends share (PyTensor is Theano's fork): the update
rules, written as symbolic updates on shared state, and a trainer that runs the contract
on compiled functions of a symbolic graph.

Neither framework is imported here (Theano's environment cannot import pytensor, the
main one cannot import theano): a backend passes in its framework module (``theano`` or
``pytensor``: ``shared``, ``grad``) and its tensor module (``theano.tensor`` or
``pytensor.tensor``), whose functions used here are the same in both. Standard library
and NumPy only, importable with NumPy 1.23 (Theano's) and 2.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import Batch, Params, Trainer, canonical_params, cycled, dense_names

if TYPE_CHECKING:
    from suite.spec import Spec


# ---------------------------------------------------------------------------- update rules


class UpdateRule:
    """A symbolic update rule: called with the parameters and their gradients, it returns
    (shared variable, new value) pairs for ``updates=``, the published formula (the
    reference's) with every hyperparameter a constant ``c(value)`` in the run's dtype.

    The state is shared variables of the run's dtype (``fill`` to start), made once per
    name: called again with other gradients (apply_grads's inputs), a rule builds the same
    formulas on the same state as train_step's.

    ``float64_count``: Adam's step count and bias corrections in float64 (Theano's
    backend), else in the run's dtype (PyTensor's)."""

    def __init__(self, shared: Callable, tensor, c: Callable, hyper: dict, dtype: np.dtype,
                 float64_count: bool):
        self.make_shared, self.tensor, self.c, self.hyper = shared, tensor, c, hyper
        self.dtype, self.float64_count = dtype, float64_count
        self.state: list[Any] = []  # every shared state variable, for the dtype checks
        self._named: dict[str, Any] = {}  # the same, by name

    def _shared(self, name: str, value):
        if name not in self._named:
            self._named[name] = self.make_shared(value, name=name)
            self.state.append(self._named[name])
        return self._named[name]

    def slot(self, param, name: str, fill: float = 0.0):
        value = np.full_like(param.get_value(borrow=True), fill, dtype=self.dtype)
        return self._shared(f"{param.name}/{name}", value)

    def step_count(self) -> tuple[Any, Any]:
        """(count, t): the shared number of updates so far, and t = count + 1, the number
        of this update (1 first, as the reference's)."""
        if self.float64_count:
            count = self._shared("t", np.float64(0.0))
            return count, count + np.float64(1.0)
        count = self._shared("t", np.asarray(0.0, dtype=self.dtype))
        return count, count + self.c(1.0)

    def bias_correction(self, beta: float, t):
        """1 - beta ** t, in the run's dtype."""
        if self.float64_count:
            # NOTE: the bias corrections in float64 from the float64 step count, then cast,
            # as the reference's Python floats 1 - beta ** t meet a float32 array.
            return self.tensor.cast(1.0 - np.float64(beta) ** t, str(self.dtype))
        return self.c(1.0) - self.c(beta) ** t

    def __call__(self, params: list, grads: list) -> list[tuple[Any, Any]]:
        raise NotImplementedError


class SGD(UpdateRule):
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


class Adam(UpdateRule):
    """m, v: moving averages of g and g^2; p -= lr * m_hat / (sqrt(v_hat) + eps); AMSGrad
    keeps the running maximum of v (torch's form) in place of v."""

    decay = False

    def __call__(self, params, grads):
        tensor, c, h = self.tensor, self.c, self.hyper
        lr, b1, b2, eps = (h[k] for k in ("learning_rate", "beta_1", "beta_2", "epsilon"))
        count, t = self.step_count()
        correction_1, correction_2 = self.bias_correction(b1, t), self.bias_correction(b2, t)
        updates = [(count, t)]
        for p, g in zip(params, grads, strict=True):
            m, v = self.slot(p, "m"), self.slot(p, "v")
            new_m = c(b1) * m + c(1.0 - b1) * g
            new_v = c(b2) * v + c(1.0 - b2) * (g * g)
            updates += [(m, new_m), (v, new_v)]
            if h["amsgrad"]:
                v_max = self.slot(p, "v_max")
                new_v = tensor.maximum(v_max, new_v)
                updates.append((v_max, new_v))
            # decoupled weight decay on the parameter before the step (AdamW)
            start = p - c(lr * h["weight_decay"]) * p if self.decay else p
            step = c(lr) * (new_m / correction_1) / (tensor.sqrt(new_v / correction_2) + c(eps))
            updates.append((p, start - step))
        return updates


class AdamW(Adam):
    decay = True


class RMSprop(UpdateRule):
    """v = rho*v + (1-rho)*g^2; p -= lr * g / (sqrt(v) + eps); centered subtracts a^2;
    momentum: buf = mom*buf + g/denom, p -= lr*buf (torch's form)."""

    def __call__(self, params, grads):
        tensor, c, h = self.tensor, self.c, self.hyper
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
            denom = tensor.sqrt(var) + c(eps)
            if mom == 0.0:
                updates.append((p, p - c(lr) * g / denom))
                continue
            buf = self.slot(p, "momentum_buffer")
            new_buf = c(mom) * buf + g / denom
            updates += [(buf, new_buf), (p, p - c(lr) * new_buf)]
        return updates


class Adagrad(UpdateRule):
    """acc = initial + sum of g^2; p -= lr * g / (sqrt(acc) + eps)."""

    def __call__(self, params, grads):
        tensor, c, h = self.tensor, self.c, self.hyper
        updates = []
        for p, g in zip(params, grads, strict=True):
            acc = self.slot(p, "sum", fill=h["initial_accumulator_value"])
            new_acc = acc + g * g
            step = c(h["learning_rate"]) * g / (tensor.sqrt(new_acc) + c(h["epsilon"]))
            updates += [(acc, new_acc), (p, p - step)]
        return updates


OPTIMIZERS: dict[str, type[UpdateRule]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}


# ---------------------------------------------------------------------------- trainer


class SymbolicTrainer(Trainer):
    """Shared kernels and biases, a symbolic loss and its gradients, and the compiled
    functions of the contract, each compiled on first use (the kit builds many trainers
    and calls few functions).

    A backend's subclass names its registries (activations and losses: name -> (tensor,
    c, params) -> function; fused outputs: name -> (tensor, logits) -> output; update
    rules: name -> UpdateRule subclass), makes constants (``c``) and compiles
    (``_compile``)."""

    activations: dict[str, Callable]
    fused_outputs: dict[str, Callable]
    losses: dict[str, Callable]
    optimizers: dict[str, type[UpdateRule]]
    float64_count: bool  # see UpdateRule
    # the keys of ``_compiled`` holding train_step's and apply_grads's functions
    train_key, apply_key = "train_step", "apply_grads"

    def __init__(self, framework, tensor, spec: Spec, params: Params, dtype: str,
                 device: str = "cpu"):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"expected dtype float32 or float64. Received: {dtype!r}")
        if device != "cpu":
            raise ValueError(f"expected device cpu. Received: {device!r}")
        self.framework, self.tensor, self.spec = framework, tensor, spec
        self.dtype = np.dtype(dtype)
        self.sparse = spec.loss.name == "sparse_categorical_crossentropy"
        self.names = dense_names(len(spec.layers))
        self.shared = [framework.shared(value, name=name)
                       for name, value in canonical_params(spec, params, self.dtype).items()]
        self._compiled: dict[str, Any] = {}
        with self._graph_flags():
            self.x = tensor.matrix("x", dtype=dtype)
            self.y = (tensor.vector("y", dtype="int64") if self.sparse
                      else tensor.matrix("y", dtype=dtype))
            logits = self._logits(self.x)
            self.outputs = self._output(logits)
            self.loss = self._objective(logits if spec.fused_output else self.outputs, self.y)
            self.grads = framework.grad(self.loss, self.shared)
            self.optimizer = self.optimizers[spec.optimizer.name](
                framework.shared, tensor, self.c, spec.optimizer.params, self.dtype,
                self.float64_count)

    # ------------------------------------------------------------------ the backend's part

    @abc.abstractmethod
    def c(self, value: float):
        """``value`` as a constant in the run's dtype (never a Python float, which the
        framework would cast)."""

    def _graph_flags(self) -> contextlib.AbstractContextManager:
        """The framework's settings while graphs are built and compiled."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def _compile(self, inputs: list, outputs, updates: list):
        """The framework's compiled function of ``inputs`` with these updates."""

    # ------------------------------------------------------------------ graph

    def _logits(self, x):
        """The last layer's pre-activation (the logits of a fused output)."""
        h = x
        layers = self.spec.layers
        for i, layer in enumerate(layers):
            h = self.tensor.dot(h, self.shared[2 * i]) + self.shared[2 * i + 1]
            if i < len(layers) - 1:
                act = layer.activation
                h = self.activations[act.name](self.tensor, self.c, act.params)(h)
        return h

    def _output(self, logits):
        last = self.spec.layers[-1].activation
        if self.spec.fused_output:
            return self.fused_outputs[last.name](self.tensor, logits)
        return self.activations[last.name](self.tensor, self.c, last.params)(logits)

    def _objective(self, z, y):
        """The loss of ``z`` (logits for a fused output) plus the L2 penalties."""
        spec, tensor = self.spec, self.tensor
        value = self.losses[spec.loss.name](tensor, self.c, spec.loss.params)(z, y)
        for i, layer in enumerate(spec.layers):
            if layer.kernel_l2 > 0:
                # Keras semantics: the penalty is part of the loss (not weight decay).
                value = value + self.c(layer.kernel_l2) * tensor.sum(
                    tensor.sqr(self.shared[2 * i]))
        return value

    def _function(self, key: str):
        """The compiled function ``key`` (train_key, "loss_and_grads", "predict" or
        apply_key), compiled once, on first use."""
        if key not in self._compiled:
            with self._graph_flags():
                if key == self.apply_key:
                    # train_step's rules on the same state, the gradients as inputs
                    grads = [g.type(name=f"{p.name}/grad")
                             for p, g in zip(self.shared, self.grads, strict=True)]
                    inputs, outputs, updates = grads, [], self.optimizer(self.shared, grads)
                elif key == self.train_key:
                    inputs, outputs = [self.x, self.y], self.loss
                    updates = self.optimizer(self.shared, self.grads)
                else:
                    inputs, outputs, updates = {
                        "loss_and_grads": ([self.x, self.y], [self.loss, *self.grads], []),
                        "predict": ([self.x], self.outputs, []),
                    }[key]
                self._compiled[key] = self._compile(inputs, outputs, updates)
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
        return float(self._function(self.train_key)(self._x(x), self._y(y)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.array(self._function("predict")(self._x(x)), copy=True)

    def get_params(self) -> Params:
        return {var.name: var.get_value(borrow=False) for var in self.shared}

    def set_params(self, params: Params) -> None:
        checked = canonical_params(self.spec, params, self.dtype)  # fresh arrays: borrowed
        for var in self.shared:
            var.set_value(checked[var.name], borrow=True)

    def apply_grads(self, grads: Params) -> None:
        self._function(self.apply_key)(*(np.ascontiguousarray(grads[name], dtype=self.dtype)
                                         for name in self.names))

    def fast_step(self, batches: Sequence[Batch]) -> Callable[[], None]:
        cycle = cycled(batches, lambda x, y: (self._x(x), self._y(y)))
        function, key = self._function, self.train_key

        def step() -> None:
            x, y = next(cycle)
            train = function(key)  # train_step's function; compiled on the first call
            # The inputs already have the graph's dtypes: skip the framework's input checks
            # for this call only, so that train_step keeps them.
            train.trust_input = True
            try:
                train(x, y)  # runs on the host: finished when it returns
            finally:
                train.trust_input = False

        return step
