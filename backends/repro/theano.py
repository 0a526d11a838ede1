"""Reproduce, with Theano (or PyTensor, its fork) and NumPy alone, what fnn-suite measured
at the first step this backend left the noise: ``python theano.py`` (or ``pytensor.py``)
prints the difference (``--help``).

The graph is built as the suite's theano and pytensor backends build it: shared kernels
(fan_in, fan_out) and biases, ``T.dot(h, W) + b`` and the tensor module's elementwise ops,
the loss written in those ops from the logits, and ``grad``. Neither framework has an
optimizer library: the suite's update rules are symbolic ``updates=`` on shared state,
the published formulas with every hyperparameter a constant of the run's dtype, written
out below as the suite writes them. Theano 1.0.5 needs NumPy < 1.24.
"""

import contextlib
import importlib
import os
import sys
from pathlib import Path

# NOTE: `python repro/theano.py` puts repro/ first on sys.path, and the scripts there are
# named like the frameworks they import: without this, `import theano` imports the script.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]

import numpy as np  # noqa: E402

from backends.repro.common import State, run  # noqa: E402  (inlined in a run's repro/)

# The suite's Theano flags (any set in THEANO_FLAGS win). No BLAS library is linked:
# Theano's Dot22 and Gemm then call NumPy's through its C API.
THEANO_FLAGS = {"blas.ldflags": "", "linker": "cvm", "optimizer": "fast_run",
                "floatX": "float64"}
LOADED = {}  # the framework imported, for versions()

# name -> (T, c, activation params) -> elementwise function of the pre-activation z;
# T: theano.tensor or pytensor.tensor; c(v): v as a constant of the run's dtype (a Python
# float would be cast by the framework). Each framework's backend writes some differently.
ACTIVATIONS = {
    "linear": lambda T, c, p: lambda z: z,
    # leaky_relu'(0) = negative_slope (the switch takes the second branch at 0)
    "leaky_relu": lambda T, c, p: lambda z: T.switch(z > 0, z, c(p["negative_slope"]) * z),
    "tanh": lambda T, c, p: lambda z: T.tanh(z),
    "gelu_tanh": lambda T, c, p: lambda z: c(0.5) * z * (c(1.0) + T.tanh(
        c(np.sqrt(2.0 / np.pi)) * (z + c(0.044715) * z * z * z))),
}
THEANO_ACTIVATIONS = {
    **ACTIVATIONS,
    # NOTE: z * (z > 0) has relu'(0) = 0 (T.nnet.relu's is 0.5), and gives -0.0 for z < 0.
    "relu": lambda T, c, p: lambda z: z * (z > 0),
    "elu": lambda T, c, p: lambda z: T.nnet.elu(z, alpha=c(p["alpha"])),
    # NOTE: Theano's C code of sigmoid and softplus saturates early: sigmoid(z) = 1 for
    # z > 15 in float32 (19 in float64), softplus(z) = z for z > 14 (16).
    "sigmoid": lambda T, c, p: lambda z: T.nnet.sigmoid(z),
    "softplus": lambda T, c, p: lambda z: T.nnet.softplus(z),
    "gelu": lambda T, c, p: lambda z: c(0.5) * z * (c(1.0) + T.erf(z * c(np.sqrt(0.5)))),
}
PYTENSOR_ACTIVATIONS = {
    **ACTIVATIONS,
    # NOTE: a switch has relu'(0) = 0 (maximum(z, 0)'s gradient goes to z at 0).
    "relu": lambda T, c, p: lambda z: T.switch(z > 0, z, c(0.0)),
    # expm1 of min(z, 0): exp of a large z in the unused branch would make a nan gradient
    "elu": lambda T, c, p: lambda z: T.switch(
        z > 0, z, c(p["alpha"]) * T.expm1(T.minimum(z, c(0.0)))),
    "sigmoid": lambda T, c, p: T.sigmoid,
    # NOTE: pytensor's Softplus switches formula at z = -37, 18 and 33.3.
    "softplus": lambda T, c, p: T.softplus,
    "gelu": lambda T, c, p: lambda z: c(0.5) * z * T.erfc(z * c(-np.sqrt(0.5))),
}


def theano_huber(T, c, p):
    def loss(z, y):
        r, delta = abs(z - y), c(p["delta"])
        return T.mean(T.switch(r <= delta, c(0.5) * r * r, delta * (r - c(0.5) * delta)))
    return loss


def pytensor_huber(T, c, p):
    def loss(z, y):
        d = z - y
        linear = c(p["delta"]) * (abs(d) - c(0.5 * p["delta"]))
        return T.mean(T.switch(abs(d) <= c(p["delta"]), c(0.5) * d * d, linear))
    return loss


