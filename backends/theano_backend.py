"""Theano 1.0.5 backend: a symbolic graph, theano.grad, and compiled functions.

Kernels and biases are shared variables; the forward pass is ``T.dot`` plus the bias and
theano.tensor activations; losses are written with theano's ops from logits; gradients
come from ``theano.grad``. Theano ships no optimizer classes: the Theano way is a list
of symbolic update expressions on shared state, passed as ``updates=`` to
``theano.function``, so the five update rules below are the published ones (those of
``backends.reference.optimizers``) written as such expressions.

Theano 1.0.5 needs NumPy < 1.24, so it runs in an environment of its own
(``environment`` below; see ``suite.envs``). It is imported in :meth:`TheanoBackend.load`
only, after its flags are set; the registries below take the imported
``theano.tensor`` module as their first argument.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import Backend, Batch, Params, Trainer, canonical_params, cycled

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


# name -> (theano.tensor, z, activation params, constant) -> output; ``c(v)`` is v as a
# 0-d array of the run's dtype, so that no Python float upcasts a float32 graph.
ACTIVATIONS: dict[str, Callable[..., Any]] = {
    "linear": lambda T, z, p, c: z,
    # NOTE: T.nnet.relu is 0.5 * (z + |z|), whose gradient at 0 is 0.5; z * (z > 0) has
    # relu'(0) = 0, as the reference (and gives -0.0 for z < 0). Not T.switch(z > 0, z, 0),
    # the same values: Theano's C Switch branches per element, slow on random signs (see
    # docs/performance.md, section "Theano: relu as a product"). leaky_relu'(0) =
    # negative_slope.
    "relu": lambda T, z, p, c: z * (z > 0),
    "leaky_relu": lambda T, z, p, c: T.switch(z > 0, z, c(p["negative_slope"]) * z),
    "elu": lambda T, z, p, c: T.nnet.elu(z, alpha=c(p["alpha"])),
    # the exact sigmoid (not ultra_fast_sigmoid or hard_sigmoid)
    "sigmoid": lambda T, z, p, c: T.nnet.sigmoid(z),
    "tanh": lambda T, z, p, c: T.tanh(z),
    "softplus": lambda T, z, p, c: T.nnet.softplus(z),
    "gelu": lambda T, z, p, c: c(0.5) * z * (c(1.0) + T.erf(z * c(np.sqrt(0.5)))),
    "gelu_tanh": lambda T, z, p, c: c(0.5) * z * (c(1.0) + T.tanh(
        c(np.sqrt(2.0 / np.pi)) * (z + c(0.044715) * z * z * z))),
}

# Output activation applied by predict() when it is fused into a from-logits loss.
FUSED_OUTPUTS: dict[str, Callable[[Any, Any], Any]] = {
    "sigmoid": lambda T, z: T.nnet.sigmoid(z),
    "softmax": lambda T, z: T.nnet.softmax(z),
}


def _huber(T, z, y, p, c):
    r = abs(z - y)
    delta = c(p["delta"])
    return T.mean(T.switch(r <= delta, c(0.5) * r * r, delta * (r - c(0.5) * delta)))


def _sparse(T, z, y, p, c):
    # Theano's own sparse cross-entropy on logits: one op for nll and softmax, and one for
    # the gradient (sm - onehot). NOTE: nll = -z[y] + m + log(sum_j exp(z_j - m)), m the
    # row maximum (CrossentropySoftmaxArgmax1HotWithBias): log_softmax's own rounding.
    return T.mean(T.nnet.crossentropy_softmax_1hot(z, y)[0])


# name -> (theano.tensor, z, y, loss params, constant) -> scalar; cross-entropies take
# logits z. mse, mae, huber and binary cross-entropy are means over all elements.
LOSSES: dict[str, Callable[..., Any]] = {
    "mse": lambda T, z, y, p, c: T.mean(T.sqr(z - y)),
    "mae": lambda T, z, y, p, c: T.mean(abs(z - y)),  # sgn(0) = 0
    "huber": _huber,
    # log(1 + exp(z)) - z*y = softplus(z) - z*y
    "binary_crossentropy": lambda T, z, y, p, c: T.mean(T.nnet.softplus(z) - z * y),
    "categorical_crossentropy": lambda T, z, y, p, c: -T.sum(
        y * T.nnet.logsoftmax(z)) / T.cast(z.shape[0], z.dtype),
    "sparse_categorical_crossentropy": _sparse,
}


# ---------------------------------------------------------------------------- optimizers
# Each rule: (T, ctx, p, g, hyper) -> list of (shared variable, new value) pairs for
# ``updates=``. ``ctx`` gives constants (ctx.c), zero-filled state (ctx.slot) and the
# step count t (a float64 shared scalar plus one: the first update has t = 1, as the
# reference's).


def _sgd(T, ctx, p, g, h):
    lr, mu = ctx.c(h["learning_rate"]), h["momentum"]
    if mu == 0.0:
        return [(p, p - lr * g)]
    buf = ctx.slot(p, "momentum_buffer")
    new_buf = ctx.c(mu) * buf + g
    step = lr * (g + ctx.c(mu) * new_buf) if h["nesterov"] else lr * new_buf
    return [(buf, new_buf), (p, p - step)]


def _adam(T, ctx, p, g, h, start=None):
    start = p if start is None else start
    b1, b2 = h["beta_1"], h["beta_2"]
    m, v = ctx.slot(p, "m"), ctx.slot(p, "v")
    new_m = ctx.c(b1) * m + ctx.c(1.0 - b1) * g
    new_v = ctx.c(b2) * v + ctx.c(1.0 - b2) * (g * g)
    pairs = [(m, new_m), (v, new_v)]
    if h["amsgrad"]:  # the running maximum of v replaces v (torch's form)
        v_max = ctx.slot(p, "v_max")
        new_v = T.maximum(v_max, new_v)
        pairs.append((v_max, new_v))
    # NOTE: the bias corrections in float64 from the float64 step count, then cast, as
    # the reference's Python floats 1 - beta ** t meet a float32 array.
    c1 = T.cast(1.0 - np.float64(b1) ** ctx.t, ctx.dtype)
    c2 = T.cast(1.0 - np.float64(b2) ** ctx.t, ctx.dtype)
    step = ctx.c(h["learning_rate"]) * (new_m / c1) / (T.sqrt(new_v / c2) + ctx.c(h["epsilon"]))
    return pairs + [(p, start - step)]


def _adamw(T, ctx, p, g, h):
    # decoupled weight decay on the parameter before the Adam step
    decayed = p - ctx.c(h["learning_rate"] * h["weight_decay"]) * p
    return _adam(T, ctx, p, g, h, start=decayed)


def _rmsprop(T, ctx, p, g, h):
    rho, mom = h["rho"], h["momentum"]
    v = ctx.slot(p, "square_avg")
    new_v = ctx.c(rho) * v + ctx.c(1.0 - rho) * (g * g)
    pairs, var = [(v, new_v)], new_v
    if h["centered"]:
        a = ctx.slot(p, "grad_avg")
        new_a = ctx.c(rho) * a + ctx.c(1.0 - rho) * g
        pairs.append((a, new_a))
        var = new_v - new_a * new_a
    denom = T.sqrt(var) + ctx.c(h["epsilon"])
    lr = ctx.c(h["learning_rate"])
    if mom == 0.0:
        return pairs + [(p, p - lr * g / denom)]
    buf = ctx.slot(p, "momentum_buffer")
    new_buf = ctx.c(mom) * buf + g / denom
    return pairs + [(buf, new_buf), (p, p - lr * new_buf)]


def _adagrad(T, ctx, p, g, h):
    acc = ctx.slot(p, "sum", fill=h["initial_accumulator_value"])
    new_acc = acc + g * g
    step = ctx.c(h["learning_rate"]) * g / (T.sqrt(new_acc) + ctx.c(h["epsilon"]))
    return [(acc, new_acc), (p, p - step)]


OPTIMIZERS: dict[str, Callable[..., list]] = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adamw,
    "rmsprop": _rmsprop,
    "adagrad": _adagrad,
}


class TheanoBackend(Backend):
    """Theano 1.0.5 (symbolic graph, theano.grad, updates= on shared variables)."""

    name = "theano"
    requires = ("theano",)
    environment = ("theano==1.0.5", "numpy==1.23.5", "scipy==1.10.1")
    devices = ("cpu",)

    def __init__(self) -> None:
        self._theano: Any = None

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


class _Context:
    """What an update rule needs: the run's dtype, its constants, state and step count."""

    def __init__(self, theano, dtype: np.dtype):
        self.theano, self.dtype = theano, str(dtype)
        self.np_dtype = dtype
        self.state: list = []
        self.counter: list = []  # (count, count + 1) once a rule has asked for t
        self._t = None

    @property
    def t(self):
        """The number of this update (1 first): a float64 shared count plus one, made on
        first use, so that a rule without one (SGD) updates no counter."""
        if self._t is None:
            count = self.theano.shared(np.float64(0.0), name="t")
            self._t = count + np.float64(1.0)
            self.counter.append((count, self._t))
        return self._t

    def c(self, value: float) -> np.ndarray:
        return np.asarray(value, dtype=self.np_dtype)

    def slot(self, p, name: str, fill: float = 0.0):
        value = np.full_like(p.get_value(borrow=True), fill)
        shared = self.theano.shared(value, name=f"{p.name}/{name}")
        self.state.append(shared)
        return shared


