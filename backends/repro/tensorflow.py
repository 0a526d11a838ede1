"""Reproduce, with TensorFlow and NumPy alone, what fnn-suite measured at the first step
this backend left the noise: ``python tensorflow.py`` prints the difference (``--help``).

The network is built as the suite's tensorflow backend builds it (no Keras): tf.Variable
kernels and biases, tf.nn activations and losses, tf.GradientTape, and TensorFlow's own
training kernels (tf.raw_ops.ResourceApply*), each traced once by a tf.function. Every
hyperparameter is a tensor of the run's dtype.
"""

import os
import sys
from pathlib import Path

# NOTE: `python repro/tensorflow.py` puts repro/ first on sys.path, and the scripts there
# are named like the frameworks they import: without this, `import tensorflow` imports
# the script.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from backends.repro.common import State, run  # noqa: E402  (inlined in a run's repro/)


def elu(p, dtype):
    if p["alpha"] == 1.0:
        return tf.nn.elu  # tf.nn.elu has no alpha
    alpha = tf.constant(p["alpha"], dtype)
    return lambda z: tf.where(z > 0, z, alpha * tf.math.expm1(tf.minimum(z, 0)))


ACTIVATIONS = {
    "linear": lambda p, d: tf.identity,
    "relu": lambda p, d: tf.nn.relu,
    # NOTE: alpha is a float32 attribute of the LeakyRelu op, even in a float64 run.
    "leaky_relu": lambda p, d: lambda z: tf.nn.leaky_relu(z, alpha=p["negative_slope"]),
    "elu": elu,
    "sigmoid": lambda p, d: tf.math.sigmoid,
    "tanh": lambda p, d: tf.math.tanh,
    # NOTE: tf.math.softplus returns z (or exp(z)) beyond a threshold set by the dtype's eps.
    "softplus": lambda p, d: tf.math.softplus,
    # NOTE: tf.nn.gelu's constants go through float32, even in a float64 run.
    "gelu": lambda p, d: lambda z: tf.nn.gelu(z, approximate=False),
    "gelu_tanh": lambda p, d: lambda z: tf.nn.gelu(z, approximate=True),
}


def huber(p, dtype):
    delta, half = tf.constant(p["delta"], dtype), tf.constant(0.5, dtype)

    def loss(z, y):
        r = tf.abs(z - y)
        return tf.reduce_mean(tf.where(r <= delta, half * r * r, delta * (r - half * delta)))

    return loss


LOSSES = {  # the mean; cross-entropies from logits, as the suite computes them
    "mse": lambda p, d: lambda z, y: tf.reduce_mean(tf.math.squared_difference(z, y)),
    "mae": lambda p, d: lambda z, y: tf.reduce_mean(tf.abs(z - y)),
    "huber": huber,
    "binary_crossentropy": lambda p, d: lambda z, y: tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z)),
    "categorical_crossentropy": lambda p, d: lambda z, y: tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z, axis=-1)),
    "sparse_categorical_crossentropy": lambda p, d: lambda z, y: tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z)),
}


def optimizer(name, p, variables, dtype):
    """``apply(grads)``: the spec's optimizer as TensorFlow's training kernels, its slots
    starting at zero (Adagrad's at its initial accumulator value)."""
    raw = tf.raw_ops

    def c(value):  # a hyperparameter: a scalar tensor of the run's dtype
        return tf.constant(value, dtype)

    def slots(fill=0.0):
        return [tf.Variable(tf.fill(tf.shape(v), c(fill)), trainable=False) for v in variables]

    if name == "sgd" and p["momentum"] == 0:  # nesterov or not: p -= lr*g
        lr = c(p["learning_rate"])

        def apply(grads):
            for v, g in zip(variables, grads):
                raw.ResourceApplyGradientDescent(var=v.handle, alpha=lr, delta=g,
                                                 use_locking=False)
    elif name == "sgd":
        lr, momentum, accums = c(p["learning_rate"]), c(p["momentum"]), slots()

        def apply(grads):
            for v, a, g in zip(variables, accums, grads):
                raw.ResourceApplyMomentum(var=v.handle, accum=a.handle, lr=lr, grad=g,
                                          momentum=momentum, use_locking=False,
                                          use_nesterov=bool(p["nesterov"]))
    elif name in ("adam", "adamw"):
        lr, beta_1, beta_2, epsilon = (c(p[k]) for k in ("learning_rate", "beta_1", "beta_2",
                                                         "epsilon"))
        m, v, vhat = slots(), slots(), slots() if p["amsgrad"] else None
        t = tf.Variable(c(0.0), trainable=False)  # steps taken, in the run's dtype
        # AdamW: the decoupled decay p -= lr*wd*p, its own op before each Adam kernel
        # (lr*wd multiplied once, eagerly)
        lr_wd = lr * c(p["weight_decay"]) if name == "adamw" else None

        def apply(grads):
            step = t.assign_add(c(1.0))
            # NOTE: TensorFlow's Adam kernels: lr_t = lr*sqrt(1-b2^t)/(1-b1^t) and
            # p -= lr_t*m/(sqrt(v) + eps), epsilon "hat" outside the bias correction.
            hyper = dict(beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
                         lr=lr, beta1=beta_1, beta2=beta_2, epsilon=epsilon,
                         use_locking=False)
            for i, (var, g) in enumerate(zip(variables, grads)):
                if lr_wd is not None:
                    var.assign_sub(lr_wd * var)
                if vhat is not None:
                    raw.ResourceApplyAdamWithAmsgrad(var=var.handle, m=m[i].handle,
                                                     v=v[i].handle, vhat=vhat[i].handle,
                                                     grad=g, **hyper)
                else:
                    raw.ResourceApplyAdam(var=var.handle, m=m[i].handle, v=v[i].handle,
                                          grad=g, use_nesterov=False, **hyper)
    elif name == "rmsprop":
        # NOTE: eps inside the square root: lr*g/sqrt(ms + eps) (centered: ms - mg^2 + eps)
        hyper = dict(lr=c(p["learning_rate"]), rho=c(p["rho"]), momentum=c(p["momentum"]),
                     epsilon=c(p["epsilon"]), use_locking=False)
        ms, mom, mg = slots(), slots(), slots() if p["centered"] else None

        def apply(grads):
            for i, (v, g) in enumerate(zip(variables, grads)):
                if mg is not None:
                    raw.ResourceApplyCenteredRMSProp(var=v.handle, mg=mg[i].handle,
                                                     ms=ms[i].handle, mom=mom[i].handle,
                                                     grad=g, **hyper)
                else:
                    raw.ResourceApplyRMSProp(var=v.handle, ms=ms[i].handle,
                                             mom=mom[i].handle, grad=g, **hyper)
    elif name == "adagrad":
        lr, epsilon = c(p["learning_rate"]), c(p["epsilon"])
        accums = slots(fill=p["initial_accumulator_value"])

        def apply(grads):
            for v, a, g in zip(variables, accums, grads):
                raw.ResourceApplyAdagradV2(var=v.handle, accum=a.handle, lr=lr,
                                           epsilon=epsilon, grad=g, use_locking=False,
                                           update_slots=True)
    else:
        raise ValueError(f"no optimizer {name!r}")
    return apply


