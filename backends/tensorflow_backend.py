"""TensorFlow without Keras: tf.Variable kernels and biases, tf.nn activations and losses,
tf.GradientTape, and TensorFlow's own training kernels (``tf.raw_ops.ResourceApply*``),
one compiled ``tf.function`` per training step.

Every hyperparameter of the spec is passed explicitly, as a tensor of the run's dtype
(a float64 run stays float64: no Python float goes through a float32 cast). TensorFlow
is imported in :meth:`TensorflowBackend.load` only; the registries below take the
imported ``tf`` module as their first argument. The optimizers, TensorFlow's training
kernels, are in ``backends.tensorflow_optimizers``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import (
    Backend,
    Batch,
    Params,
    Trainer,
    canonical_params,
    cycled,
    dense_names,
    installed_distribution,
)
from backends.tensorflow_optimizers import OPTIMIZERS

if TYPE_CHECKING:
    from suite.spec import Spec


def _elu(tf, p: dict, dtype) -> Callable:
    # tf.nn.elu has no alpha: for alpha != 1, alpha * expm1(z) on the negative side.
    if p["alpha"] == 1.0:
        return tf.nn.elu
    alpha = tf.constant(p["alpha"], dtype)
    # expm1 of min(z, 0) only: large positive z never overflows in the unused branch.
    return lambda z: tf.where(z > 0, z, alpha * tf.math.expm1(tf.minimum(z, 0)))


# name -> (tf, activation params, dtype) -> callable on pre-activations.
ACTIVATIONS: dict[str, Callable[[Any, dict, Any], Callable]] = {
    "linear": lambda tf, p, d: tf.identity,
    "relu": lambda tf, p, d: tf.nn.relu,
    # NOTE: alpha is a 32-bit float attribute of the LeakyRelu op: float32(negative_slope)
    # even in a float64 run (ledger: tensorflow-float32-leaky-relu).
    "leaky_relu": lambda tf, p, d: lambda z: tf.nn.leaky_relu(z, alpha=p["negative_slope"]),
    "elu": _elu,
    "sigmoid": lambda tf, p, d: tf.math.sigmoid,
    "tanh": lambda tf, p, d: tf.math.tanh,
    # NOTE: tf.math.softplus returns z where z > -(log(eps) + 2) and exp(z) where
    # z < log(eps) + 2 (eps: the dtype's machine epsilon; 13.9 in float32, 34.0 in float64).
    "softplus": lambda tf, p, d: tf.math.softplus,
    # NOTE: tf.nn.gelu casts 0.7071067811865476 (exact) and 0.044715 (tanh form) from
    # Python floats through float32 (ledger: tensorflow-float32-gelu, -gelu-tanh).
    "gelu": lambda tf, p, d: lambda z: tf.nn.gelu(z, approximate=False),
    "gelu_tanh": lambda tf, p, d: lambda z: tf.nn.gelu(z, approximate=True),
}

# Output activation applied by predict() when it is fused into a from-logits loss.
FUSED_OUTPUTS: dict[str, Callable[[Any, Any], Any]] = {
    "sigmoid": lambda tf, z: tf.math.sigmoid(z),
    "softmax": lambda tf, z: tf.nn.softmax(z, axis=-1),
}


def _huber(tf, p: dict, dtype) -> Callable:
    # tf.compat.v1.losses.huber_loss casts to float32: written here from tf ops instead.
    delta = tf.constant(p["delta"], dtype)
    half = tf.constant(0.5, dtype)

    def loss(z, y):
        r = tf.abs(z - y)
        return tf.reduce_mean(tf.where(r <= delta, half * r * r, delta * (r - half * delta)))

    return loss


# name -> (tf, loss params, dtype) -> loss(z, y): the mean over the batch (mse, mae, huber
# and binary cross-entropy: over all elements); cross-entropies take logits z.
LOSSES: dict[str, Callable[[Any, dict, Any], Callable]] = {
    "mse": lambda tf, p, d: lambda z, y: tf.reduce_mean(tf.math.squared_difference(z, y)),
    "mae": lambda tf, p, d: lambda z, y: tf.reduce_mean(tf.abs(z - y)),
    "huber": _huber,
    "binary_crossentropy": lambda tf, p, d: lambda z, y: tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z)),
    # probability targets of shape (batch, classes)
    "categorical_crossentropy": lambda tf, p, d: lambda z, y: tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z, axis=-1)),
    # int64 class indices of shape (batch,)
    "sparse_categorical_crossentropy": lambda tf, p, d: lambda z, y: tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z)),
}


# ---------------------------------------------------------------------------- backend


class TensorflowBackend(Backend):
    """Raw TensorFlow 2 (tf.function, GradientTape, tf.raw_ops training kernels); no Keras."""

    name = "tensorflow"
    requires = (installed_distribution("tensorflow", "tensorflow-cpu"),)
    extra = "tensorflow"
    devices = ("cpu", "cuda")
    repro = "backends.repro.tensorflow"

    def __init__(self) -> None:
        self._tf: Any = None

    def load(self, threads: int) -> None:
        import tensorflow as tf

        set_tensorflow_threads(tf, threads)
        # A correctness tool: no TF32 shortcuts in float32 matrix products on a GPU.
        tf.config.experimental.enable_tensor_float_32_execution(False)
        self._tf = tf

    def versions(self) -> dict[str, str]:
        return {"tensorflow": str(self._require().__version__)}

    def runtime_settings(self) -> dict[str, object]:
        return tensorflow_settings(self._require())

    def supports(self, feature: str) -> bool | str:
        if feature == "device:cuda" and not self._require().config.list_physical_devices("GPU"):
            return "TensorFlow sees no GPU (tensorflow-cpu, or no CUDA device)"
        return super().supports(feature)

    def build(self, spec: Spec, params: Params, dtype: str, device: str) -> Trainer:
        return TensorflowTrainer(self._require(), spec, params, dtype, device)

    def _require(self):
        if self._tf is None:
            raise RuntimeError("TensorflowBackend.load() must be called before use")
        return self._tf


def set_tensorflow_threads(tf, threads: int) -> None:
    """Pin the intra-op pool (and the inter-op pool where TensorFlow still allows it)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        # TensorFlow fixes the pool when its runtime starts; a second load() may only agree.
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            raise RuntimeError(f"TensorFlow already runs with {current} intra-op threads; "
                               f"cannot change to {threads} in this process") from None
    try:
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # TensorFlow's runtime started earlier in this process: the inter-op pool only runs
        # independent ops side by side, so the intra-op count above is what fixes the
        # arithmetic's thread count.
        pass


