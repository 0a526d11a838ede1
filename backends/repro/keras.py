"""Reproduce, with Keras 3, its backend framework (TensorFlow, PyTorch or JAX) and NumPy
alone, what fnn-suite measured at the first step this backend left the noise:
``python keras.py`` prints the difference (``--help``).

The network is built as the suite's Keras backends build it: a keras.Sequential of Dense
layers holding the state's parameters, compiled with Keras's own loss and optimizer,
every hyperparameter given. The loss is ``model.compute_loss`` (with the L2 penalties of
``model.losses``); Keras has no backend-neutral gradient, so it is differentiated as each
backend's train step does it: tf.GradientTape in a tf.function, torch.autograd,
jax.value_and_grad under jax.jit. The optimizer's update is Keras's own, compiled as the
train step compiles it.

NOTE: on torch and JAX, Keras computes some float64 ops in float32 (its result_type maps
float64 to float32 there; keras-team/keras#23704): the suite runs those two in float32.
"""

import os
import sys
from pathlib import Path

# NOTE: `python repro/keras.py` puts repro/ first on sys.path, and the scripts there are
# named like the frameworks they import: without this, `import keras` imports the script.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]

import numpy as np  # noqa: E402

from backends.repro.common import State, run  # noqa: E402  (inlined in a run's repro/)

# Imported by load(): Keras reads KERAS_BACKEND (in the state) once, when it is imported.
keras = fw = None


def tensorflow(threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.config.experimental.enable_tensor_float_32_execution(False)  # as the suite runs it
    return tf


def torch(threads):
    import torch

    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # as the suite runs it
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return torch


def jax(threads):
    # NOTE: XLA sizes its CPU pool from NPROC when its client starts (jax.devices() here).
    os.environ["NPROC"] = str(threads)
    import jax

    # NOTE: the suite enables float64 in every run, a float32 one included: Python floats
    # are then weakly typed, and integer labels int64.
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")  # no TF32 on a GPU
    jax.devices()
    return jax


FRAMEWORKS = {"tensorflow": tensorflow, "torch": torch, "jax": jax}
DEVICES = {"tensorflow": {"cpu": "/CPU:0", "cuda": "/GPU:0"},
           "torch": {"cpu": "cpu", "cuda": "cuda"}, "jax": {"cpu": "cpu:0", "cuda": "gpu:0"}}

ACTIVATIONS = {
    "linear": lambda p: keras.activations.linear,
    "relu": lambda p: lambda x: keras.activations.relu(
        x, negative_slope=0.0, max_value=None, threshold=0.0),
    "leaky_relu": lambda p: lambda x: keras.activations.leaky_relu(
        x, negative_slope=p["negative_slope"]),
    "elu": lambda p: lambda x: keras.activations.elu(x, alpha=p["alpha"]),
    "sigmoid": lambda p: keras.activations.sigmoid,
    "tanh": lambda p: keras.activations.tanh,
    # NOTE: each backend's own softplus: TensorFlow's returns x (or exp(x)) beyond a
    # threshold set by the dtype's eps, torch's x itself above 20, jax's logaddexp(x, 0).
    "softplus": lambda p: keras.activations.softplus,
    "gelu": lambda p: lambda x: keras.activations.gelu(x, approximate=False),
    "gelu_tanh": lambda p: lambda x: keras.activations.gelu(x, approximate=True),
}
MEAN = "sum_over_batch_size"
LOSSES = {  # cross-entropies from logits, as the suite computes them
    "mse": lambda p, d: keras.losses.MeanSquaredError(reduction=MEAN, dtype=d),
    "mae": lambda p, d: keras.losses.MeanAbsoluteError(reduction=MEAN, dtype=d),
    "huber": lambda p, d: keras.losses.Huber(delta=p["delta"], reduction=MEAN, dtype=d),
    "binary_crossentropy": lambda p, d: keras.losses.BinaryCrossentropy(
        from_logits=True, label_smoothing=0.0, axis=-1, reduction=MEAN, dtype=d),
    "categorical_crossentropy": lambda p, d: keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.0, axis=-1, reduction=MEAN, dtype=d),
    "sparse_categorical_crossentropy": lambda p, d: keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=None, axis=-1, reduction=MEAN, dtype=d),
}
# every option that must stay off, said explicitly
PLAIN = {"clipnorm": None, "clipvalue": None, "global_clipnorm": None, "use_ema": False,
         "loss_scale_factor": None, "gradient_accumulation_steps": None}
OPTIMIZERS = {
    "sgd": lambda p: keras.optimizers.SGD(
        learning_rate=p["learning_rate"], momentum=p["momentum"], nesterov=p["nesterov"],
        weight_decay=None, **PLAIN),
    "adam": lambda p: keras.optimizers.Adam(
        learning_rate=p["learning_rate"], beta_1=p["beta_1"], beta_2=p["beta_2"],
        epsilon=p["epsilon"], amsgrad=p["amsgrad"], weight_decay=None, **PLAIN),
    "adamw": lambda p: keras.optimizers.AdamW(
        learning_rate=p["learning_rate"], weight_decay=p["weight_decay"], beta_1=p["beta_1"],
        beta_2=p["beta_2"], epsilon=p["epsilon"], amsgrad=p["amsgrad"], **PLAIN),
    "rmsprop": lambda p: keras.optimizers.RMSprop(
        learning_rate=p["learning_rate"], rho=p["rho"], momentum=p["momentum"],
        epsilon=p["epsilon"], centered=p["centered"], weight_decay=None, **PLAIN),
    "adagrad": lambda p: keras.optimizers.Adagrad(
        learning_rate=p["learning_rate"], initial_accumulator_value=p["initial_accumulator_value"],
        epsilon=p["epsilon"], weight_decay=None, **PLAIN),
}


