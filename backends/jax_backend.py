"""JAX backend: jax.numpy Dense layers, jax.nn activations, optax losses and optimizers.

The model is a dict of arrays under the canonical names (a pytree), the forward pass
``x @ kernel + bias`` layer by layer; gradients come from ``jax.value_and_grad`` and one
training step (loss, gradients, optax update) is a single ``jax.jit``-compiled function.
Every hyperparameter of the spec, and every optax knob that changes the formula, is
passed explicitly. jax and optax are imported in :meth:`JaxBackend.load` only; the
registries below take the imported modules as their first arguments.

Threads: XLA's CPU client runs each computation on one intra-op pool ("tf_XLAEigen")
whose size it reads once, when the client starts, from the environment variable NPROC,
falling back to the number of schedulable CPUs (xla/pjrt/utils.cc, DefaultThreadPoolSize).
:meth:`JaxBackend.load` sets NPROC for that moment: XLA honours it, and not the XLA
flags that look as if they would size the pool (see docs/performance.md, section "JAX:
threads (NPROC)"). Not pinned: XLA's compiler threads and jax's dispatch thread, which do
no arithmetic of a training step.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import Backend, Batch, Params, Trainer, canonical_params, cycled, dense_names

if TYPE_CHECKING:
    from suite.spec import Spec

# name -> (jax, activation params) -> elementwise function.
ACTIVATIONS: dict[str, Callable[[Any, dict], Callable]] = {
    "linear": lambda jax, p: jax.nn.identity,
    # NOTE: jax.nn.relu's custom derivative is 0 at 0, as the reference's.
    "relu": lambda jax, p: jax.nn.relu,
    # NOTE: jax.nn.leaky_relu keeps z where z >= 0, so its derivative at exactly 0 is 1
    # (the reference's: negative_slope); only an exact zero pre-activation tells them apart.
    "leaky_relu": lambda jax, p: partial(jax.nn.leaky_relu, negative_slope=p["negative_slope"]),
    "elu": lambda jax, p: partial(jax.nn.elu, alpha=p["alpha"]),
    "sigmoid": lambda jax, p: jax.nn.sigmoid,
    "tanh": lambda jax, p: jax.nn.tanh,
    # log(1 + exp(z)) as jnp.logaddexp(z, 0): no threshold
    "softplus": lambda jax, p: jax.nn.softplus,
    "gelu": lambda jax, p: partial(jax.nn.gelu, approximate=False),
    "gelu_tanh": lambda jax, p: partial(jax.nn.gelu, approximate=True),
}

# Output activation applied by predict() when it is fused into a from-logits loss.
FUSED_OUTPUTS: dict[str, Callable[[Any, Any], Any]] = {
    "sigmoid": lambda jax, z: jax.nn.sigmoid(z),
    "softmax": lambda jax, z: jax.nn.softmax(z, axis=-1, where=None),
}

# name -> (jax, optax, loss params) -> loss(z, y), the mean over what the reference
# averages (backends/reference/losses.py): all elements for mse, mae, huber and binary
# cross-entropy, the batch for the categorical ones. Cross-entropies take logits.
LOSSES: dict[str, Callable[[Any, Any, dict], Callable]] = {
    # squared_error, not l2_loss (which is half of it)
    "mse": lambda jax, optax, p: lambda z, y: jax.numpy.mean(
        optax.losses.squared_error(z, y)),
    # optax has no absolute-error loss
    "mae": lambda jax, optax, p: lambda z, y: jax.numpy.mean(jax.numpy.abs(z - y)),
    "huber": lambda jax, optax, p: lambda z, y: jax.numpy.mean(
        optax.losses.huber_loss(z, y, delta=p["delta"])),
    "binary_crossentropy": lambda jax, optax, p: lambda z, y: jax.numpy.mean(
        optax.losses.sigmoid_binary_cross_entropy(z, y)),
    # probability targets of shape (batch, classes)
    "categorical_crossentropy": lambda jax, optax, p: lambda z, y: jax.numpy.mean(
        optax.losses.softmax_cross_entropy(z, y, axis=-1, where=None)),
    # int64 class indices of shape (batch,)
    "sparse_categorical_crossentropy": lambda jax, optax, p: lambda z, y: jax.numpy.mean(
        optax.losses.softmax_cross_entropy_with_integer_labels(z, y, axis=-1, where=None)),
}


def _sgd(optax, p: dict):
    # optax.trace: buf = g + mu*buf; nesterov: g + mu*buf (torch's form). With momentum 0
    # both give g, so nesterov=True without momentum is plain SGD (Keras semantics), and
    # momentum=None says so to optax: no trace at all. (A trace with decay 0 gives the same
    # bits, g + 0*buf = g, but keeps and rewrites a buffer per parameter every step, at a
    # cost: see docs/performance.md, section "JAX: plain SGD without a trace".)
    return optax.sgd(learning_rate=p["learning_rate"], momentum=p["momentum"] or None,
                     nesterov=p["nesterov"], accumulator_dtype=None)


def _amsgrad(optax, p: dict):
    # NOTE: optax takes the running maximum of the bias-corrected v_t / (1 - b2^t);
    # torch and Keras take it of v and divide by the current correction (ledger:
    # jax-amsgrad-max). bias_correction_nu=False would drop the correction altogether.
    return optax.scale_by_amsgrad(b1=p["beta_1"], b2=p["beta_2"], eps=p["epsilon"],
                                  eps_root=0.0, mu_dtype=None, bias_correction_mu=True,
                                  bias_correction_nu=True)


def _adam(optax, p: dict):
    if p["amsgrad"]:
        return optax.chain(_amsgrad(optax, p), optax.scale_by_learning_rate(
            p["learning_rate"], flip_sign=True))
    return optax.adam(learning_rate=p["learning_rate"], b1=p["beta_1"], b2=p["beta_2"],
                      eps=p["epsilon"], eps_root=0.0, mu_dtype=None, nesterov=False)


def _adamw(optax, p: dict):
    # u = -lr * (m_hat / (sqrt(v_hat) + eps) + wd * p): the decay is multiplied by the
    # learning rate, as torch and the reference do.
    if p["amsgrad"]:
        # optax.adamw has no AMSGrad: the same chain optax.adamw builds, around
        # scale_by_amsgrad instead of scale_by_adam.
        return optax.chain(_amsgrad(optax, p),
                           optax.add_decayed_weights(weight_decay=p["weight_decay"], mask=None),
                           optax.scale_by_learning_rate(p["learning_rate"], flip_sign=True))
    return optax.adamw(learning_rate=p["learning_rate"], b1=p["beta_1"], b2=p["beta_2"],
                       eps=p["epsilon"], eps_root=0.0, mu_dtype=None,
                       weight_decay=p["weight_decay"], mask=None, nesterov=False)


def _rmsprop(optax, p: dict):
    # eps_in_sqrt=False: sqrt(v) + eps, the published (and torch's) placement.
    # initial_scale=0.0: v starts at zero. The momentum trace comes after the learning
    # rate (buf = mom*buf + lr*g/denom, p -= buf): torch's lr*buf for a constant rate.
    return optax.rmsprop(learning_rate=p["learning_rate"], decay=p["rho"], eps=p["epsilon"],
                         initial_scale=0.0, eps_in_sqrt=False, centered=p["centered"],
                         momentum=p["momentum"], nesterov=False, bias_correction=False)


def _adagrad(optax, p: dict):
    # NOTE: optax puts eps inside the square root: g / sqrt(acc + eps) (ledger:
    # jax-adagrad-epsilon); the accumulator starts at initial_accumulator_value.
    return optax.adagrad(learning_rate=p["learning_rate"],
                         initial_accumulator_value=p["initial_accumulator_value"],
                         eps=p["epsilon"])


OPTIMIZERS: dict[str, Callable[[Any, dict], Any]] = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adamw,
    "rmsprop": _rmsprop,
    "adagrad": _adagrad,
}

# suite device name -> jax platform name
_PLATFORMS = {"cpu": "cpu", "cuda": "gpu"}


class JaxBackend(Backend):
    """JAX (jax.jit-compiled steps) with optax."""

    name = "jax"
    requires = ("jax", "jaxlib", "optax")
    extra = "jax"
    devices = ("cpu", "cuda")
    repro = "backends.repro.jax"

    def __init__(self) -> None:
        self._jax: Any = None
        self._optax: Any = None
        self._nproc: int | None = None

    def load(self, threads: int) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"expected a positive integer. Received: threads={threads!r}")
        if "jax" in sys.modules and _clients_started():
            warnings.warn(f"jax already started its CPU client in this process; its intra-op "
                          f"pool keeps its size (asked: {threads} threads)", stacklevel=2)
        with _environment("NPROC", str(threads)):
            import jax
            import optax

            # Float64 arrays stay float64 (without this jax silently makes them float32).
            jax.config.update("jax_enable_x64", True)
            # A correctness tool: no TF32 or bf16 passes in float32 matrix products on a GPU.
            jax.config.update("jax_default_matmul_precision", "highest")
            jax.devices()  # start the clients now, while NPROC holds
        self._jax, self._optax = jax, optax
        self._nproc = threads

    def runtime_settings(self) -> dict[str, object]:
        jax, _ = self._require()
        return jax_settings(jax, self._nproc)

    def versions(self) -> dict[str, str]:
        import jaxlib

        jax, optax = self._require()
        return {"jax": str(jax.__version__), "jaxlib": str(jaxlib.__version__),
                "optax": str(optax.__version__)}

    def supports(self, feature: str) -> bool | str:
        if feature == "device:cuda" and not _gpus(self._require()[0]):
            return "jax sees no GPU (a CPU-only jaxlib, or no CUDA device)"
        return super().supports(feature)

    def build(self, spec: Spec, params: Params, dtype: str, device: str) -> Trainer:
        jax, optax = self._require()
        return JaxTrainer(jax, optax, spec, params, dtype, device)

    def _require(self):
        if self._jax is None:
            raise RuntimeError("JaxBackend.load() must be called before use")
        return self._jax, self._optax


def _clients_started() -> bool:
    """Whether jax has created its platform clients (private API: the only way to know
    whether NPROC can still matter)."""
    from jax._src import xla_bridge

    return bool(getattr(xla_bridge, "backends_are_initialized", lambda: False)())


@contextlib.contextmanager
def _environment(key: str, value: str) -> Iterator[None]:
    """Set one environment variable for the duration of a ``with`` block."""
    saved = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def jax_settings(jax, nproc: int | None) -> dict[str, object]:
    """jax's report of its CPU pool and float32 matmul precision (also used by Keras on
    JAX). XLA has no API that reports its CPU pool: ``nproc`` is NPROC as it was when the
    CPU client started, and the pool's threads are counted as the OS lists them."""
    return {
        "jax.NPROC": nproc,
        "jax.xla_cpu_pool_threads": _thread_count("tf_XLAEigen"),
        "jax.XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "jax.default_matmul_precision": str(jax.config.jax_default_matmul_precision),
        "jax.enable_x64": bool(jax.config.jax_enable_x64),
        "jax.default_backend": str(jax.default_backend()),
    }