# name -> (T, c, loss params) -> loss(z, y), a scalar; cross-entropies take the logits z
LOSSES = {
    "mse": lambda T, c, p: lambda z, y: T.mean(T.sqr(z - y)),
    "mae": lambda T, c, p: lambda z, y: T.mean(abs(z - y)),  # sgn(0) = 0
}
THEANO_LOSSES = {
    **LOSSES,
    "huber": theano_huber,
    # log(1 + exp(z)) - z*y
    "binary_crossentropy": lambda T, c, p: lambda z, y: T.mean(T.nnet.softplus(z) - z * y),
    "categorical_crossentropy": lambda T, c, p: lambda z, y: -T.sum(
        y * T.nnet.logsoftmax(z)) / T.cast(z.shape[0], z.dtype),
    # NOTE: Theano's own op: nll = -z[y] + m + log(sum_j exp(z_j - m)), m the row maximum,
    # and its gradient softmax - onehot (CrossentropySoftmaxArgmax1HotWithBias).
    "sparse_categorical_crossentropy": lambda T, c, p: lambda z, y: T.mean(
        T.nnet.crossentropy_softmax_1hot(z, y)[0]),
}
PYTENSOR_LOSSES = {
    **LOSSES,
    "huber": pytensor_huber,
    "binary_crossentropy": lambda T, c, p: lambda z, y: T.mean(T.softplus(z) - z * y),
    "categorical_crossentropy": lambda T, c, p: lambda z, y: -T.mean(
        T.sum(y * T.special.log_softmax(z, axis=-1), axis=-1)),
    "sparse_categorical_crossentropy": lambda T, c, p: lambda z, y: -T.mean(
        T.special.log_softmax(z, axis=-1)[T.arange(z.shape[0]), y]),
}


def update_rule(F, T, c, state):
    """The suite's update rule (backends/theano_family.py): (params, grads) -> the
    (shared variable, new value) pairs of ``updates=``; its state zero-filled shared
    variables of the run's dtype."""
    net, dtype = state.network, state.dtype
    name, h = net["optimizer"], net["optimizer_params"]

    def slot(p, fill=0.0):
        return F.shared(np.full_like(p.get_value(), fill, dtype=dtype))

    def step_count():
        """(count, t): the shared number of updates so far, and t = count + 1."""
        if F.__name__ == "theano":
            count = F.shared(np.float64(0.0))
            return count, count + np.float64(1.0)
        count = F.shared(np.asarray(0.0, dtype=dtype))
        return count, count + c(1.0)

    def bias_correction(beta, t):  # 1 - beta ** t in the run's dtype
        if F.__name__ == "theano":
            # NOTE: Theano's backend takes it in float64 from a float64 step count and
            # casts (the reference's Python floats 1 - beta ** t meeting a float32 array);
            # PyTensor's in the run's dtype.
            return T.cast(1.0 - np.float64(beta) ** t, dtype)
        return c(1.0) - c(beta) ** t

    def sgd(params, grads):
        lr, mu = c(h["learning_rate"]), h["momentum"]
        if mu == 0.0:  # nesterov without momentum is plain SGD
            return [(p, p - lr * g) for p, g in zip(params, grads)]
        updates = []
        for p, g in zip(params, grads):
            buf = slot(p)
            new_buf = c(mu) * buf + g
            step = g + c(mu) * new_buf if h["nesterov"] else new_buf
            updates += [(buf, new_buf), (p, p - lr * step)]
        return updates

    def adam(params, grads):
        lr, b1, b2, eps = (h[k] for k in ("learning_rate", "beta_1", "beta_2", "epsilon"))
        count, t = step_count()
        correction_1, correction_2 = bias_correction(b1, t), bias_correction(b2, t)
        updates = [(count, t)]
        for p, g in zip(params, grads):
            m, v = slot(p), slot(p)
            new_m = c(b1) * m + c(1.0 - b1) * g
            new_v = c(b2) * v + c(1.0 - b2) * (g * g)
            updates += [(m, new_m), (v, new_v)]
            if h["amsgrad"]:  # the running maximum of v in place of v (torch's form)
                v_max = slot(p)
                new_v = T.maximum(v_max, new_v)
                updates.append((v_max, new_v))
            # AdamW: decoupled weight decay on the parameter before the step
            start = p - c(lr * h["weight_decay"]) * p if name == "adamw" else p
            step = c(lr) * (new_m / correction_1) / (T.sqrt(new_v / correction_2) + c(eps))
            updates.append((p, start - step))
        return updates

    def rmsprop(params, grads):
        lr, rho, mom, eps = (h[k] for k in ("learning_rate", "rho", "momentum", "epsilon"))
        updates = []
        for p, g in zip(params, grads):
            v = slot(p)
            new_v = c(rho) * v + c(1.0 - rho) * (g * g)
            updates.append((v, new_v))
            var = new_v
            if h["centered"]:
                a = slot(p)
                new_a = c(rho) * a + c(1.0 - rho) * g
                updates.append((a, new_a))
                var = new_v - new_a * new_a
            denom = T.sqrt(var) + c(eps)
            if mom == 0.0:
                updates.append((p, p - c(lr) * g / denom))
                continue
            buf = slot(p)  # torch's form: buf = mom*buf + g/denom, p -= lr*buf
            new_buf = c(mom) * buf + g / denom
            updates += [(buf, new_buf), (p, p - c(lr) * new_buf)]
        return updates

    def adagrad(params, grads):
        updates = []
        for p, g in zip(params, grads):
            acc = slot(p, fill=h["initial_accumulator_value"])
            new_acc = acc + g * g
            step = c(h["learning_rate"]) * g / (T.sqrt(new_acc) + c(h["epsilon"]))
            updates += [(acc, new_acc), (p, p - step)]
        return updates

    return {"sgd": sgd, "adam": adam, "adamw": adam, "rmsprop": rmsprop,
            "adagrad": adagrad}[name]