def load(state):
    """Keras on the state's backend, the framework imported and pinned first."""
    global keras, fw
    backend = state.meta["keras_backend"]
    os.environ["KERAS_BACKEND"] = backend
    fw = FRAMEWORKS[backend](state.meta.get("threads", 1))
    import keras as imported

    keras = imported
    # NOTE: Keras makes the optimizer's learning rate, the compiled loss's casts and its
    # tracker in floatx(): under float32, a float64 run would round them to float32.
    keras.config.set_floatx(state.dtype)
    return backend


def versions():
    found = {"keras": keras.__version__, "numpy": np.__version__,
             keras.config.backend(): fw.__version__}
    if keras.config.backend() == "jax":
        import jaxlib

        found["jaxlib"] = jaxlib.__version__
    return found


def model(state, backend, device):
    """The compiled Sequential holding the state's parameters."""
    net, dtype = state.network, state.dtype
    last = len(net["layers"]) - 1
    layers = [keras.Input(shape=(net["input_dim"],), dtype=dtype)]
    for i, layer in enumerate(net["layers"]):
        fused = i == last and net["fused_output"]
        act = keras.activations.linear if fused else \
            ACTIVATIONS[layer["activation"]](layer["activation_params"])
        reg = keras.regularizers.L2(layer["kernel_l2"]) if layer["kernel_l2"] > 0 else None
        layers.append(keras.layers.Dense(layer["units"], activation=act, use_bias=True,
                                         kernel_regularizer=reg, dtype=dtype))
    net_model = keras.Sequential(layers)
    net_model.set_weights(list(state.params().values()))  # Keras's layout is canonical
    # jit_compile as the suite says it: "auto" resolves to XLA under JAX, on TensorFlow
    # on a GPU only, and never on torch
    jit = {"tensorflow": False if device == "cpu" else "auto", "torch": False,
           "jax": True}[backend]
    net_model.compile(optimizer=OPTIMIZERS[net["optimizer"]](net["optimizer_params"]),
                      loss=LOSSES[net["loss"]](net["loss_params"], dtype), metrics=None,
                      run_eagerly=False, steps_per_execution=1, jit_compile=jit)
    return net_model


def gradients(backend, net_model, x, y):
    """model.compute_loss and its gradients as each backend's train step takes them."""
    variables = net_model.trainable_variables
    if backend == "tensorflow":
        @fw.function  # a graph, as Keras's train function is
        def loss_and_grads(x, y):
            with fw.GradientTape() as tape:
                y_pred = net_model(x, training=True)
                loss = net_model.compute_loss(x=x, y=y, y_pred=y_pred)
            return loss, tape.gradient(loss, variables)

        return loss_and_grads(x, y)
    if backend == "torch":  # eager, as Keras's torch train function is
        loss = net_model.compute_loss(x=x, y=y, y_pred=net_model(x, training=True))
        return loss, fw.autograd.grad(loss, [v.value for v in variables])

    def loss(trainable, non_trainable, metrics, optimizer, x, y):  # JAXTrainer.train_step's
        return net_model.compute_loss_and_updates(
            trainable, non_trainable, metrics, x, y, None, training=True,
            optimizer_variables=optimizer)

    values = [[v.value for v in group] for group in (
        variables, net_model.non_trainable_variables, net_model.metrics_variables,
        net_model.optimizer.variables)]
    (value, _), grads = fw.jit(fw.value_and_grad(loss, has_aux=True))(*values, x, y)
    return value, grads


def apply(backend, net_model):
    """apply(grads): the optimizer's update of the model's variables, as the train step
    makes it."""
    optimizer, variables = net_model.optimizer, net_model.trainable_variables
    if not optimizer.built:  # as train_on_batch builds it before the first step
        optimizer.build(variables)
    if backend == "tensorflow":
        return fw.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)),
                           jit_compile=bool(net_model.jit_compile))
    if backend == "torch":
        def eager(grads):
            with fw.no_grad():
                optimizer.apply(grads, variables)

        return eager
    stateless = fw.jit(optimizer.stateless_apply)

    def jitted(grads):  # the new values written back, as jax_state_sync does
        trainable, state = stateless([v.value for v in optimizer.variables], grads,
                                     [v.value for v in variables])
        for variable, value in zip(list(variables) + optimizer.variables,
                                   list(trainable) + list(state)):
            variable.assign(value)

    return jitted


def compute(state: State):
    backend = load(state)
    device = state.meta.get("device", "cpu")
    names, dtype = state.names(), state.dtype

    def tensor(value, dtype=dtype):
        return keras.ops.convert_to_tensor(np.asarray(value), dtype=dtype)

    with keras.device(DEVICES[backend][device]):
        net_model = model(state, backend, device)
        if state.part != "optimizer":
            x, y = state.batch()
            sparse = state.network["loss"] == "sparse_categorical_crossentropy"
            loss, grads = gradients(backend, net_model, tensor(x),
                                    tensor(y, "int64" if sparse else dtype))
            return {"loss": keras.ops.convert_to_numpy(loss),
                    **{"grad/" + name: keras.ops.convert_to_numpy(g)
                       for name, g in zip(names, grads)}}
        # A fresh optimizer fed the reference's gradients of every step so far; each
        # update from the state's parameters, as the suite did.
        update, before = apply(backend, net_model), state.params()
        variables = net_model.trainable_variables  # kernel, bias a layer: names' order
        for grads in state.grads():
            for name, variable in zip(names, variables):
                variable.assign(before[name])
            update([tensor(grads[name]) for name in names])
        return {"update/" + name: keras.ops.convert_to_numpy(v.value).astype(np.float64)
                - before[name] for name, v in zip(names, variables)}


if __name__ == "__main__":
    sys.exit(run(compute, versions))