class TheanoTrainer(Trainer):
    """Shared kernels and biases, a symbolic loss, and three compiled functions."""

    def __init__(self, theano, spec: Spec, params: Params, dtype: str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"expected dtype float32 or float64. Received: {dtype!r}")
        import theano.tensor as T

        self.theano, self.T, self.spec = theano, T, spec
        self.dtype = np.dtype(dtype)
        self.sparse = spec.loss.name == "sparse_categorical_crossentropy"
        self.kernels, self.biases = _shared_params(theano, spec, params, self.dtype)
        self.x = T.matrix("x", dtype=dtype)
        self.y = T.vector("y", dtype="int64") if self.sparse else T.matrix("y", dtype=dtype)
        self.z = self._forward(self.x)
        self.loss = self._loss(self.z, self.y)
        self.params = [v for pair in zip(self.kernels, self.biases, strict=True) for v in pair]
        self.grads = theano.grad(self.loss, self.params)
        for out in (self.loss, *self.grads):
            if out.dtype != dtype:  # a Python float would upcast float32 silently
                raise TypeError(f"expected a {dtype} graph. Received: {out} of {out.dtype}")
        self._compiled: dict[str, Any] = {}

    # ------------------------------------------------------------------ graph

    def c(self, value: float) -> np.ndarray:
        return np.asarray(value, dtype=self.dtype)

    def _forward(self, x):
        T, h = self.T, x
        last = len(self.spec.layers) - 1
        for i, layer in enumerate(self.spec.layers):
            h = T.dot(h, self.kernels[i]) + self.biases[i]
            if not (i == last and self.spec.fused_output):
                act = layer.activation
                h = ACTIVATIONS[act.name](T, h, act.params, self.c)
        return h

    def _loss(self, z, y):
        spec, T = self.spec, self.T
        loss = LOSSES[spec.loss.name](T, z, y, spec.loss.params, self.c)
        for kernel, layer in zip(self.kernels, spec.layers, strict=True):
            if layer.kernel_l2 > 0:
                # Keras semantics: the penalty is part of the loss (not weight decay).
                loss = loss + self.c(layer.kernel_l2) * T.sum(T.sqr(kernel))
        return loss

    def _updates(self) -> list:
        opt = self.spec.optimizer
        ctx = _Context(self.theano, self.dtype)
        rule = OPTIMIZERS[opt.name]
        updates = []
        for p, g in zip(self.params, self.grads, strict=True):
            updates += rule(self.T, ctx, p, g, opt.params)
        return ctx.counter + updates

    def _function(self, name: str):
        """Compiled on first use: the kit builds many trainers and calls few functions."""
        if name not in self._compiled:
            theano, T = self.theano, self.T
            mode = theano.compile.Mode(linker=theano.config.linker,
                                       optimizer=theano.config.optimizer)
            if name == "loss_and_grads":
                fn = theano.function([self.x, self.y], [self.loss, *self.grads], mode=mode)
            elif name == "train_step":
                # outputs are computed from the values before the updates are applied
                fn = theano.function([self.x, self.y], self.loss, updates=self._updates(),
                                     mode=mode)
            else:
                out = self.z
                if self.spec.fused_output:
                    out = FUSED_OUTPUTS[self.spec.output_activation](T, out)
                fn = theano.function([self.x], out, mode=mode)
            self._compiled[name] = fn
        return self._compiled[name]

    # ------------------------------------------------------------------ conversions

    def _x(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _y(self, y: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(y, dtype=np.int64 if self.sparse else self.dtype)

    # ------------------------------------------------------------------ contract

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        loss, *grads = self._function("loss_and_grads")(self._x(x), self._y(y))
        names = [f"dense_{i}/{part}" for i in range(len(self.kernels))
                 for part in ("kernel", "bias")]
        return float(loss), {n: np.array(g, copy=True) for n, g in zip(names, grads,
                                                                         strict=True)}

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(self._function("train_step")(self._x(x), self._y(y)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.array(self._function("predict")(self._x(x)), copy=True)

    def get_params(self) -> Params:
        params: Params = {}
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            params[f"dense_{i}/kernel"] = kernel.get_value(borrow=False)
            params[f"dense_{i}/bias"] = bias.get_value(borrow=False)
        return params

    def fast_step(self, batches: Sequence[Batch]) -> Callable[[], None]:
        cycle = cycled(batches, lambda x, y: (self._x(x), self._y(y)))
        function = self._function

        def step() -> None:
            x, y = next(cycle)
            train = function("train_step")  # train_step's function; compiled on the first call
            # The inputs already have the graph's dtypes: skip Theano's input checks for
            # this call only, so that train_step keeps them.
            train.trust_input = True
            try:
                train(x, y)  # returns host values: the step has finished
            finally:
                train.trust_input = False

        return step


def _plain(config, flag: str) -> object:
    """A Theano config flag (dotted name) as a JSON value."""
    value = config
    for part in flag.split("."):
        value = getattr(value, part)
    return value if isinstance(value, (bool, int, float)) else str(value)


def _shared_params(theano, spec: Spec, params: Params, dtype: np.dtype) -> tuple[list, list]:
    """Shared kernels (fan_in, fan_out) and biases holding copies of ``params``."""
    shared = [theano.shared(value, name=name)
              for name, value in canonical_params(spec, params, dtype).items()]
    return shared[0::2], shared[1::2]