def versions():
    return {"tensorflow": tf.__version__, "numpy": np.__version__}


def model(state, dtype):
    """The state's parameters as tf.Variables (kernel (fan_in, fan_out), then bias), and
    loss(x, y) on them."""
    net = state.network
    variables = [tf.Variable(value, name=name, trainable=True)
                 for name, value in state.params().items()]
    last = len(net["layers"]) - 1
    activations = [tf.identity if i == last and net["fused_output"] else
                   ACTIVATIONS[layer["activation"]](layer["activation_params"], dtype)
                   for i, layer in enumerate(net["layers"])]
    loss_fn = LOSSES[net["loss"]](net["loss_params"], dtype)
    l2 = [(variables[2 * i], tf.constant(layer["kernel_l2"], dtype))
          for i, layer in enumerate(net["layers"]) if layer["kernel_l2"] > 0]

    def loss(x, y):
        h = x
        for i, act in enumerate(activations):
            h = act(tf.matmul(h, variables[2 * i]) + variables[2 * i + 1])
        value = loss_fn(h, y)
        for kernel, factor in l2:  # Keras: the penalty is part of the loss
            value = value + factor * tf.reduce_sum(tf.square(kernel))
        return value

    return variables, loss


def forward_backward(state, dtype, variables, loss):
    net = state.network
    sparse = net["loss"] == "sparse_categorical_crossentropy"
    x_spec = tf.TensorSpec((None, net["input_dim"]), dtype)
    y_spec = tf.TensorSpec((None,), tf.int64) if sparse else \
        tf.TensorSpec((None, net["layers"][-1]["units"]), dtype)

    # NOTE: one traced graph, as the backend's: no XLA (TensorFlow's own kernels), but
    # Grappler's rewrites of the graph, which eager ops do not get.
    @tf.function(input_signature=[x_spec, y_spec], jit_compile=False, autograph=False)
    def loss_and_grads(x, y):
        with tf.GradientTape() as tape:
            value = loss(x, y)
        return value, tape.gradient(value, variables)

    x, y = state.batch()
    value, grads = loss_and_grads(tf.identity(np.asarray(x, dtype.as_numpy_dtype)),
                                  tf.identity(np.asarray(y, np.int64 if sparse
                                                         else dtype.as_numpy_dtype)))
    values = {"loss": value.numpy()}
    for name, g in zip(state.names(), grads):
        values["grad/" + name] = g.numpy()
    return values


def update(state, dtype, variables):
    """A fresh optimizer fed the reference's gradients of every step so far; the last
    update is taken from the state's parameters."""
    net = state.network
    apply = tf.function(optimizer(net["optimizer"], net["optimizer_params"], variables, dtype),
                        input_signature=[[tf.TensorSpec(v.shape, dtype) for v in variables]],
                        jit_compile=False, autograph=False)
    before = state.params()
    for grads in state.grads():
        for name, v in zip(state.names(), variables):  # each update from the reference's
            v.assign(before[name])                     # parameters, as the suite did
        apply([tf.identity(np.asarray(grads[name], dtype.as_numpy_dtype))
               for name in state.names()])
    return {"update/" + name: v.numpy().astype(np.float64) - before[name]
            for name, v in zip(state.names(), variables)}


def compute(state: State):
    threads = state.meta.get("threads", 1)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.config.experimental.enable_tensor_float_32_execution(False)  # as the suite runs it
    dtype = tf.as_dtype(state.dtype)
    with tf.device({"cpu": "/CPU:0", "cuda": "/GPU:0"}[state.meta.get("device", "cpu")]):
        variables, loss = model(state, dtype)
        if state.part == "optimizer":
            return update(state, dtype, variables)
        return forward_backward(state, dtype, variables, loss)


if __name__ == "__main__":
    sys.exit(run(compute, versions))
