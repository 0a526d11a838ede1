"""Reproduce, with JAX, optax and NumPy alone, what fnn-suite measured at the first step
this backend left the noise: ``python jax.py`` prints the difference (``--help``).

The network is built as the suite's jax backend builds it: the parameters a dict of
arrays under their canonical names, ``x @ kernel + bias`` layer by layer, jax.nn
activations, optax losses and optimizers with every hyperparameter given, the gradients
from ``jax.value_and_grad`` and the optimizer's update each one ``jax.jit``-compiled
function, with float64 enabled (as the suite runs jax, a float32 run included).
"""

import os
import sys
from functools import partial
from pathlib import Path

# NOTE: `python repro/jax.py` puts repro/ first on sys.path, and the scripts there are
# named like the frameworks they import: without this, `import jax` imports the script.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from backends.repro.common import State, run  # noqa: E402  (inlined in a run's repro/)

# NOTE: the suite enables float64 in every run: Python floats (the hyperparameters) are
# then weakly typed, and integer labels int64.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")  # no TF32/bf16 on a GPU

ACTIVATIONS = {
    "linear": lambda p: jax.nn.identity,
    "relu": lambda p: jax.nn.relu,
    # NOTE: jax.nn.leaky_relu's derivative at exactly 0 is 1 (z >= 0 keeps z).
    "leaky_relu": lambda p: partial(jax.nn.leaky_relu, negative_slope=p["negative_slope"]),
    "elu": lambda p: partial(jax.nn.elu, alpha=p["alpha"]),
    "sigmoid": lambda p: jax.nn.sigmoid,
    "tanh": lambda p: jax.nn.tanh,
    "softplus": lambda p: jax.nn.softplus,  # logaddexp(z, 0): no threshold
    "gelu": lambda p: partial(jax.nn.gelu, approximate=False),
    "gelu_tanh": lambda p: partial(jax.nn.gelu, approximate=True),
}
LOSSES = {  # the mean; cross-entropies from logits, as the suite computes them
    "mse": lambda p: lambda z, y: jnp.mean(optax.losses.squared_error(z, y)),
    "mae": lambda p: lambda z, y: jnp.mean(jnp.abs(z - y)),
    "huber": lambda p: lambda z, y: jnp.mean(optax.losses.huber_loss(z, y, delta=p["delta"])),
    "binary_crossentropy": lambda p: lambda z, y: jnp.mean(
        optax.losses.sigmoid_binary_cross_entropy(z, y)),
    "categorical_crossentropy": lambda p: lambda z, y: jnp.mean(
        optax.losses.softmax_cross_entropy(z, y, axis=-1, where=None)),
    "sparse_categorical_crossentropy": lambda p: lambda z, y: jnp.mean(
        optax.losses.softmax_cross_entropy_with_integer_labels(z, y, axis=-1, where=None)),
}


def amsgrad(p):
    # NOTE: optax takes the running maximum of the bias-corrected v_t / (1 - b2^t).
    return optax.scale_by_amsgrad(b1=p["beta_1"], b2=p["beta_2"], eps=p["epsilon"],
                                  eps_root=0.0, mu_dtype=None, bias_correction_mu=True,
                                  bias_correction_nu=True)


def adam(p):
    if p["amsgrad"]:
        return optax.chain(amsgrad(p), optax.scale_by_learning_rate(p["learning_rate"],
                                                                    flip_sign=True))
    return optax.adam(learning_rate=p["learning_rate"], b1=p["beta_1"], b2=p["beta_2"],
                      eps=p["epsilon"], eps_root=0.0, mu_dtype=None, nesterov=False)


def adamw(p):
    if p["amsgrad"]:  # optax.adamw's own chain, around scale_by_amsgrad
        return optax.chain(amsgrad(p),
                           optax.add_decayed_weights(weight_decay=p["weight_decay"], mask=None),
                           optax.scale_by_learning_rate(p["learning_rate"], flip_sign=True))
    return optax.adamw(learning_rate=p["learning_rate"], b1=p["beta_1"], b2=p["beta_2"],
                       eps=p["epsilon"], eps_root=0.0, mu_dtype=None,
                       weight_decay=p["weight_decay"], mask=None, nesterov=False)


