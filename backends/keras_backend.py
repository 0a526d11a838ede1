"""Keras 3 on TensorFlow (``keras``), PyTorch (``keras-torch``) and JAX (``keras-jax``).

A Sequential of Dense layers compiled with Keras's own losses and optimizers, trained by
``train_on_batch`` and timed by calling its compiled train function directly; the shared
part is in :mod:`backends.keras_common`. Each backend here imports and pins its framework,
takes gradients without an update, and calls the train function (whose signature and
state handling differ per backend) in its framework's own way. Keras picks its backend
once per process (KERAS_BACKEND), so the three never run in the same process.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from backends.base import installed_distribution
from backends.jax_backend import jax_settings
from backends.keras_common import KerasBase, KerasTrainer
from backends.tensorflow_backend import set_tensorflow_threads, tensorflow_settings
from backends.torch_backend import no_sync, torch_settings

# ---------------------------------------------------------------------------- TensorFlow


class TensorflowKerasTrainer(KerasTrainer):
    """Gradients by tf.GradientTape; compiled train function (tf.function)."""

    device_names = {"cpu": "/CPU:0", "cuda": "/GPU:0"}

    def _jit_compile(self, device: str) -> bool | str:
        # Keras's "auto" resolves to False on a CPU-only TensorFlow
        # (Trainer._resolve_auto_jit_compile in keras/src/trainers/trainer.py): say so
        # explicitly on the CPU, and keep "auto"'s resolution (XLA) on a GPU.
        return False if device == "cpu" else "auto"

    _traced_gradients: Callable | None = None

    def _gradients(self, x, y) -> tuple[Any, list]:
        # A tf.function, as Keras's own train step is (make_train_function): the same
        # graph-mode kernels, and 12 ms a call less than eager op-by-op execution here
        # (docs/performance.md, "Keras: loss_and_grads traced").
        if self._traced_gradients is None:
            self._traced_gradients = self.fw.function(self._tape_gradients)
        return self._traced_gradients(x, y)

    def _tape_gradients(self, x, y) -> tuple[Any, list]:
        with self.fw.GradientTape() as tape:
            y_pred = self.model(x, training=True)
            # compute_loss adds model.losses: the Dense kernel_regularizer penalties.
            loss = self.model.compute_loss(x=x, y=y, y_pred=y_pred)
        return loss, tape.gradient(loss, self.model.trainable_variables)

    _traced_apply: Callable | None = None

    def _apply_gradients(self, grads: list) -> None:
        # One tf.function, made once (no retrace per call), with the train function's
        # jit_compile: the update its step makes (apply_gradients), in graph mode as there.
        if self._traced_apply is None:
            optimizer, variables = self.model.optimizer, self.model.trainable_variables
            self._traced_apply = self.fw.function(
                lambda grads: optimizer.apply_gradients(zip(grads, variables, strict=True)),
                jit_compile=bool(self.model.jit_compile))
        self._traced_apply(grads)

    def _numpy(self, tensor) -> np.ndarray:
        return np.array(tensor.numpy(), copy=True)  # a tf.Tensor or tf.Variable

    def _build_train_function(self, batch: tuple) -> None:
        # TensorFlow's train_on_batch builds symbolically only under a distribution
        # strategy (_maybe_symbolic_build in keras/src/backend/tensorflow/trainer.py);
        # without one the model builds when the train function is first traced.
        self.model.make_train_function()

    def _train_function_step(self, data: Iterator[tuple]) -> Callable[[], None]:
        # train_function takes an iterator and runs steps_per_execution (1) steps of it, a
        # tf.function. On the CPU the call returns once its kernels have run; on a GPU they
        # are queued, and a host read of the loss waits for the queue (updates included).
        train_function = self.model.train_function
        on_gpu = self.device == self.device_names["cuda"]

        def run() -> None:
            logs = train_function(data)
            if on_gpu:
                logs["loss"].numpy()

        return run


class KerasBackend(KerasBase):
    """Keras 3 with the TensorFlow backend (compiled train function, train_on_batch)."""

    name = "keras"
    keras_backend = "tensorflow"
    requires = ("keras", installed_distribution("tensorflow", "tensorflow-cpu"))
    extra = "keras"

    def _import_framework(self, threads: int) -> Any:
        import tensorflow as tf

        set_tensorflow_threads(tf, threads)
        # A correctness tool: no TF32 shortcuts in float32 matrix products on a GPU.
        tf.config.experimental.enable_tensor_float_32_execution(False)
        return tf

    def _framework_versions(self, tf: Any) -> dict[str, str]:
        return {"tensorflow": str(tf.__version__)}

    def _framework_settings(self, tf: Any) -> dict[str, object]:
        return tensorflow_settings(tf)

    def _no_gpu(self, tf: Any) -> str | None:
        if tf.config.list_physical_devices("GPU"):
            return None
        return "TensorFlow sees no GPU (tensorflow-cpu, or no CUDA device)"

    def _trainer(self) -> type[KerasTrainer]:
        return TensorflowKerasTrainer


# ---------------------------------------------------------------------------- PyTorch


class TorchKerasTrainer(KerasTrainer):
    """Gradients by torch.autograd.grad; an eager train function (Keras's own default)."""

    device_names = {"cpu": "cpu", "cuda": "cuda"}
    traced = False  # eager: every op reads Keras's dtype and device settings

    def _jit_compile(self, device: str) -> bool | str:
        # "auto" resolves to False on torch (Trainer._resolve_auto_jit_compile): Keras's
        # torch train function is eager, torch.compile is opt-in.
        return False

    def _gradients(self, x, y) -> tuple[Any, list]:
        y_pred = self.model(x, training=True)
        # compute_loss adds model.losses: the Dense kernel_regularizer penalties.
        loss = self.model.compute_loss(x=x, y=y, y_pred=y_pred)
        values = [v.value for v in self.model.trainable_variables]
        return loss, list(self.fw.autograd.grad(loss, values))

    def _apply_gradients(self, grads: list) -> None:
        with self.fw.no_grad():  # as Keras's torch train step applies them (eagerly)
            self.model.optimizer.apply(grads, self.model.trainable_variables)

    def _numpy(self, tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy().copy()

    def _train_function_step(self, data: Iterator[tuple]) -> Callable[[], None]:
        # The torch train function takes a sequence of batches and trains on the first.
        train_function = self.model.train_function
        sync = self.fw.cuda.synchronize if self.device == "cuda" else no_sync

        def run() -> None:
            train_function((next(data),))
            sync()  # CUDA kernels run asynchronously: the step ends when the device is done

        return run


class KerasTorchBackend(KerasBase):
    """Keras 3 with the PyTorch backend (eager train function, train_on_batch)."""

    name = "keras-torch"
    keras_backend = "torch"
    requires = ("keras", "torch")
    extra = "keras-torch"
    demoted_ops = ("ops.matmul (every Dense layer, forward and backward), ops.mean (the "
                   "losses' mean over outputs) and ops.maximum")

    def _import_framework(self, threads: int) -> Any:
        import torch

        torch.set_num_threads(threads)
        # A correctness tool: no TF32 shortcuts in float32 matrix products on a GPU.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        return torch

    def _framework_versions(self, torch: Any) -> dict[str, str]:
        return {"torch": str(torch.__version__)}

    def _framework_settings(self, torch: Any) -> dict[str, object]:
        return torch_settings(torch)

    def _no_gpu(self, torch: Any) -> str | None:
        if torch.cuda.is_available():
            return None
        return "torch.cuda.is_available() is False (no CUDA device or a CPU-only build)"

    def _trainer(self) -> type[KerasTrainer]:
        return TorchKerasTrainer


# ---------------------------------------------------------------------------- JAX


class JaxKerasTrainer(KerasTrainer):
    """Gradients by jax.value_and_grad of the trainer's own stateless loss; jitted train
    function."""

    device_names = {"cpu": "cpu:0", "cuda": "gpu:0"}
    #: the state fast_step's last step returned, not yet written to the model's variables
    _pending_state: Any = None
    #: jax.jit(jax.value_and_grad(the loss)), made at the first loss_and_grads
    _gradient_function: Any = None
    #: jax.jit(optimizer.stateless_apply), made at the first apply_grads
    _apply_function: Any = None

    def _jit_compile(self, device: str) -> bool | str:
        # What "auto" resolves to on JAX: the train step under jax.jit.
        return True

    def _gradients(self, x, y) -> tuple[Any, list]:
        # The function JAXTrainer.train_step differentiates (keras/src/backend/jax/
        # trainer.py): stateless_call, then compute_loss with model.losses (the L2
        # penalties), all on the variables' values; nothing is written back. Jitted, as
        # the train step that differentiates it is: op by op it was far slower (see
        # docs/performance.md, section "Keras on JAX: loss_and_grads jitted").
        model = self.model
        if self._gradient_function is None:
            def loss(trainable, non_trainable, metrics, optimizer, x, y):
                return model.compute_loss_and_updates(
                    trainable, non_trainable, metrics, x, y, None, training=True,
                    optimizer_variables=optimizer)

            self._gradient_function = self.fw.jit(self.fw.value_and_grad(loss, has_aux=True))
        (loss, _), grads = self._gradient_function(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.metrics_variables],
            [v.value for v in model.optimizer.variables], x, y)
        return loss, grads

    def _apply_gradients(self, grads: list) -> None:
        # The update of JAXTrainer.train_step, optimizer.stateless_apply on the variables'
        # values, jitted as there (once: the shapes never change); written back as
        # jax_state_sync does.
        # NOTE: the train step's jit fuses this update with the gradients' last ops, and
        # XLA contracts SGD momentum's products into FMAs otherwise there: an ulp apart in
        # a few elements (tests/test_parts_keras_variants.py); op by op it is further off.
        model, optimizer = self.model, self.model.optimizer
        if self._apply_function is None:
            self._apply_function = self.fw.jit(optimizer.stateless_apply)
        trainable, optimizer_values = self._apply_function(
            [v.value for v in optimizer.variables], grads,
            [v.value for v in model.trainable_variables])
        for variable, value in zip(model.trainable_variables, trainable, strict=True):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, optimizer_values, strict=True):
            variable.assign(value)

    def _sync(self) -> None:
        # Keras's own write-back of a state its train function returned (fit() calls it at
        # the end of an epoch, train_on_batch after every call).
        if self._pending_state is not None:
            self.model._jax_state = dict(zip(_JAX_STATE, self._pending_state, strict=True))
            self.model._jax_state_synced = False
            self._pending_state = None
        self.model.jax_state_sync()

    def _train_function_step(self, data: Iterator[tuple]) -> Callable[[], None]:
        """fit()'s inner loop (keras/src/backend/jax/trainer.py, JAXTrainer.fit): the
        state (the variables' values) threads from one call of the jitted, state-donating
        train function to the next. The model's variables are written back when the
        trainer next reads them (:meth:`_sync`), not after every step as train_on_batch
        does; nor is the state handed to the model after every step as fit() does
        (``model._jax_state = ...``: Keras's attribute tracking walks it, at a cost; see
        docs/performance.md, section "Keras on JAX: fast_step's state")."""
        model = self.model
        train_function, block = model.train_function, self.fw.block_until_ready
        everything = dict.fromkeys(_JAX_STATE, True)

        def run() -> None:
            state = self._pending_state
            if state is None:  # the variables hold the state (first step, or train_step)
                state = model._get_jax_state(**everything)
            logs, self._pending_state = train_function(state, data)
            # JAX dispatches asynchronously; one executable's outputs are ready together.
            block(logs)

        return run


