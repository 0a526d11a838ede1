"""Theano 1.0.5 backend: a symbolic graph, theano.grad, and compiled functions.

Kernels and biases are shared variables; the forward pass is ``T.dot`` plus the bias and
theano.tensor activations; losses are written with theano's ops from logits; gradients
come from ``theano.grad``. Theano ships no optimizer classes: the Theano way is a list
of symbolic update expressions on shared state, passed as ``updates=`` to
``theano.function``, so the five update rules (``backends.theano_family``, shared with
PyTensor) are the published ones (those of ``backends.reference.optimizers``) written as
such expressions.

Theano 1.0.5 needs NumPy < 1.24, so it runs in an environment of its own
(``environment`` below; see ``suite.envs``). It is imported in :meth:`TheanoBackend.load`
only, after its flags are set; the registries below take the imported
``theano.tensor`` module as their first argument.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import Backend, Params, Trainer
from backends.theano_family import OPTIMIZERS, SymbolicTrainer

if TYPE_CHECKING:
    from suite.spec import Spec
# The C linker ("cvm", Theano's default): its steps run far faster than the "py" linker's
# (each op's Python perform()), at a compile cost (see docs/performance.md, section "Theano:
# the C linker"). The cache lives in the temporary folder (default_compiledir) and is
# shared by later runs, so the g++ cost is paid once per machine.
# NOTE: numerically the C code of sigmoid and softplus saturates earlier (sigmoid(z) = 1
# for z > 15 in float32 and 19 in float64, softplus(z) = z for z > 14 and 16) than the
# Python code (|z| > 30). THEANO_FLAGS=linker=py switches.
DEFAULT_FLAGS = {
    # No BLAS library to link on this machine: Theano then calls NumPy's (through its
    # C API) instead of failing at import.
    "blas.ldflags": "",
    "linker": "cvm",
    "optimizer": "fast_run",
    # theano.tensor.nnet.sigmoid stays exact (no ultra_fast/hard sigmoid rewrite) in any case
    "floatX": "float64",
    "warn_float64": "ignore",
}


def theano_flags(existing: str, compiledir: str) -> str:
    """THEANO_FLAGS with the backend's defaults added where ``existing`` sets nothing.

    Flags already in ``existing`` (the user's) win; the compile cache goes under
    ``compiledir`` unless the user names one.
    """
    given = {item.split("=", 1)[0].strip() for item in existing.split(",") if "=" in item}
    wanted = {**DEFAULT_FLAGS, "base_compiledir": compiledir}
    added = [f"{key}={value}" for key, value in wanted.items() if key not in given]
    return ",".join(part for part in [existing.strip(","), *added] if part)


def default_compiledir() -> str:
    """A per-user cache in the temporary folder (never the repository or the home)."""
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"fnn-suite-theano-{user}")



# name -> (theano.tensor, c, activation params) -> elementwise function of z; ``c(v)`` is
# v as a 0-d array of the run's dtype, so that no Python float upcasts a float32 graph.
ACTIVATIONS: dict[str, Callable[[Any, Callable, dict], Callable]] = {
    "linear": lambda T, c, p: lambda z: z,
    # NOTE: T.nnet.relu is 0.5 * (z + |z|), whose gradient at 0 is 0.5; z * (z > 0) has
    # relu'(0) = 0, as the reference (and gives -0.0 for z < 0). Not T.switch(z > 0, z, 0),
    # the same values: Theano's C Switch branches per element, slow on random signs (see
    # docs/performance.md, section "Theano: relu as a product"). leaky_relu'(0) =
    # negative_slope.
    "relu": lambda T, c, p: lambda z: z * (z > 0),
    "leaky_relu": lambda T, c, p: lambda z: T.switch(z > 0, z, c(p["negative_slope"]) * z),
    "elu": lambda T, c, p: lambda z: T.nnet.elu(z, alpha=c(p["alpha"])),
    # the exact sigmoid (not ultra_fast_sigmoid or hard_sigmoid)
    "sigmoid": lambda T, c, p: lambda z: T.nnet.sigmoid(z),
    "tanh": lambda T, c, p: lambda z: T.tanh(z),
    "softplus": lambda T, c, p: lambda z: T.nnet.softplus(z),
    "gelu": lambda T, c, p: lambda z: c(0.5) * z * (c(1.0) + T.erf(z * c(np.sqrt(0.5)))),
    "gelu_tanh": lambda T, c, p: lambda z: c(0.5) * z * (c(1.0) + T.tanh(
        c(np.sqrt(2.0 / np.pi)) * (z + c(0.044715) * z * z * z))),
}

# Output activation applied by predict() when it is fused into a from-logits loss.
FUSED_OUTPUTS: dict[str, Callable[[Any, Any], Any]] = {
    "sigmoid": lambda T, z: T.nnet.sigmoid(z),
    "softmax": lambda T, z: T.nnet.softmax(z),
}


def _huber(T, c, p):
    def loss(z, y):
        r = abs(z - y)
        delta = c(p["delta"])
        return T.mean(T.switch(r <= delta, c(0.5) * r * r, delta * (r - c(0.5) * delta)))

    return loss


def _sparse(T, c, p):
    # Theano's own sparse cross-entropy on logits: one op for nll and softmax, and one for
    # the gradient (sm - onehot). NOTE: nll = -z[y] + m + log(sum_j exp(z_j - m)), m the
    # row maximum (CrossentropySoftmaxArgmax1HotWithBias): log_softmax's own rounding.
    return lambda z, y: T.mean(T.nnet.crossentropy_softmax_1hot(z, y)[0])


# name -> (theano.tensor, c, loss params) -> loss(z, y), a scalar; cross-entropies take
# logits z. mse, mae, huber and binary cross-entropy are means over all elements.
LOSSES: dict[str, Callable[[Any, Callable, dict], Callable]] = {
    "mse": lambda T, c, p: lambda z, y: T.mean(T.sqr(z - y)),
    "mae": lambda T, c, p: lambda z, y: T.mean(abs(z - y)),  # sgn(0) = 0
    "huber": _huber,
    # log(1 + exp(z)) - z*y = softplus(z) - z*y
    "binary_crossentropy": lambda T, c, p: lambda z, y: T.mean(T.nnet.softplus(z) - z * y),
    "categorical_crossentropy": lambda T, c, p: lambda z, y: -T.sum(
        y * T.nnet.logsoftmax(z)) / T.cast(z.shape[0], z.dtype),
    "sparse_categorical_crossentropy": _sparse,
}



class TheanoBackend(Backend):
    """Theano 1.0.5 (symbolic graph, theano.grad, updates= on shared variables)."""

    name = "theano"
    requires = ("theano",)
    environment = ("theano==1.0.5", "numpy==1.23.5", "scipy==1.10.1")
    devices = ("cpu",)
    repro = "backends.repro.theano"  # one part for Theano and PyTensor: repro_settings

    def __init__(self) -> None:
        self._theano: Any = None

    def repro_settings(self) -> dict[str, object]:
        return {"framework": "theano"}

    def load(self, threads: int) -> None:
        # Theano reads its flags once, at import.
        os.environ["THEANO_FLAGS"] = theano_flags(os.environ.get("THEANO_FLAGS", ""),
                                                  default_compiledir())
        # Theano's OpenMP (elemwise ops) and NumPy's BLAS read these when they start;
        # the harness sets them before the worker starts, this covers a direct load().
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        import theano
        import theano.tensor  # noqa: F401

        self._theano = theano

    def versions(self) -> dict[str, str]:
        return {"theano": str(self._require().__version__), "numpy": np.__version__}

    def runtime_settings(self) -> dict[str, object]:
        config = self._require().config
        settings: dict[str, object] = {
            f"theano.config.{flag}": _plain(config, flag)
            for flag in ("linker", "optimizer", "floatX", "openmp", "openmp_elemwise_minsize",
                         "blas.ldflags")}
        # NumPy's OpenBLAS (Theano's BLAS here) and Theano's OpenMP read it when they start
        settings["theano.env.OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS")
        return settings

    def build(self, spec: Spec, params: Params, dtype: str, device: str) -> Trainer:
        if device != "cpu":
            raise ValueError(f"theano runs on cpu. Received: device {device!r}")
        return TheanoTrainer(self._require(), spec, params, dtype)

    def _require(self):
        if self._theano is None:
            raise RuntimeError("TheanoBackend.load() must be called before use")
        return self._theano


class TheanoTrainer(SymbolicTrainer):
    """Shared kernels and biases, a symbolic loss, and its compiled functions."""

    activations, fused_outputs, losses = ACTIVATIONS, FUSED_OUTPUTS, LOSSES
    optimizers = OPTIMIZERS
    float64_count = True  # Adam's step count and bias corrections (see UpdateRule)

    def __init__(self, theano, spec: Spec, params: Params, dtype: str):
        import theano.tensor as T

        super().__init__(theano, T, spec, params, dtype)
        for out in (self.loss, *self.grads):
            if out.dtype != dtype:  # a Python float would upcast float32 silently
                raise TypeError(f"expected a {dtype} graph. Received: {out} of {out.dtype}")

    def c(self, value: float) -> np.ndarray:
        return np.asarray(value, dtype=self.dtype)

    def _compile(self, inputs: list, outputs, updates: list):
        theano = self.framework
        mode = theano.compile.Mode(linker=theano.config.linker,
                                   optimizer=theano.config.optimizer)
        return theano.function(inputs, outputs, updates=updates, mode=mode)

    def apply_grads(self, grads: Params) -> None:
        # NOTE: train_step's graph may fold the gradient's last operations into the update
        # (plain SGD with an L2 penalty becomes a Gemm into the kernel): fed loss_and_grads's
        # gradients, that update is then matched to rounding (5.6e-16 after three float64
        # steps), elsewhere bit for bit.
        super().apply_grads(grads)


def _plain(config, flag: str) -> object:
    """A Theano config flag (dotted name) as a JSON value."""
    value = config
    for part in flag.split("."):
        value = getattr(value, part)
    return value if isinstance(value, (bool, int, float)) else str(value)
