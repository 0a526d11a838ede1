"""Reproduce, with MXNet and NumPy alone, what fnn-suite measured at the first step this
backend left the noise: ``python mxnet.py`` prints the difference (``--help``).

The network is built as the suite's mxnet backend builds it: a HybridSequential of Gluon
Dense and activation blocks holding the state's parameters, a gluon loss averaged over
the batch, both hybridized (static_alloc, static_shape), mx.autograd, and gluon.Trainer
with every hyperparameter given. MXNet 1.9.1 needs NumPy < 1.24.
"""

import os
import sys
from pathlib import Path

# NOTE: `python repro/mxnet.py` puts repro/ first on sys.path, and the scripts there are
# named like the frameworks they import: without this, `import mxnet` imports the script.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]

import numpy as np  # noqa: E402

from backends.repro.common import State, run  # noqa: E402  (inlined in a run's repro/)

mx = None  # imported by load(): MXNet reads its thread settings when it is imported

ACTIVATIONS = {
    "linear": lambda p: None,
    "relu": lambda p: mx.gluon.nn.Activation("relu"),
    # NOTE: LeakyReLU's slope (and ELU's alpha) is a C++ float attribute, even in float64.
    "leaky_relu": lambda p: mx.gluon.nn.LeakyReLU(alpha=p["negative_slope"]),
    "elu": lambda p: mx.gluon.nn.ELU(alpha=p["alpha"]),
    "sigmoid": lambda p: mx.gluon.nn.Activation("sigmoid"),
    "tanh": lambda p: mx.gluon.nn.Activation("tanh"),
    # NOTE: softrelu returns x itself where x > 20.
    "softplus": lambda p: mx.gluon.nn.Activation("softrelu"),
    "gelu": lambda p: mx.gluon.nn.GELU(),  # the erf form
}
LOSSES = {  # one value a sample (averaged by BatchMean); cross-entropies from logits
    # NOTE: L2Loss is (z - y)^2 / 2 averaged over a sample's units: weight 2 cancels the 1/2.
    "mse": lambda p: mx.gluon.loss.L2Loss(weight=2.0, batch_axis=0),
    "mae": lambda p: mx.gluon.loss.L1Loss(weight=None, batch_axis=0),
    # NOTE: HuberLoss(rho) is Keras's huber divided by rho: weight=rho gives Keras's.
    "huber": lambda p: mx.gluon.loss.HuberLoss(rho=p["delta"], weight=p["delta"],
                                               batch_axis=0),
    "binary_crossentropy": lambda p: mx.gluon.loss.SigmoidBinaryCrossEntropyLoss(
        from_sigmoid=False, weight=None, batch_axis=0),
    "categorical_crossentropy": lambda p: mx.gluon.loss.SoftmaxCrossEntropyLoss(
        axis=-1, sparse_label=False, from_logits=False, weight=None, batch_axis=0),
    "sparse_categorical_crossentropy": lambda p: mx.gluon.loss.SoftmaxCrossEntropyLoss(
        axis=-1, sparse_label=True, from_logits=False, weight=None, batch_axis=0),
}
# no weight decay or clipping; the loss is the batch mean and Trainer.step(1) keeps
# rescale_grad at 1. NOTE: the update operators' lr, momentum, betas, gammas and epsilon
# are C++ float attributes: a float64 run uses their float32 roundings.
PLAIN = {"wd": 0.0, "rescale_grad": 1.0, "clip_gradient": None, "multi_precision": False}


def typed(optimizer):
    """``optimizer`` with its state in the weight's dtype: MXNet 1.9's RMSProp and AdaGrad
    make float32 state, which their float64 update operators refuse."""

    class Typed(optimizer):
        def create_state(self, index, weight):
            state = super().create_state(index, weight)
            if isinstance(state, tuple):
                return tuple(s.astype(weight.dtype) for s in state)
            return state.astype(weight.dtype)

    return Typed


def sgd(p):
    if p["nesterov"] and p["momentum"] > 0:
        return mx.optimizer.NAG(learning_rate=p["learning_rate"], momentum=p["momentum"],
                                **PLAIN)
    # NOTE: sgd_mom_update is v = mu*v - lr*g; w += v
    return mx.optimizer.SGD(learning_rate=p["learning_rate"], momentum=p["momentum"],
                            lazy_update=False, **PLAIN)


OPTIMIZERS = {
    "sgd": sgd,
    # NOTE: MXNet's Adam folds the bias corrections into the step size, epsilon on sqrt(v).
    "adam": lambda p: mx.optimizer.Adam(
        learning_rate=p["learning_rate"], beta1=p["beta_1"], beta2=p["beta_2"],
        epsilon=p["epsilon"], lazy_update=False, **PLAIN),
    # NOTE: epsilon inside the square root; gamma2 (momentum) is read only when centered.
    "rmsprop": lambda p: typed(mx.optimizer.RMSProp)(
        learning_rate=p["learning_rate"], gamma1=p["rho"], gamma2=p["momentum"],
        epsilon=p["epsilon"], centered=p["centered"], clip_weights=None, **PLAIN),
    # NOTE: MXNet's history starts at 0, eps inside the root: the initial accumulator
    # value is folded into eps.
    "adagrad": lambda p: typed(mx.optimizer.AdaGrad)(
        learning_rate=p["learning_rate"],
        eps=p["initial_accumulator_value"] + p["epsilon"], **PLAIN),
}


