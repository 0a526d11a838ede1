"""Keras 3 on any of its backends: the registries, the model and the shared trainer.

Keras runs the same Sequential of Dense layers, losses and optimizers on TensorFlow,
PyTorch and JAX; what differs per backend is only how its framework is imported and
pinned, where tensors live, and how gradients are taken without an update (Keras has no
backend-neutral API for that). :class:`KerasBase` and :class:`KerasTrainer` hold the
rest; ``backends/keras_backend.py`` holds the three backends.

Every hyperparameter of the spec is passed explicitly. Keras and its framework are
imported in :meth:`KerasBase.load` only; the registries below take the imported ``keras``
module as their first argument.
"""

from __future__ import annotations

import abc
import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import Backend, Batch, Params, Trainer, canonical_params, cycled, dense_names

if TYPE_CHECKING:
    from suite.spec import Spec

# name -> (keras, activation params) -> callable for Dense(activation=...).
ACTIVATIONS: dict[str, Callable[[Any, dict], Callable]] = {
    "linear": lambda k, p: k.activations.linear,
    "relu": lambda k, p: lambda x: k.activations.relu(
        x, negative_slope=0.0, max_value=None, threshold=0.0),
    "leaky_relu": lambda k, p: lambda x: k.activations.leaky_relu(
        x, negative_slope=p["negative_slope"]),
    "elu": lambda k, p: lambda x: k.activations.elu(x, alpha=p["alpha"]),
    "sigmoid": lambda k, p: k.activations.sigmoid,
    "tanh": lambda k, p: k.activations.tanh,
    # NOTE: each backend's own softplus: tf.math.softplus returns x where x > -(log(eps) + 2)
    # and exp(x) where x < log(eps) + 2 (eps: the dtype's machine epsilon; 13.9 in float32,
    # 34.0 in float64); torch's is x itself above 20 (ledger: keras-torch-softplus-threshold);
    # jax.nn.softplus is logaddexp(x, 0).
    "softplus": lambda k, p: k.activations.softplus,
    "gelu": lambda k, p: lambda x: k.activations.gelu(x, approximate=False),
    "gelu_tanh": lambda k, p: lambda x: k.activations.gelu(x, approximate=True),
}

# Output activation applied by predict() when it is fused into a from-logits loss.
FUSED_OUTPUTS: dict[str, Callable[[Any, Any], Any]] = {
    "sigmoid": lambda k, z: k.ops.sigmoid(z),
    "softmax": lambda k, z: k.ops.softmax(z, axis=-1),
}

_MEAN = "sum_over_batch_size"

# name -> (keras, loss params, dtype) -> loss; cross-entropies take logits.
LOSSES: dict[str, Callable[[Any, dict, str], Any]] = {
    "mse": lambda k, p, d: k.losses.MeanSquaredError(reduction=_MEAN, dtype=d),
    "mae": lambda k, p, d: k.losses.MeanAbsoluteError(reduction=_MEAN, dtype=d),
    "huber": lambda k, p, d: k.losses.Huber(delta=p["delta"], reduction=_MEAN, dtype=d),
    "binary_crossentropy": lambda k, p, d: k.losses.BinaryCrossentropy(
        from_logits=True, label_smoothing=0.0, axis=-1, reduction=_MEAN, dtype=d),
    "categorical_crossentropy": lambda k, p, d: k.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.0, axis=-1, reduction=_MEAN, dtype=d),
    "sparse_categorical_crossentropy": lambda k, p, d: k.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=None, axis=-1, reduction=_MEAN, dtype=d),
}

# Options of every Keras optimizer that must stay off, passed explicitly.
_PLAIN = {"clipnorm": None, "clipvalue": None, "global_clipnorm": None, "use_ema": False,
          "loss_scale_factor": None, "gradient_accumulation_steps": None}

