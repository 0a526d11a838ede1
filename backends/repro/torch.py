"""Reproduce, with PyTorch and NumPy alone, what fnn-suite measured at the first step this
backend left the noise: ``python torch.py`` prints the difference (``--help``).

The network is built as the suite's torch backend builds it: nn.Linear layers holding the
state's parameters, torch's activation modules and loss, torch.optim with every
hyperparameter given.
"""

import os
import sys
from pathlib import Path

# NOTE: `python repro/torch.py` puts repro/ first on sys.path, and the scripts there are
# named like the frameworks they import: without this, `import torch` imports the script.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from backends.repro.common import State, run  # noqa: E402  (inlined in a run's repro/)

ACTIVATIONS = {
    "linear": lambda p: torch.nn.Identity(),
    "relu": lambda p: torch.nn.ReLU(),
    "leaky_relu": lambda p: torch.nn.LeakyReLU(negative_slope=p["negative_slope"]),
    "elu": lambda p: torch.nn.ELU(alpha=p["alpha"]),
    "sigmoid": lambda p: torch.nn.Sigmoid(),
    "tanh": lambda p: torch.nn.Tanh(),
    "softplus": lambda p: torch.nn.Softplus(beta=1.0, threshold=20.0),
    "gelu": lambda p: torch.nn.GELU(approximate="none"),
    "gelu_tanh": lambda p: torch.nn.GELU(approximate="tanh"),
}
LOSSES = {  # cross-entropies from logits, as the suite computes them
    "mse": lambda p: torch.nn.MSELoss(reduction="mean"),
    "mae": lambda p: torch.nn.L1Loss(reduction="mean"),
    "huber": lambda p: torch.nn.HuberLoss(reduction="mean", delta=p["delta"]),
    "binary_crossentropy": lambda p: torch.nn.BCEWithLogitsLoss(reduction="mean"),
    "categorical_crossentropy": lambda p: torch.nn.CrossEntropyLoss(reduction="mean"),
    "sparse_categorical_crossentropy": lambda p: torch.nn.CrossEntropyLoss(reduction="mean"),
}
OPTIMIZERS = {
    "sgd": lambda params, p: torch.optim.SGD(
        params, lr=p["learning_rate"], momentum=p["momentum"], dampening=0.0,
        nesterov=bool(p["nesterov"]) and p["momentum"] > 0),
    "adam": lambda params, p: torch.optim.Adam(
        params, lr=p["learning_rate"], betas=(p["beta_1"], p["beta_2"]), eps=p["epsilon"],
        amsgrad=p["amsgrad"]),
    "adamw": lambda params, p: torch.optim.AdamW(
        params, lr=p["learning_rate"], betas=(p["beta_1"], p["beta_2"]), eps=p["epsilon"],
        weight_decay=p["weight_decay"], amsgrad=p["amsgrad"]),
    "rmsprop": lambda params, p: torch.optim.RMSprop(
        params, lr=p["learning_rate"], alpha=p["rho"], eps=p["epsilon"],
        momentum=p["momentum"], centered=p["centered"]),
    "adagrad": lambda params, p: torch.optim.Adagrad(
        params, lr=p["learning_rate"], eps=p["epsilon"],
        initial_accumulator_value=p["initial_accumulator_value"]),
}


def versions():
    return {"torch": torch.__version__, "numpy": np.__version__}


def network(state):
    """nn.Sequential holding the state's parameters; its Linear layers."""
    net, dtype = state.network, getattr(torch, state.dtype)
    params, modules, linears = state.params(), [], []
    for i, layer in enumerate(net["layers"]):
        kernel = params[f"dense_{i}/kernel"]
        linear = torch.nn.Linear(*kernel.shape, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(np.ascontiguousarray(kernel.T)))  # (out, in)
            linear.bias.copy_(torch.as_tensor(params[f"dense_{i}/bias"]))
        modules.append(linear)
        linears.append(linear)
        if not (i == len(net["layers"]) - 1 and net["fused_output"]):
            modules.append(ACTIVATIONS[layer["activation"]](layer["activation_params"]))
    return torch.nn.Sequential(*modules), linears


def forward_backward(state, model, linears):
    net = state.network
    x, y = state.batch()
    target = torch.as_tensor(y) if net["loss"] == "sparse_categorical_crossentropy" else \
        torch.as_tensor(y, dtype=getattr(torch, state.dtype))
    loss = LOSSES[net["loss"]](net["loss_params"])(model(torch.as_tensor(x)), target)
    for linear, layer in zip(linears, net["layers"]):
        if layer["kernel_l2"] > 0:  # Keras: the penalty is part of the loss
            loss = loss + layer["kernel_l2"] * (linear.weight ** 2).sum()
    loss.backward()
    values = {"loss": loss.detach().numpy()}
    for i, linear in enumerate(linears):
        values[f"grad/dense_{i}/kernel"] = linear.weight.grad.numpy().T
        values[f"grad/dense_{i}/bias"] = linear.bias.grad.numpy()
    return values


def update(state, model, linears):
    """A fresh optimizer fed the reference's gradients of every step so far; the last
    update is taken from the state's parameters."""
    net = state.network
    optimizer = OPTIMIZERS[net["optimizer"]](model.parameters(), net["optimizer_params"])
    before = {name: value.copy() for name, value in state.params().items()}
    for grads in state.grads():
        with torch.no_grad():  # each update from the reference's parameters, as the suite did
            for i, linear in enumerate(linears):
                linear.weight.copy_(torch.as_tensor(np.ascontiguousarray(
                    before[f"dense_{i}/kernel"].T)))
                linear.bias.copy_(torch.as_tensor(before[f"dense_{i}/bias"]))
        for i, linear in enumerate(linears):
            linear.weight.grad = torch.as_tensor(np.ascontiguousarray(
                grads[f"dense_{i}/kernel"].T))
            linear.bias.grad = torch.as_tensor(grads[f"dense_{i}/bias"])
        optimizer.step()
    values = {}
    for i, linear in enumerate(linears):
        for part, tensor in (("kernel", linear.weight.detach().numpy().T),
                             ("bias", linear.bias.detach().numpy())):
            name = f"dense_{i}/{part}"
            values["update/" + name] = tensor.astype(np.float64) - before[name]
    return values


def compute(state: State):
    torch.set_num_threads(state.meta.get("threads", 1))
    model, linears = network(state)
    if state.part == "optimizer":
        return update(state, model, linears)
    return forward_backward(state, model, linears)


if __name__ == "__main__":
    sys.exit(run(compute, versions))