# The state JAXTrainer's train function takes and returns, in its order.
_JAX_STATE = ("trainable_variables", "non_trainable_variables", "optimizer_variables",
              "metrics_variables")


class KerasJaxBackend(KerasBase):
    """Keras 3 with the JAX backend (jitted train function, train_on_batch).

    Threads: XLA's CPU client sizes its one intra-op pool ("tf_XLAEigen") once, when it
    starts, from the environment variable NPROC (else the schedulable CPUs; xla/pjrt/
    utils.cc, DefaultThreadPoolSize); :meth:`load` sets NPROC for that moment and starts
    the client: XLA honours NPROC, and not ``--xla_cpu_multi_thread_eigen=false`` in
    XLA_FLAGS (see docs/performance.md, section "Keras on JAX: threads (NPROC)"). Not
    pinned: XLA's compiler threads and jax's dispatch thread, which do no arithmetic of a
    training step.
    """

    name = "keras-jax"
    keras_backend = "jax"
    requires = ("keras", "jax", "jaxlib")
    extra = "keras-jax"
    demoted_ops = "ops.mean (the losses' mean over outputs) and ops.tanh (the activation)"
    #: NPROC as :meth:`load` set it while jax started its CPU client
    _nproc: int | None = None

    def _import_framework(self, threads: int) -> Any:
        if "jax" in sys.modules and _jax_clients_started():
            warnings.warn(f"jax already started its CPU client in this process; its intra-op "
                          f"pool keeps its size (asked: {threads} threads)", stacklevel=3)
        saved = os.environ.get("NPROC")
        os.environ["NPROC"] = str(threads)
        self._nproc = threads
        try:
            import jax

            # float64 arrays stay float64 only with x64 on (before any array is made);
            # float32 matrix products at full precision on a GPU (no TF32).
            jax.config.update("jax_enable_x64", True)
            jax.config.update("jax_default_matmul_precision", "highest")
            jax.devices()  # start the clients now, while NPROC holds
        finally:
            if saved is None:
                os.environ.pop("NPROC", None)
            else:
                os.environ["NPROC"] = saved
        return jax

    def _framework_versions(self, jax: Any) -> dict[str, str]:
        import jaxlib

        return {"jax": str(jax.__version__), "jaxlib": str(jaxlib.__version__)}

    def _framework_settings(self, jax: Any) -> dict[str, object]:
        return jax_settings(jax, self._nproc)

    def _no_gpu(self, jax: Any) -> str | None:
        try:
            jax.devices("gpu")
        except RuntimeError:  # no GPU platform in this jaxlib, or no device
            return "jax sees no GPU (a CPU-only jaxlib, or no CUDA device)"
        return None

    def _trainer(self) -> type[KerasTrainer]:
        return JaxKerasTrainer


def _jax_clients_started() -> bool:
    """Whether jax has created its platform clients (private API: the only way to know
    whether NPROC can still matter)."""
    from jax._src import xla_bridge

    return bool(getattr(xla_bridge, "backends_are_initialized", lambda: False)())