OPTIMIZERS = {
    # momentum 0 -> None: no trace at all (plain SGD, nesterov or not)
    "sgd": lambda p: optax.sgd(learning_rate=p["learning_rate"], momentum=p["momentum"] or None,
                               nesterov=p["nesterov"], accumulator_dtype=None),
    "adam": adam,
    "adamw": adamw,
    "rmsprop": lambda p: optax.rmsprop(
        learning_rate=p["learning_rate"], decay=p["rho"], eps=p["epsilon"], initial_scale=0.0,
        eps_in_sqrt=False, centered=p["centered"], momentum=p["momentum"], nesterov=False,
        bias_correction=False),
    # NOTE: optax puts eps inside the square root: g / sqrt(acc + eps)
    "adagrad": lambda p: optax.adagrad(learning_rate=p["learning_rate"],
                                       initial_accumulator_value=p["initial_accumulator_value"],
                                       eps=p["epsilon"]),
}


def versions():
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "optax": optax.__version__,
            "numpy": np.__version__}


def objective(state):
    """objective(params, x, y): the loss, at the last layer's logits where the output
    activation is fused into it."""
    net = state.network
    names = state.names()
    acts = [ACTIVATIONS[layer["activation"]](layer["activation_params"])
            for layer in net["layers"][:-1]]
    output = ACTIVATIONS[net["layers"][-1]["activation"]](
        net["layers"][-1]["activation_params"]) if not net["fused_output"] else None
    loss = LOSSES[net["loss"]](net["loss_params"])
    l2 = [(f"dense_{i}/kernel", layer["kernel_l2"]) for i, layer in enumerate(net["layers"])
          if layer["kernel_l2"] > 0]

    def value(params, x, y):
        h = x
        for i, act in enumerate(acts):
            h = act(h @ params[names[2 * i]] + params[names[2 * i + 1]])
        z = h @ params[names[-2]] + params[names[-1]]
        result = loss(z if output is None else output(z), y)
        for name, factor in l2:  # Keras: the penalty is part of the loss
            result = result + factor * jnp.sum(params[name] ** 2)
        return result

    return value


def forward_backward(state, put):
    x, y = state.batch()
    sparse = state.network["loss"] == "sparse_categorical_crossentropy"
    loss, grads = jax.jit(jax.value_and_grad(objective(state)))(
        put(state.params()), put(x), put(y, np.int64 if sparse else None))
    return {"loss": np.asarray(loss),
            **{"grad/" + name: np.array(g) for name, g in grads.items()}}


def update(state, put, device):
    """A fresh optimizer fed the reference's gradients of every step so far; the last
    update is taken from the state's parameters."""
    net = state.network
    optimizer = OPTIMIZERS[net["optimizer"]](net["optimizer_params"])

    def apply(params, opt_state, grads):
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    apply = jax.jit(apply, donate_argnums=(0, 1))  # compiled as the suite compiles it
    before = state.params()
    with jax.default_device(device):
        opt_state = optimizer.init(put(before))
    for grads in state.grads():  # each update from the reference's parameters, as the suite did
        params, opt_state = apply(put(before), opt_state, put(grads))
    return {"update/" + name: np.array(params[name]).astype(np.float64) - before[name]
            for name in state.names()}


def compute(state: State):
    # NOTE: XLA sizes its CPU pool from NPROC when its client starts (here, not at import)
    os.environ["NPROC"] = str(state.meta.get("threads", 1))
    device = jax.devices({"cpu": "cpu", "cuda": "gpu"}[state.meta.get("device", "cpu")])[0]

    def put(value, dtype=None):  # arrays (or a dict of them) on the device, in the run's dtype
        if isinstance(value, dict):
            return {name: put(array, dtype) for name, array in value.items()}
        return jax.device_put(np.asarray(value, dtype=dtype or state.dtype), device)

    if state.part == "optimizer":
        return update(state, put, device)
    return forward_backward(state, put)


if __name__ == "__main__":
    sys.exit(run(compute, versions))