OPTIMIZERS: dict[str, Callable[[Any, dict], Any]] = {
    "sgd": lambda k, p: k.optimizers.SGD(
        learning_rate=p["learning_rate"], momentum=p["momentum"], nesterov=p["nesterov"],
        weight_decay=None, **_PLAIN),
    "adam": lambda k, p: k.optimizers.Adam(
        learning_rate=p["learning_rate"], beta_1=p["beta_1"], beta_2=p["beta_2"],
        epsilon=p["epsilon"], amsgrad=p["amsgrad"], weight_decay=None, **_PLAIN),
    "adamw": lambda k, p: k.optimizers.AdamW(
        learning_rate=p["learning_rate"], weight_decay=p["weight_decay"], beta_1=p["beta_1"],
        beta_2=p["beta_2"], epsilon=p["epsilon"], amsgrad=p["amsgrad"], **_PLAIN),
    "rmsprop": lambda k, p: k.optimizers.RMSprop(
        learning_rate=p["learning_rate"], rho=p["rho"], momentum=p["momentum"],
        epsilon=p["epsilon"], centered=p["centered"], weight_decay=None, **_PLAIN),
    "adagrad": lambda k, p: k.optimizers.Adagrad(
        learning_rate=p["learning_rate"], initial_accumulator_value=p["initial_accumulator_value"],
        epsilon=p["epsilon"], weight_decay=None, **_PLAIN),
}


def select_keras_backend(keras_backend: str, name: str) -> None:
    """Make the next ``import keras`` run on ``keras_backend``, or refuse.

    Keras reads KERAS_BACKEND once, when it is first imported; a process that already
    runs Keras on another backend cannot switch.
    """
    if "keras" in sys.modules:
        running = sys.modules["keras"].config.backend()
        if running != keras_backend:
            raise RuntimeError(f"keras is already imported with the {running!r} backend; the "
                               f"{name} backend needs KERAS_BACKEND={keras_backend} (run it in "
                               "a fresh process)")
    os.environ["KERAS_BACKEND"] = keras_backend


class KerasBase(Backend):
    """Keras 3 on one framework; a subclass names it and imports and pins the framework."""

    #: the KERAS_BACKEND value this backend runs Keras on
    keras_backend: str = ""
    devices = ("cpu", "cuda")
    #: the ops of a training step that Keras computes in float32 where result_type demotes
    #: float64 (measured on Keras 3.15; see :func:`float64_demoted`)
    demoted_ops: str = ""
    #: one reproducer part for the three, told by the state which backend Keras runs on
    repro = "backends.repro.keras"

    def __init__(self) -> None:
        self._keras: Any = None
        self._framework: Any = None

    def repro_settings(self) -> dict[str, object]:
        return {"keras_backend": self.keras_backend}

    @abc.abstractmethod
    def _import_framework(self, threads: int) -> Any:
        """Import the framework, pin its threads and precision; before Keras is imported."""

    @abc.abstractmethod
    def _framework_versions(self, framework: Any) -> dict[str, str]:
        """Versions reported beside Keras's."""

    @abc.abstractmethod
    def _framework_settings(self, framework: Any) -> dict[str, object]:
        """The framework's own report of its thread pools and float32 matmul precision."""

    @abc.abstractmethod
    def _no_gpu(self, framework: Any) -> str | None:
        """Why the framework sees no CUDA device, or None when it sees one."""

    @abc.abstractmethod
    def _trainer(self) -> type[KerasTrainer]:
        """The trainer class of this Keras backend."""

    def load(self, threads: int) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"expected a positive integer. Received: threads={threads!r}")
        select_keras_backend(self.keras_backend, self.name)
        framework = self._import_framework(threads)
        import keras

        self._keras, self._framework = keras, framework

    def versions(self) -> dict[str, str]:
        keras, framework = self._require()
        return {"keras": str(keras.__version__), **self._framework_versions(framework)}

    def runtime_settings(self) -> dict[str, object]:
        keras, framework = self._require()
        return {"keras.backend": str(keras.config.backend()),
                **self._framework_settings(framework)}

    def supports(self, feature: str) -> bool | str:
        reason = None
        if feature == "device:cuda":
            reason = self._no_gpu(self._require()[1])
        elif feature == "dtype:float64":
            reason = float64_demoted(self._require()[0], self.demoted_ops)
        return reason or super().supports(feature)

    def build(self, spec: Spec, params: Params, dtype: str, device: str) -> Trainer:
        keras, framework = self._require()
        return self._trainer()(keras, framework, spec, params, dtype, device)

    def _require(self) -> tuple[Any, Any]:
        if self._keras is None:
            raise RuntimeError(f"{type(self).__name__}.load() must be called before use")
        return self._keras, self._framework