def _thread_count(name: str) -> int | None:
    """How many of this process's threads are named ``name`` (Linux's /proc; None
    elsewhere): XLA names its intra-op pool's threads, so this is the pool's real size."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    count = 0
    for task in tasks:
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/comm") as comm:
            count += comm.read().strip() == name
    return count


def _gpus(jax) -> list:
    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU platform in this jaxlib, or no device
        return []


class JaxTrainer(Trainer):
    """Parameters as a dict of device arrays, a jitted step and its optax state."""

    def __init__(self, jax, optax, spec: Spec, params: Params, dtype: str, device: str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"expected dtype float32 or float64. Received: {dtype!r}")
        if device not in _PLATFORMS:
            raise ValueError(f"expected device cpu or cuda. Received: {device!r}")
        self.jax, self.spec = jax, spec
        self.dtype = np.dtype(dtype)
        self.device = jax.devices(_PLATFORMS[device])[0]
        self.sparse = spec.loss.name == "sparse_categorical_crossentropy"
        self.params = {name: self._put(value)
                       for name, value in canonical_params(spec, params, self.dtype).items()}
        self.optimizer = OPTIMIZERS[spec.optimizer.name](optax, spec.optimizer.params)
        with jax.default_device(self.device):
            self.opt_state = self.optimizer.init(self.params)
        forward, objective = _functions(jax, optax, spec)
        optimizer = self.optimizer

        def step(params, opt_state, x, y):
            loss, grads = jax.value_and_grad(objective)(params, x, y)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        def apply(params, opt_state, grads):
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        # The old parameters and state are dead after a step: their buffers can be reused.
        self._step = jax.jit(step, donate_argnums=(0, 1))
        self._apply = jax.jit(apply, donate_argnums=(0, 1))  # the step's update alone
        self._loss_and_grads = jax.jit(jax.value_and_grad(objective))
        self._predict = jax.jit(forward)

    # ------------------------------------------------------------------ conversions

    def _put(self, array: np.ndarray, dtype: np.dtype | None = None):
        return self.jax.device_put(np.asarray(array, dtype=dtype or self.dtype), self.device)

    def _x(self, x: np.ndarray):
        return self._put(x)

    def _y(self, y: np.ndarray):
        return self._put(y, np.dtype(np.int64) if self.sparse else self.dtype)

    # ------------------------------------------------------------------ contract

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        loss, grads = self._loss_and_grads(self.params, self._x(x), self._y(y))
        return float(loss), _numpy(grads)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        self.params, self.opt_state, loss = self._step(self.params, self.opt_state,
                                                       self._x(x), self._y(y))
        return float(loss)  # computed at the parameters before the update

    def set_params(self, params: Params) -> None:
        self.params = {name: self._put(value) for name, value in
                       canonical_params(self.spec, params, self.dtype).items()}

    def apply_grads(self, grads: Params) -> None:
        grads = {name: self._put(grads[name]) for name in self.params}
        self.params, self.opt_state = self._apply(self.params, self.opt_state, grads)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.array(self._predict(self.params, self._x(x)), copy=True)

    def get_params(self) -> Params:
        return _numpy(self.params)

    def fast_step(self, batches: Sequence[Batch]) -> Callable[[], None]:
        block = self.jax.block_until_ready
        # on the device before the clock
        cycle = cycled(batches, lambda x, y: block((self._x(x), self._y(y))))
        compiled = self._step  # train_step's jitted function, its trace reused

        def step() -> None:
            x, y = next(cycle)
            self.params, self.opt_state, loss = compiled(self.params, self.opt_state, x, y)
            # jax dispatches asynchronously: the step ends when its outputs exist, and the
            # outputs of one executable are ready together, so waiting for one suffices
            # (and waiting on every array is slower: see docs/performance.md, section "JAX:
            # fast_step waits for the loss only").
            loss.block_until_ready()

        return step


def _functions(jax, optax, spec: Spec) -> tuple[Callable, Callable]:
    """forward(params, x) -> outputs (activation applied) and objective(params, x, y)."""
    n = len(spec.layers)
    names = dense_names(n)
    acts = [ACTIVATIONS[layer.activation.name](jax, layer.activation.params)
            for layer in spec.layers[:n - 1]]
    last = spec.layers[-1].activation
    output = (partial(FUSED_OUTPUTS[last.name], jax) if spec.fused_output
              else ACTIVATIONS[last.name](jax, last.params))
    loss = LOSSES[spec.loss.name](jax, optax, spec.loss.params)
    l2 = [(f"dense_{i}/kernel", layer.kernel_l2) for i, layer in enumerate(spec.layers)
          if layer.kernel_l2 > 0]

    def logits(params, x):
        """The last layer's pre-activation (the logits of a fused output)."""
        h = x
        for i, act in enumerate(acts):
            h = act(h @ params[names[2 * i]] + params[names[2 * i + 1]])
        return h @ params[names[-2]] + params[names[-1]]

    def forward(params, x):
        return output(logits(params, x))

    def objective(params, x, y):
        z = logits(params, x)
        value = loss(z if spec.fused_output else output(z), y)
        for name, factor in l2:
            # Keras semantics: the penalty is part of the loss (not weight decay).
            value = value + factor * jax.numpy.sum(params[name] ** 2)
        return value

    return forward, objective


def _numpy(arrays: dict) -> Params:
    # Copies: the step donates the parameters' buffers, so a view would be overwritten.
    return {name: np.array(value, copy=True) for name, value in arrays.items()}