def tensorflow_settings(tf) -> dict[str, object]:
    """TensorFlow's own report of its thread pools and of TF32 (also used by Keras on it).

    0 means "TensorFlow chooses" (the schedulable cores).
    """
    threading = tf.config.threading
    return {
        "tensorflow.intra_op_parallelism_threads":
            int(threading.get_intra_op_parallelism_threads()),
        "tensorflow.inter_op_parallelism_threads":
            int(threading.get_inter_op_parallelism_threads()),
        "tensorflow.tensor_float_32_execution":
            bool(tf.config.experimental.tensor_float_32_execution_enabled()),
    }


class TensorflowTrainer(Trainer):
    """Dense layers as tf.Variables, a loss, and an optimizer of native training kernels."""

    def __init__(self, tf, spec: Spec, params: Params, dtype: str, device: str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"expected dtype float32 or float64. Received: {dtype!r}")
        self.tf, self.spec = tf, spec
        self.dtype = tf.as_dtype(dtype)
        self.np_dtype = np.dtype(dtype)
        self.device = {"cpu": "/CPU:0", "cuda": "/GPU:0"}[device]
        self.sparse = spec.loss.name == "sparse_categorical_crossentropy"
        last = len(spec.layers) - 1
        with tf.device(self.device):
            self.variables = _variables(tf, spec, params, self.dtype)
            self.activations = [
                tf.identity if i == last and spec.fused_output else ACTIVATIONS[
                    layer.activation.name](tf, layer.activation.params, self.dtype)
                for i, layer in enumerate(spec.layers)]
            self.loss_fn = LOSSES[spec.loss.name](tf, spec.loss.params, self.dtype)
            # Keras semantics: the penalty is part of the loss (not weight decay).
            self.l2 = [(self.variables[2 * i], tf.constant(layer.kernel_l2, self.dtype))
                       for i, layer in enumerate(spec.layers) if layer.kernel_l2 > 0]
            opt = spec.optimizer
            self.optimizer = OPTIMIZERS[opt.name](tf, self.variables, opt.params, self.dtype)
        self.names = dense_names(len(spec.layers))
        x_spec = tf.TensorSpec((None, spec.input_dim), self.dtype)
        y_spec = (tf.TensorSpec((None,), tf.int64) if self.sparse
                  else tf.TensorSpec((None, spec.layers[-1].units), self.dtype))
        # One trace each (fixed signatures). No XLA, so the kernels are TensorFlow's own; no
        # AutoGraph, as no Python control flow here depends on a tensor.
        options = dict(jit_compile=False, autograph=False)
        self._gradients = tf.function(self._placed(self._loss_and_grads),
                                      input_signature=[x_spec, y_spec], **options)
        self._step = tf.function(self._placed(self._train_step),
                                 input_signature=[x_spec, y_spec], **options)
        self._outputs = tf.function(self._placed(self._predict), input_signature=[x_spec],
                                    **options)
        # train_step's update alone, traced once as its step is (the same kernels).
        grads_spec = [tf.TensorSpec(v.shape, self.dtype) for v in self.variables]
        self._apply = tf.function(self._placed(self.optimizer.apply),
                                  input_signature=[grads_spec], **options)

    # ------------------------------------------------------------------ graph functions

    def _placed(self, function: Callable) -> Callable:
        """``function`` traced under the trainer's device scope: every op of the graph is
        pinned there when traced, so a call needs no device scope of its own."""

        @functools.wraps(function)
        def placed(*args):
            with self.tf.device(self.device):
                return function(*args)

        return placed

    def _logits(self, x):
        h = x
        for i, act in enumerate(self.activations):
            h = act(self.tf.matmul(h, self.variables[2 * i]) + self.variables[2 * i + 1])
        return h

    def _loss(self, x, y):
        loss = self.loss_fn(self._logits(x), y)
        for kernel, l2 in self.l2:
            loss = loss + l2 * self.tf.reduce_sum(self.tf.square(kernel))
        return loss

    def _loss_and_grads(self, x, y):
        with self.tf.GradientTape() as tape:
            loss = self._loss(x, y)
        return loss, tape.gradient(loss, self.variables)

    def _train_step(self, x, y):
        loss, grads = self._loss_and_grads(x, y)
        self.optimizer.apply(grads)
        return loss  # computed from the parameters before the update

    def _predict(self, x):
        out = self._logits(x)
        if self.spec.fused_output:
            out = FUSED_OUTPUTS[self.spec.output_activation](self.tf, out)
        return out

    # ------------------------------------------------------------------ conversions

    def _x(self, x: np.ndarray):
        # tf.identity under the trainer's device scope places the copy there (a GPU).
        return self.tf.identity(np.asarray(x, dtype=self.np_dtype))

    def _y(self, y: np.ndarray):
        return self.tf.identity(np.asarray(y, dtype=np.int64 if self.sparse else self.np_dtype))

    # ------------------------------------------------------------------ contract

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        with self.tf.device(self.device):
            loss, grads = self._gradients(self._x(x), self._y(y))
        named = {name: np.array(g.numpy()) for name, g in zip(self.names, grads, strict=True)}
        return float(loss.numpy()), named

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        with self.tf.device(self.device):
            return float(self._step(self._x(x), self._y(y)).numpy())

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self.tf.device(self.device):
            return np.array(self._outputs(self._x(x)).numpy())

    def get_params(self) -> Params:
        return {name: np.array(v.numpy()) for name, v in zip(self.names, self.variables,
                                                             strict=True)}

    def set_params(self, params: Params) -> None:
        values = canonical_params(self.spec, params, self.np_dtype)
        for name, variable in zip(self.names, self.variables, strict=True):
            variable.assign(values[name])

    def apply_grads(self, grads: Params) -> None:
        with self.tf.device(self.device):
            self._apply([self.tf.identity(np.asarray(grads[name], dtype=self.np_dtype))
                         for name in self.names])

    def fast_step(self, batches: Sequence[Batch]) -> Callable[[], None]:
        with self.tf.device(self.device):
            cycle = cycled(batches, lambda x, y: (self._x(x), self._y(y)))
        # The one trace train_step runs, called as its concrete function: the same graph,
        # without the tf.function's per-call dispatch (binding to the input signature,
        # looking up the trace), a large share of a small step; the standalone script
        # does the same (see docs/performance.md, section "TensorFlow: fast_step calls the
        # concrete function").
        train = self._step.get_concrete_function()
        on_gpu = self.device == "/GPU:0"

        def step() -> None:
            # On the CPU the call returns once its kernels have run; on a GPU they are
            # queued, and a host read of the loss waits for the queue (updates included).
            loss = train(*next(cycle))
            if on_gpu:
                loss.numpy()

        return step


def _variables(tf, spec: Spec, params: Params, dtype) -> list:
    """tf.Variables holding exactly ``params``: kernel then bias for each layer."""
    return [tf.Variable(value, name=name, trainable=True)
            for name, value in canonical_params(spec, params, dtype.as_numpy_dtype).items()]