def float64_demoted(keras, ops: str) -> str | None:
    """Why Keras cannot run float64 on its current backend, or None where it can.

    NOTE: Keras's type promotion maps float64 to float32 on every backend but TensorFlow
    (BIT64_TO_BIT32_DTYPE in keras/src/backend/common/dtypes.py, "to be aligned with JAX's
    default behavior"), and the ops that promote through ``result_type`` cast their
    float64 inputs to float32 (keras-team/keras#23704). The values then agree with a
    float64 reference to about 1e-8, not to float64's 1e-16. Asked of Keras itself, so a
    Keras that keeps float64 is let through.
    """
    promoted = keras.backend.result_type("float64", "float64")
    if promoted == "float64":
        return None
    return (f"Keras {keras.__version__} computes float64 in float32 on its "
            f"{keras.config.backend()} backend: {ops or 'some ops'} round to float32, as "
            f"keras.backend.result_type('float64', 'float64') is {promoted!r} "
            "(BIT64_TO_BIT32_DTYPE in keras/src/backend/common/dtypes.py; keras-team/keras#23704)")


class KerasTrainer(Trainer):
    """A compiled keras.Sequential of Dense layers holding the given parameters.

    A subclass per Keras backend gives the device names, the compile's ``jit_compile``
    and :meth:`_gradients`; the rest is Keras's own and shared.
    """

    #: spec device ("cpu", "cuda") -> the name keras.device() takes on this backend
    device_names: dict[str, str] = {}
    #: whether the train function is traced and compiled (tf.function, jax.jit), so that
    #: Keras's dtype and device settings matter only while it traces; else it runs eagerly
    traced: bool = True

    def __init__(self, keras, framework, spec: Spec, params: Params, dtype: str, device: str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"expected dtype float32 or float64. Received: {dtype!r}")
        self.k, self.fw, self.spec, self.dtype = keras, framework, spec, dtype
        self.device = self.device_names[device]
        self.sparse = spec.loss.name == "sparse_categorical_crossentropy"
        with self._scope():
            self.model = _sequential(keras, spec, dtype)
            # Keras's layout is canonical: set_weights takes them in layer order
            self.model.set_weights(list(canonical_params(spec, params, dtype).values()))
            self.model.compile(
                optimizer=OPTIMIZERS[spec.optimizer.name](keras, spec.optimizer.params),
                loss=LOSSES[spec.loss.name](keras, spec.loss.params, dtype),
                metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile=self._jit_compile(device))
        names = dense_names(len(spec.layers))
        self.names = {id(v): name for v, name in zip(self._variables(), names, strict=True)}

    @abc.abstractmethod
    def _jit_compile(self, device: str) -> bool | str:
        """compile()'s jit_compile on ``device``, said explicitly."""

    @abc.abstractmethod
    def _gradients(self, x, y) -> tuple[Any, list]:
        """The loss of ``model.compute_loss`` and its gradients with respect to
        ``model.trainable_variables`` (in that order), without an update."""

    @contextlib.contextmanager
    def _scope(self) -> Iterator[None]:
        """Run dtype and device for everything Keras creates or traces inside.

        NOTE: Keras creates the optimizer's learning rate, the compiled loss's cast and the
        loss tracker in ``floatx()``; a float64 run under floatx float32 would round the
        learning rate and the loss to float32.
        """
        previous = self.k.config.floatx()
        self.k.config.set_floatx(self.dtype)
        try:
            with self.k.device(self.device):
                yield
        finally:
            self.k.config.set_floatx(previous)

    def _variables(self) -> list:
        return [v for layer in self.model.layers for v in (layer.kernel, layer.bias)]

    def _x(self, x: np.ndarray):
        return self.k.ops.convert_to_tensor(np.asarray(x), dtype=self.dtype)

    def _y(self, y: np.ndarray):
        return self.k.ops.convert_to_tensor(np.asarray(y),
                                            dtype="int64" if self.sparse else self.dtype)

    def _numpy(self, tensor) -> np.ndarray:
        """A fresh NumPy copy of a framework tensor (a variable's ``.value``), any device."""
        return np.array(self.k.ops.convert_to_numpy(tensor), copy=True)

    # ------------------------------------------------------------------ contract

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        self._sync()
        with self._scope():
            loss, grads = self._gradients(self._x(x), self._y(y))
            variables = self.model.trainable_variables
            named = {self.names[id(v)]: self._numpy(g)
                     for v, g in zip(variables, grads, strict=True)}
            return float(self._numpy(loss)), named

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        self._sync()
        with self._scope():
            # NOTE: the loss comes from the compiled loss tracker, a Mean metric; after a
            # reset it holds this batch alone (train_on_batch also resets it itself, see
            # keras/src/backend/*/trainer.py), so it is this batch's own loss before the
            # update, not fit()'s running mean.
            self.model.reset_metrics()
            logs = self.model.train_on_batch(self._x(x), self._y(y), return_dict=True)
        return float(logs["loss"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        self._sync()
        with self._scope():
            out = self.model(self._x(x), training=False)
            if self.spec.fused_output:
                out = FUSED_OUTPUTS[self.spec.output_activation](self.k, out)
            return self._numpy(out)

    def get_params(self) -> Params:
        self._sync()
        return {self.names[id(v)]: self._numpy(v.value) for v in self._variables()}

    def set_params(self, params: Params) -> None:
        self._sync()  # else a state fast_step holds would overwrite them (JAX)
        values = canonical_params(self.spec, params, self.dtype)
        with self._scope():
            for variable in self._variables():
                variable.assign(values[self.names[id(variable)]])

    def apply_grads(self, grads: Params) -> None:
        self._sync()
        with self._scope():
            optimizer, variables = self.model.optimizer, self.model.trainable_variables
            if not optimizer.built:  # as train_on_batch's build does before the first step
                optimizer.build(variables)
            # NOTE: the gradients go to the optimizer as they are: the L2 penalties are in
            # the loss (model.losses), not in the optimizer, so none is added here.
            self._apply_gradients([
                self.k.ops.convert_to_tensor(np.asarray(grads[self.names[id(v)]]),
                                             dtype=self.dtype) for v in variables])

    @abc.abstractmethod
    def _apply_gradients(self, grads: list) -> None:
        """``model.optimizer`` updates ``model.trainable_variables`` with ``grads`` (tensors
        in that order) as the train function's step does, writing the variables."""

    def fast_step(self, batches: Sequence[Batch]) -> Callable[[], None]:
        """Keras's own compiled train function (what fit() and train_on_batch call), on
        tensors made before the clock, without train_on_batch's per-call bookkeeping: the
        build checks, the metric reset and the logs' conversion to Python floats.

        NOTE: the loss tracker is not reset between steps (fit() resets it per epoch); it
        only averages the logged loss and does not touch the training.
        """
        self._sync()
        with self._scope():
            # (x, y) as fit() packs a batch without sample weights: a trailing None in the
            # batch makes a tf.function call on TensorFlow slower to bind (see
            # docs/performance.md, section "Keras: fast_step's batches without a trailing
            # None").
            data = cycled(batches, lambda x, y: (self._x(x), self._y(y)))
            x, y = batches[0]  # converted again: the build reads its shapes and dtypes
            self._build_train_function((self._x(x), self._y(y)))
        run = self._train_function_step(data)
        scope = self._scope
        # The dtype and device scope train_step has (a float64 run traces in float64). A
        # compiled train function reads it only while tracing, which every batch shape
        # does in the first pass over the batches: later calls skip its cost.
        scoped_calls = len(batches) if self.traced else math.inf
        calls = 0

        def step() -> None:
            nonlocal calls
            if calls < scoped_calls:
                calls += 1
                with scope():
                    run()
            else:
                run()

        return step

    def _sync(self) -> None:
        """Write back a state that fast_step holds outside the model's variables (JAX)."""

    def _build_train_function(self, batch: tuple) -> None:
        """Build the model's compile state and its train function from the shapes and
        dtypes of ``batch`` (an ``(x, y)`` of tensors), as train_on_batch does before it
        calls it: the compiled loss and the optimizer's variables, then the function
        (keras/src/backend/{torch,jax}/trainer.py)."""
        self.model._symbolic_build(data_batch=batch)
        self.model.make_train_function()

    @abc.abstractmethod
    def _train_function_step(self, data: Iterator[tuple]) -> Callable[[], None]:
        """One call of ``model.train_function`` on the next ``(x, y)`` of ``data``,
        returning once the device has finished it."""


def _sequential(keras, spec: Spec, dtype: str):
    last = len(spec.layers) - 1
    layers: list = [keras.Input(shape=(spec.input_dim,), dtype=dtype)]
    for i, layer in enumerate(spec.layers):
        fused = i == last and spec.fused_output
        act = keras.activations.linear if fused else ACTIVATIONS[layer.activation.name](
            keras, layer.activation.params)
        reg = keras.regularizers.L2(layer.kernel_l2) if layer.kernel_l2 > 0 else None
        layers.append(keras.layers.Dense(layer.units, activation=act, use_bias=True,
                                         kernel_regularizer=reg, dtype=dtype))
    return keras.Sequential(layers)