def load(threads):
    """Import mxnet with the suite's settings (read once, at import): OpenMP's pool (oneDNN's
    included) at the run's threads, one engine worker, no Tensor Core math on a GPU."""
    global mx
    os.environ.update({"OMP_NUM_THREADS": str(threads), "MXNET_OMP_MAX_THREADS": str(threads),
                       "MXNET_CPU_WORKER_NTHREADS": "1", "MXNET_CUDA_ALLOW_TENSOR_CORE": "0",
                       "MXNET_CUDA_TENSOR_OP_MATH_ALLOW_CONVERSION": "0"})
    import mxnet

    mx = mxnet


def versions():
    # oneDNN runs MXNet's float32 CPU operators unless MXNET_MKLDNN_ENABLED=0
    onednn = mx.runtime.Features().is_enabled("MKLDNN") and \
        os.environ.get("MXNET_MKLDNN_ENABLED", "1") != "0"
    return {"mxnet": mx.__version__, "numpy": np.__version__,
            "oneDNN": "on" if onednn else "off"}


def batch_mean(loss):
    """The loss's batch mean, inside its hybridized graph."""

    class BatchMean(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__(prefix="batch_mean_")
            self.loss = loss

        def hybrid_forward(self, F, z, y):  # noqa: N803 (Gluon's name)
            return F.mean(self.loss(z, y))

    return BatchMean()


def array(value, dtype):
    return mx.nd.array(np.ascontiguousarray(value), ctx=mx.cpu(), dtype=dtype)


def set_params(dense, params, dtype):
    for i, layer in enumerate(dense):  # Gluon's weight is (units, in_units): kernel.T
        layer.weight.set_data(array(params[f"dense_{i}/kernel"].T, dtype))
        layer.bias.set_data(array(params[f"dense_{i}/bias"], dtype))


def network(state):
    """The hybridized HybridSequential holding the state's parameters; its Dense blocks."""
    net, dtype = state.network, state.dtype
    model, dense, fan_in = mx.gluon.nn.HybridSequential(), [], net["input_dim"]
    for i, layer in enumerate(net["layers"]):
        block = mx.gluon.nn.Dense(layer["units"], activation=None, use_bias=True,
                                  flatten=False, dtype=dtype, in_units=fan_in,
                                  prefix=f"dense_{i}_")
        model.add(block)
        dense.append(block)
        fan_in = layer["units"]
        if not (i == len(net["layers"]) - 1 and net["fused_output"]):
            activation = ACTIVATIONS[layer["activation"]](layer["activation_params"])
            if activation is not None:
                model.add(activation)
    model.initialize(mx.init.Zero(), ctx=mx.cpu())  # allocates; replaced right away
    set_params(dense, state.params(), dtype)
    model.hybridize(active=True, static_alloc=True, static_shape=True)
    return model, dense


def forward_backward(state, model, dense):
    net, dtype = state.network, state.dtype
    criterion = batch_mean(LOSSES[net["loss"]](net["loss_params"]))
    criterion.hybridize(active=True, static_alloc=True, static_shape=True)
    x, y = state.batch()
    # NOTE: class indices too travel in the run's dtype: pick() takes float indices.
    x, y = mx.nd.array(x, ctx=mx.cpu(), dtype=dtype), mx.nd.array(y, ctx=mx.cpu(), dtype=dtype)
    with mx.autograd.record():
        loss = criterion(model(x), y)
        for block, layer in zip(dense, net["layers"]):
            if layer["kernel_l2"] > 0:  # Keras: the penalty is part of the loss
                loss = loss + layer["kernel_l2"] * (block.weight.data() ** 2).sum()
    loss.backward()
    values = {"loss": loss.asnumpy().reshape(())}
    for i, block in enumerate(dense):
        values[f"grad/dense_{i}/kernel"] = block.weight.grad().asnumpy().T
        values[f"grad/dense_{i}/bias"] = block.bias.grad().asnumpy()
    return values


def update(state, model, dense):
    """A fresh gluon.Trainer fed the reference's gradients of every step so far; each
    update is taken from the state's parameters."""
    net, dtype = state.network, state.dtype
    trainer = mx.gluon.Trainer(model.collect_params(),
                               OPTIMIZERS[net["optimizer"]](net["optimizer_params"]),
                               kvstore=None)
    before = state.params()
    for grads in state.grads():
        set_params(dense, before, dtype)  # from the reference's parameters, as the suite did
        for i, block in enumerate(dense):
            for param, grad in ((block.weight, grads[f"dense_{i}/kernel"].T),
                                (block.bias, grads[f"dense_{i}/bias"])):
                param.grad()[:] = array(grad, dtype)
                # as backward() marks it: Trainer.step refuses a gradient that is not fresh
                param.data()._fresh_grad = True
        trainer.step(1)
    values = {}
    for i, block in enumerate(dense):
        for part, tensor in (("kernel", block.weight.data().asnumpy().T),
                             ("bias", block.bias.data().asnumpy())):
            name = f"dense_{i}/{part}"
            values["update/" + name] = tensor.astype(np.float64) - before[name]
    return values


def compute(state: State):
    load(state.meta.get("threads", 1))
    model, dense = network(state)
    if state.part == "optimizer":
        return update(state, model, dense)
    return forward_backward(state, model, dense)


if __name__ == "__main__":
    sys.exit(run(compute, versions))
