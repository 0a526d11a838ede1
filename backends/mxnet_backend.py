"""MXNet backend: Gluon Dense layers, mx.autograd, gluon.loss and gluon.Trainer.

MXNet 1.9.1 needs NumPy < 1.24, so it runs in a virtual environment of its own
(``environment`` below; see suite/envs.py). mxnet is imported in
:meth:`MxnetBackend.load` only; the registries take the imported module as their first
argument. Every hyperparameter of the spec is passed explicitly; where MXNet's native
formula differs from the reference, suite/ledger/mxnet.py says how.

The network and the loss (with its batch mean) are hybridized when the trainer is built
(``hybridize`` with static_alloc and static_shape, Gluon's documented fast path: a cached
graph, memory planned once), so train_step, loss_and_grads, predict and fast_step all run
the same cached graphs: imperatively, per-operator dispatch is most of a small step
(see docs/performance.md, section "MXNet: hybridized blocks"). Parameters after five Adam
steps are bit for bit those of the imperative blocks (float32 and float64; relu,
leaky_relu, elu, sigmoid, tanh, softplus; four losses).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import Backend, Batch, Params, Trainer, canonical_params, cycled

if TYPE_CHECKING:
    from suite.spec import Spec

# name -> (mxnet, activation params) -> Gluon block (None: no block).
ACTIVATIONS: dict[str, Callable[[Any, dict], Any]] = {
    "linear": lambda mx, p: None,
    "relu": lambda mx, p: mx.gluon.nn.Activation("relu"),
    # NOTE: LeakyReLU's ``slope`` is a 32-bit operator attribute: a float64 run uses
    # the float32 nearest to the slope (ledger mxnet-float32-attributes).
    "leaky_relu": lambda mx, p: mx.gluon.nn.LeakyReLU(alpha=p["negative_slope"]),
    "elu": lambda mx, p: mx.gluon.nn.ELU(alpha=p["alpha"]),
    "sigmoid": lambda mx, p: mx.gluon.nn.Activation("sigmoid"),
    "tanh": lambda mx, p: mx.gluon.nn.Activation("tanh"),
    # NOTE: softrelu returns x itself where x > 20, as torch's Softplus (threshold 20).
    "softplus": lambda mx, p: mx.gluon.nn.Activation("softrelu"),
    # LeakyReLU(act_type="gelu"): the exact form, x * Phi(x) with erf
    "gelu": lambda mx, p: mx.gluon.nn.GELU(),
}

# Output activation applied by predict() when it is fused into a from-logits loss.
FUSED_OUTPUTS: dict[str, Callable[[Any, Any], Any]] = {
    "sigmoid": lambda mx, z: mx.nd.sigmoid(z),
    "softmax": lambda mx, z: mx.nd.softmax(z, axis=-1),
}

# name -> (mxnet, loss params) -> gluon loss; each gives one value per sample, which
# the trainer averages over the batch. Cross-entropies take logits.
LOSSES: dict[str, Callable[[Any, dict], Any]] = {
    # NOTE: L2Loss is 1/2 (z - y)^2 averaged over a sample's units; weight=2 cancels the
    # 1/2 exactly (both are powers of two), so the batch mean is the mean over all elements.
    "mse": lambda mx, p: mx.gluon.loss.L2Loss(weight=2.0, batch_axis=0),
    "mae": lambda mx, p: mx.gluon.loss.L1Loss(weight=None, batch_axis=0),
    # NOTE: HuberLoss(rho) is Keras's huber divided by rho (r^2 / (2 rho), or r - rho/2);
    # weight=rho gives Keras's 0.5 r^2 and rho (r - rho/2) (ledger mxnet-huber-scale).
    "huber": lambda mx, p: mx.gluon.loss.HuberLoss(rho=p["delta"], weight=p["delta"],
                                                   batch_axis=0),
    "binary_crossentropy": lambda mx, p: mx.gluon.loss.SigmoidBinaryCrossEntropyLoss(
        from_sigmoid=False, weight=None, batch_axis=0),
    # probability targets of shape (batch, classes)
    "categorical_crossentropy": lambda mx, p: mx.gluon.loss.SoftmaxCrossEntropyLoss(
        axis=-1, sparse_label=False, from_logits=False, weight=None, batch_axis=0),
    # class indices of shape (batch,)
    "sparse_categorical_crossentropy": lambda mx, p: mx.gluon.loss.SoftmaxCrossEntropyLoss(
        axis=-1, sparse_label=True, from_logits=False, weight=None, batch_axis=0),
}

# Shared by every optimizer: no weight decay, no clipping, the gradient as computed
# (the loss is already the batch mean and Trainer.step(1) keeps rescale_grad at 1).
_PLAIN = {"wd": 0.0, "rescale_grad": 1.0, "clip_gradient": None, "multi_precision": False}


def _sgd(mx, p: dict):
    if p["nesterov"] and p["momentum"] > 0:
        # NAG: state = mu*state + g; w -= lr*(g + mu*state), torch's nesterov form
        return mx.optimizer.NAG(learning_rate=p["learning_rate"], momentum=p["momentum"],
                                **_PLAIN)
    # NOTE: sgd_mom_update is v = mu*v - lr*g; w += v (Keras's form; ledger
    # mxnet-sgd-momentum). Without momentum (also nesterov without it) it is w -= lr*g.
    return mx.optimizer.SGD(learning_rate=p["learning_rate"], momentum=p["momentum"],
                            lazy_update=False, **_PLAIN)


def _adam(mx, p: dict):
    if p["amsgrad"]:
        raise ValueError("expected amsgrad=False: MXNet 1.9's Adam has no AMSGrad variant. "
                         "Received: amsgrad=True")
    # NOTE: MXNet folds the bias corrections into the step size and adds epsilon to
    # sqrt(v): Keras's "epsilon hat" (ledger mxnet-adam-epsilon).
    return mx.optimizer.Adam(learning_rate=p["learning_rate"], beta1=p["beta_1"],
                             beta2=p["beta_2"], epsilon=p["epsilon"], lazy_update=False,
                             **_PLAIN)


def _rmsprop(mx, p: dict):
    if p["momentum"] > 0 and not p["centered"]:
        raise ValueError("expected momentum=0 or centered=True: MXNet's plain RMSProp "
                         "(rmsprop_update) has no momentum, only its centered form "
                         f"(rmspropalex_update) has. Received: momentum={p['momentum']}, "
                         "centered=False")
    # NOTE: epsilon inside the square root; centered (Graves) keeps lr in its momentum
    # buffer, delta = gamma2*delta - lr*g/sqrt(n - a^2 + eps); w += delta: Keras's form
    # (ledger mxnet-rmsprop-epsilon). gamma2 is only read when centered.
    return _typed_state(mx.optimizer.RMSProp)(
        learning_rate=p["learning_rate"], gamma1=p["rho"], gamma2=p["momentum"],
        epsilon=p["epsilon"], centered=p["centered"], clip_weights=None, **_PLAIN)


def _adagrad(mx, p: dict):
    # NOTE: MXNet's history starts at 0 and its eps sits inside the square root:
    # w -= lr*g/sqrt(history + eps). An accumulator starting at initial_accumulator_value
    # with epsilon inside the root is the same formula with eps = initial + epsilon
    # (ledger mxnet-adagrad-epsilon).
    eps = p["initial_accumulator_value"] + p["epsilon"]
    return _typed_state(mx.optimizer.AdaGrad)(learning_rate=p["learning_rate"], eps=eps,
                                              **_PLAIN)


def _typed_state(optimizer: type) -> type:
    """``optimizer`` with its state in the weight's dtype; its update is MXNet's own.

    MXNet 1.9's RMSProp and AdaGrad create their state with ``zeros(shape, context)``,
    float32 whatever the weight's dtype, which the float64 update operators refuse
    ("Incompatible attr ... expected float64, got float32").
    """

    class Typed(optimizer):
        def create_state(self, index, weight):
            state = super().create_state(index, weight)
            if isinstance(state, tuple):
                return tuple(s.astype(weight.dtype) for s in state)
            return state.astype(weight.dtype)

    Typed.__name__ = f"Typed{optimizer.__name__}"
    return Typed


OPTIMIZERS: dict[str, Callable[[Any, dict], Any]] = {
    "sgd": _sgd,
    "adam": _adam,
    "rmsprop": _rmsprop,
    "adagrad": _adagrad,
}

# Environment variables read once, when mxnet is imported: OpenMP sizes the operators'
# pool (oneDNN included); the engine's own CPU workers stay at one.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS")
# Also read once: no Tensor Core math (TF32, or float16 conversions) for float32 on a GPU;
# MXNet's default allows Tensor Cores.
_PRECISION_VARIABLES = {"MXNET_CUDA_ALLOW_TENSOR_CORE": "0",
                        "MXNET_CUDA_TENSOR_OP_MATH_ALLOW_CONVERSION": "0"}
# What runtime_settings reports of the environment as mxnet read it.
_REPORTED_VARIABLES = ("MXNET_CPU_WORKER_NTHREADS", *_THREAD_VARIABLES, *_PRECISION_VARIABLES,
                       "MXNET_ENGINE_TYPE", "MXNET_SUBGRAPH_BACKEND")
# Features of the build that decide how a step runs (mx.runtime.Features).
_REPORTED_FEATURES = ("CUDA", "CUDNN", "MKLDNN", "OPENMP", "BLAS_OPEN", "BLAS_MKL",
                      "BLAS_APPLE", "BLAS_ATLAS", "LAPACK", "INT64_TENSOR_SIZE")


class MxnetBackend(Backend):
    """Apache MXNet 1.9 (Gluon, imperative NDArray with autograd, gluon.Trainer)."""

    name = "mxnet"
    requires = ("mxnet",)
    extra = ""  # not in the main environment: see ``environment``
    environment = ("mxnet==1.9.1", "numpy<1.24")
    devices = ("cpu", "cuda")
    repro = "backends.repro.mxnet"
    unsupported = {
        "activation:gelu_tanh": "MXNet 1.9 has no tanh-approximated GELU (LeakyReLU's "
                                "act_type 'gelu' is the erf form; 'gelu_tanh' came in 2.0)",
        "optimizer:adamw": "MXNet 1.9 has no AdamW optimizer in mx.optimizer (only the "
                           "bare operator contrib.adamw_update, and no AMSGrad)",
        "optimizer:adam+amsgrad": "MXNet 1.9's Adam has no AMSGrad option",
        # NOTE: float64 is supported, but MXNet's operator attributes are C++ float: the
        # reference reproduces those roundings (ledger mxnet-float32-attributes). GELU is
        # different: computed in float32 throughout (ledger mxnet-float32-gelu).
        "activation:gelu@float64": "MXNet 1.9 computes GELU in float32 even in a float64 "
                                   "run (0.5f * x * (1 + erff(x / sqrt 2)), measured bit for "
                                   "bit): 1e-7 from the float64 formula, which no reference "
                                   "convention reproduces to 1e-9",
    }

    def __init__(self) -> None:
        self._mx: Any = None
        self._environment: dict[str, str | None] = {}

    def load(self, threads: int) -> None:
        # NOTE: MXNet reads these when it is imported; a process that imported it
        # before keeps its pool (as TensorFlow does).
        for key in _THREAD_VARIABLES:
            os.environ[key] = str(threads)
        os.environ["MXNET_CPU_WORKER_NTHREADS"] = "1"
        # A correctness tool: no TF32 in float32 matrix products on a GPU (a CPU-only build
        # reads and ignores these).
        os.environ.update(_PRECISION_VARIABLES)
        import mxnet

        self._mx = mxnet
        self._environment = {key: os.environ.get(key) for key in _REPORTED_VARIABLES}

    def runtime_settings(self) -> dict[str, object]:
        mx = self._require()
        features = mx.runtime.Features()
        settings: dict[str, object] = {f"mxnet.env.{key}": value
                                       for key, value in self._environment.items()}
        settings["mxnet.features"] = [name for name in _REPORTED_FEATURES
                                      if features.is_enabled(name)]
        settings["mxnet.num_gpus"] = int(mx.context.num_gpus())
        return settings

    def versions(self) -> dict[str, str]:
        return {"mxnet": str(self._require().__version__)}

    def supports(self, feature: str) -> bool | str:
        if feature == "device:cuda" and self._require().context.num_gpus() == 0:
            return "mx.context.num_gpus() is 0 (no CUDA device or a CPU-only build of MXNet)"
        return super().supports(feature)

    def build(self, spec: Spec, params: Params, dtype: str, device: str) -> Trainer:
        return MxnetTrainer(self._require(), spec, params, dtype, device)

    def _require(self):
        if self._mx is None:
            raise RuntimeError("MxnetBackend.load() must be called before use")
        return self._mx


class MxnetTrainer(Trainer):
    """A HybridSequential of Dense and activation blocks, a gluon loss and gluon.Trainer."""

    def __init__(self, mx, spec: Spec, params: Params, dtype: str, device: str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"expected dtype float32 or float64. Received: {dtype!r}")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"expected device cpu or cuda. Received: {device!r}")
        self.mx = mx
        self.dtype = dtype
        self.ctx = mx.cpu() if device == "cpu" else mx.gpu(0)
        self.spec = spec
        self.net, self.dense = _sequential(mx, spec, params, dtype, self.ctx)
        self.criterion = _batch_mean(mx, LOSSES[spec.loss.name](mx, spec.loss.params))
        # Gluon's fast path for every call (see the module docstring); the graphs are
        # cached on the first call, and a new input shape is allowed (re-planned).
        for block in (self.net, self.criterion):
            block.hybridize(active=True, static_alloc=True, static_shape=True)
        pairs = zip(self.dense, spec.layers, strict=True)
        self.l2 = [(layer.weight, layer_spec.kernel_l2) for layer, layer_spec in pairs
                   if layer_spec.kernel_l2 > 0]
        opt = spec.optimizer
        if opt.name not in OPTIMIZERS:
            raise ValueError(f"expected an optimizer of {', '.join(OPTIMIZERS)}. "
                             f"Received: {opt.name!r}")
        self.trainer = mx.gluon.Trainer(self.net.collect_params(),
                                        OPTIMIZERS[opt.name](mx, opt.params), kvstore=None)

    # ------------------------------------------------------------------ conversions

    def _x(self, x: np.ndarray):
        return self.mx.nd.array(np.asarray(x), ctx=self.ctx, dtype=self.dtype)

    def _y(self, y: np.ndarray):
        # Sparse class indices travel in the run's dtype: pick() takes float indices.
        return self.mx.nd.array(np.asarray(y), ctx=self.ctx, dtype=self.dtype)

    def _loss(self, x, y):
        loss = self.criterion(self.net(x), y)
        for weight, l2 in self.l2:
            # Keras semantics: the penalty is part of the loss (not weight decay).
            loss = loss + l2 * (weight.data() ** 2).sum()
        return loss

    def _backward(self, x, y):
        with self.mx.autograd.record():
            loss = self._loss(x, y)
        loss.backward()
        return loss

    # ------------------------------------------------------------------ contract

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        loss = self._backward(self._x(x), self._y(y))
        grads: Params = {}
        for i, layer in enumerate(self.dense):
            # Gluon stores (units, in_units): kernel = weight.T
            grads[f"dense_{i}/kernel"] = layer.weight.grad().asnumpy().T.copy()
            grads[f"dense_{i}/bias"] = layer.bias.grad().asnumpy().copy()
        return float(loss.asscalar()), grads

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss = self._backward(self._x(x), self._y(y))
        value = float(loss.asscalar())  # read before the update
        self.trainer.step(1)  # the loss is a mean already: rescale_grad = 1 / 1
        return value

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self.net(self._x(x))
        if self.spec.fused_output:
            out = FUSED_OUTPUTS[self.spec.output_activation](self.mx, out)
        return out.asnumpy().copy()

    def get_params(self) -> Params:
        params: Params = {}
        for i, layer in enumerate(self.dense):
            params[f"dense_{i}/kernel"] = layer.weight.data().asnumpy().T.copy()
            params[f"dense_{i}/bias"] = layer.bias.data().asnumpy().copy()
        return params

    def set_params(self, params: Params) -> None:
        checked = canonical_params(self.spec, params, self.dtype)
        for i, layer in enumerate(self.dense):
            # in place (Parameter.set_data copies into its arrays), which the cached graphs
            # and the gluon.Trainer keep
            layer.weight.set_data(self._array(checked[f"dense_{i}/kernel"].T))
            layer.bias.set_data(self._array(checked[f"dense_{i}/bias"]))

    def apply_grads(self, grads: Params) -> None:
        for i, layer in enumerate(self.dense):
            for param, value in ((layer.weight, grads[f"dense_{i}/kernel"].T),
                                 (layer.bias, grads[f"dense_{i}/bias"])):
                param.grad()[:] = self._array(value)
                # marked as autograd's backward marks it: Trainer.step refuses (or skips) a
                # parameter whose gradient is not fresh, and clears the mark
                param.data()._fresh_grad = True
        # NOTE: train_step's own call (its updater, state and update count: Adam's bias
        # correction from the same t), so fed loss_and_grads's gradients it is bit for bit
        # train_step's update, float32 attributes included
        self.trainer.step(1)

    def _array(self, value: np.ndarray):
        return self.mx.nd.array(np.ascontiguousarray(value), ctx=self.ctx, dtype=self.dtype)

    def fast_step(self, batches: Sequence[Batch]) -> Callable[[], None]:
        cycle = cycled(batches, lambda x, y: (self._x(x), self._y(y)))
        backward, update, waitall = self._backward, self.trainer.step, self.mx.nd.waitall
        waitall()  # the batches are on the device before the clock

        def step() -> None:
            x, y = next(cycle)
            backward(x, y)  # train_step's cached graphs, without its read of the loss
            update(1)
            waitall()  # the engine is asynchronous: the step ends when the update is done

        return step


def _batch_mean(mx, loss):
    """A block giving the batch mean of the gluon ``loss``'s per-sample values: hybridized,
    the mean is part of the loss's cached graph (an imperative ``.mean()`` after it costs two
    more engine operations a step, forward and backward; see docs/performance.md, section
    "MXNet: hybridized blocks")."""

    class BatchMean(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__(prefix="batch_mean_")
            self.loss = loss  # a child block

        def hybrid_forward(self, F, z, y):  # noqa: N803 (Gluon's name for the op module)
            return F.mean(self.loss(z, y))

    return BatchMean()


def _sequential(mx, spec: Spec, params: Params, dtype: str, ctx):
    """A HybridSequential holding exactly ``params``; returns it and its Dense blocks."""
    net = mx.gluon.nn.HybridSequential()
    dense = []
    last = len(spec.layers) - 1
    checked = canonical_params(spec, params, dtype)
    for i, (fan_in, layer) in enumerate(zip(spec.sizes[:-1], spec.layers, strict=True)):
        block = mx.gluon.nn.Dense(layer.units, activation=None, use_bias=True, flatten=False,
                                  dtype=dtype, in_units=fan_in, prefix=f"dense_{i}_")
        net.add(block)
        dense.append(block)
        if not (i == last and spec.fused_output):
            act = layer.activation
            if act.name not in ACTIVATIONS:
                raise ValueError(f"expected an activation of {', '.join(ACTIVATIONS)}. "
                                 f"Received: {act.name!r}")
            activation = ACTIVATIONS[act.name](mx, act.params)
            if activation is not None:
                net.add(activation)
    # Gluon allocates parameters only through initialize(); the values are replaced
    # right away with the suite's, so the initializer never shows.
    net.initialize(mx.init.Zero(), ctx=ctx)
    for i, block in enumerate(dense):
        # Gluon stores (units, in_units): weight = kernel.T
        kernel = np.ascontiguousarray(checked[f"dense_{i}/kernel"].T)
        block.weight.set_data(mx.nd.array(kernel, ctx=ctx, dtype=dtype))
        block.bias.set_data(mx.nd.array(checked[f"dense_{i}/bias"], ctx=ctx, dtype=dtype))
    return net, dense