def load(state):
    """theano or pytensor, imported with the suite's settings; its tensor module."""
    name = state.meta.get("framework", state.meta["backend"])
    if name == "theano":  # Theano reads its flags and OpenMP's threads once, at import
        flags = os.environ.get("THEANO_FLAGS", "").strip(",")
        given = {item.split("=", 1)[0].strip() for item in flags.split(",") if "=" in item}
        added = [f"{k}={v}" for k, v in THEANO_FLAGS.items() if k not in given]
        os.environ["THEANO_FLAGS"] = ",".join(part for part in [flags, *added] if part)
        os.environ.setdefault("OMP_NUM_THREADS", str(state.meta.get("threads", 1)))
    F = LOADED[name] = importlib.import_module(name)
    importlib.import_module(name + ".tensor")
    if name == "pytensor":
        F.config.openmp = False  # single-threaded elementwise loops
    return F, F.tensor


def versions():
    return {**{name: str(F.__version__) for name, F in LOADED.items()},
            "numpy": np.__version__}


def compile_function(F, inputs, outputs, updates):
    if F.__name__ == "theano":  # the flags' C linker and fast_run rewrites
        mode = F.compile.Mode(linker=F.config.linker, optimizer=F.config.optimizer)
    else:
        # NOTE: PyTensor 3's default mode: numba, with fastmath (contraction,
        # reassociation); and pytensor's rewrites of the whole graph.
        mode = "NUMBA"
    return F.function(inputs, outputs, updates=updates, mode=mode)


def network(F, T, c, state):
    """The shared parameters (in state.names()'s order), the symbolic batch, the loss."""
    net, dtype = state.network, state.dtype
    theano = F.__name__ == "theano"
    activations = THEANO_ACTIVATIONS if theano else PYTENSOR_ACTIVATIONS
    losses = THEANO_LOSSES if theano else PYTENSOR_LOSSES
    params = [F.shared(np.array(value, dtype=dtype), name=name)
              for name, value in state.params().items()]
    x = T.matrix("x", dtype=dtype)
    y = T.vector("y", dtype="int64") if net["loss"] == "sparse_categorical_crossentropy" \
        else T.matrix("y", dtype=dtype)
    h, last = x, len(net["layers"]) - 1
    for i, layer in enumerate(net["layers"]):
        h = T.dot(h, params[2 * i]) + params[2 * i + 1]
        if not (i == last and net["fused_output"]):  # a fused output: the loss takes logits
            h = activations[layer["activation"]](T, c, layer["activation_params"])(h)
    loss = losses[net["loss"]](T, c, net["loss_params"])(h, y)
    for i, layer in enumerate(net["layers"]):
        if layer["kernel_l2"] > 0:  # Keras: the penalty is part of the loss
            loss = loss + c(layer["kernel_l2"]) * T.sum(T.sqr(params[2 * i]))
    return params, x, y, loss


def forward_backward(F, params, x, y, loss, state):
    function = compile_function(F, [x, y], [loss, *F.grad(loss, params)], [])
    xs, ys = state.batch()
    loss, *grads = function(np.ascontiguousarray(xs, dtype=state.dtype),
                            np.ascontiguousarray(ys, dtype=y.dtype))
    return {"loss": loss, **{"grad/" + name: g for name, g in zip(state.names(), grads)}}


def update(F, T, c, params, state):
    """A fresh optimizer fed the reference's gradients of every step so far; the last
    update is taken from the state's parameters."""
    grads = [p.type() for p in params]  # inputs of the parameters' types, as the suite's
    apply = compile_function(F, grads, [], update_rule(F, T, c, state)(params, grads))
    before, names = state.params(), state.names()
    for step in state.grads():
        for p, name in zip(params, names):  # each update from the reference's parameters
            p.set_value(np.array(before[name], dtype=state.dtype))
        apply(*(np.ascontiguousarray(step[name], dtype=state.dtype) for name in names))
    return {"update/" + name: p.get_value().astype(np.float64) - before[name]
            for p, name in zip(params, names)}


def compute(state: State):
    F, T = load(state)

    def c(value):  # a constant of the run's dtype
        return T.constant(np.asarray(value, dtype=state.dtype))

    # NOTE: floatX is the dtype pytensor gives its own constants (in means, softmax): the
    # suite's PyTensor backend builds and compiles with floatX = the run's dtype.
    flags = contextlib.nullcontext() if F.__name__ == "theano" else \
        F.config.change_flags(floatX=state.dtype)
    with flags:
        params, x, y, loss = network(F, T, c, state)
        if state.part == "optimizer":
            return update(F, T, c, params, state)
        return forward_backward(F, params, x, y, loss, state)


if __name__ == "__main__":
    sys.exit(run(compute, versions))
