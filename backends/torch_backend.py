"""PyTorch backend: nn.Linear layers, torch's own losses, autograd and torch.optim.

Every hyperparameter of the spec is passed explicitly. torch is imported in
:meth:`TorchBackend.load` only, so listing backends stays cheap; the registries below
therefore take the imported ``torch`` module as their first argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from backends.base import Backend, Batch, Params, Trainer, canonical_params, cycled

if TYPE_CHECKING:
    from suite.spec import Spec

# name -> (torch, activation params) -> module.
ACTIVATIONS: dict[str, Callable[[Any, dict], Any]] = {
    "linear": lambda t, p: t.nn.Identity(),
    "relu": lambda t, p: t.nn.ReLU(),
    "leaky_relu": lambda t, p: t.nn.LeakyReLU(negative_slope=p["negative_slope"]),
    "elu": lambda t, p: t.nn.ELU(alpha=p["alpha"]),
    "sigmoid": lambda t, p: t.nn.Sigmoid(),
    "tanh": lambda t, p: t.nn.Tanh(),
    # NOTE: torch's softplus returns x itself where beta * x > threshold (20 here); the
    # published log(1 + exp(x)) differs from x by log1p(exp(-x)) < 2.1e-9 there.
    "softplus": lambda t, p: t.nn.Softplus(beta=1.0, threshold=20.0),
    "gelu": lambda t, p: t.nn.GELU(approximate="none"),
    "gelu_tanh": lambda t, p: t.nn.GELU(approximate="tanh"),
}

# Output activation applied by predict() when it is fused into a from-logits loss.
FUSED_OUTPUTS: dict[str, Callable[[Any, Any], Any]] = {
    "sigmoid": lambda t, z: t.sigmoid(z),
    "softmax": lambda t, z: t.softmax(z, dim=-1),
}

# name -> (torch, loss params) -> criterion; cross-entropies take logits.
LOSSES: dict[str, Callable[[Any, dict], Any]] = {
    "mse": lambda t, p: t.nn.MSELoss(reduction="mean"),
    "mae": lambda t, p: t.nn.L1Loss(reduction="mean"),
    "huber": lambda t, p: t.nn.HuberLoss(reduction="mean", delta=p["delta"]),
    "binary_crossentropy": lambda t, p: t.nn.BCEWithLogitsLoss(reduction="mean"),
    # probability targets of shape (batch, classes)
    "categorical_crossentropy": lambda t, p: t.nn.CrossEntropyLoss(
        reduction="mean", label_smoothing=0.0),
    # int64 class indices of shape (batch,)
    "sparse_categorical_crossentropy": lambda t, p: t.nn.CrossEntropyLoss(
        reduction="mean", label_smoothing=0.0),
}


def _sgd(t, params, p: dict):
    # torch refuses nesterov=True without momentum ("Nesterov momentum requires a momentum
    # and zero dampening"); Keras then runs plain SGD, which nesterov=False reproduces.
    nesterov = bool(p["nesterov"]) and p["momentum"] > 0
    return t.optim.SGD(params, lr=p["learning_rate"], momentum=p["momentum"], dampening=0.0,
                       weight_decay=0.0, nesterov=nesterov, maximize=False)


def _adam(t, params, p: dict):
    return t.optim.Adam(params, lr=p["learning_rate"], betas=(p["beta_1"], p["beta_2"]),
                        eps=p["epsilon"], weight_decay=0.0, amsgrad=p["amsgrad"],
                        maximize=False)


def _adamw(t, params, p: dict):
    return t.optim.AdamW(params, lr=p["learning_rate"], betas=(p["beta_1"], p["beta_2"]),
                         eps=p["epsilon"], weight_decay=p["weight_decay"],
                         amsgrad=p["amsgrad"], maximize=False)


def _rmsprop(t, params, p: dict):
    return t.optim.RMSprop(params, lr=p["learning_rate"], alpha=p["rho"], eps=p["epsilon"],
                           weight_decay=0.0, momentum=p["momentum"], centered=p["centered"],
                           maximize=False)


def _adagrad(t, params, p: dict):
    return t.optim.Adagrad(params, lr=p["learning_rate"], lr_decay=0.0, weight_decay=0.0,
                           initial_accumulator_value=p["initial_accumulator_value"],
                           eps=p["epsilon"], maximize=False)


OPTIMIZERS: dict[str, Callable[[Any, Any, dict], Any]] = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adamw,
    "rmsprop": _rmsprop,
    "adagrad": _adagrad,
}


class TorchBackend(Backend):
    """PyTorch (eager, torch.optim)."""

    name = "torch"
    requires = ("torch",)
    extra = "torch"
    devices = ("cpu", "cuda")
    repro = "backends.repro.torch"

    def __init__(self) -> None:
        self._torch: Any = None

    def load(self, threads: int) -> None:
        import torch

        # torch.optim imports it on first use, which is slow: here it is part of loading
        # (see docs/performance.md, section "torch: torch._dynamo imported in load")
        import torch._dynamo  # noqa: F401

        torch.set_num_threads(threads)
        # A correctness tool: no TF32 shortcuts in float32 matrix products on a GPU.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        self._torch = torch

    def runtime_settings(self) -> dict[str, object]:
        return torch_settings(self._require())

    def versions(self) -> dict[str, str]:
        return {"torch": str(self._torch.__version__)}

    def supports(self, feature: str) -> bool | str:
        if feature == "device:cuda" and not self._require().cuda.is_available():
            return "torch.cuda.is_available() is False (no CUDA device or a CPU-only build)"
        return super().supports(feature)

    def build(self, spec: Spec, params: Params, dtype: str, device: str) -> Trainer:
        return TorchTrainer(self._require(), spec, params, dtype, device)

    def _require(self):
        if self._torch is None:
            raise RuntimeError("TorchBackend.load() must be called before use")
        return self._torch


class TorchTrainer(Trainer):
    """An nn.Sequential of Linear and activation modules, its criterion and optimizer."""

    def __init__(self, torch, spec: Spec, params: Params, dtype: str, device: str):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"expected dtype float32 or float64. Received: {dtype!r}")
        self.t = torch
        self.dtype = getattr(torch, dtype)
        self.device = torch.device(device)
        self.spec = spec
        self.model, self.linears = _sequential(torch, spec, params, dtype, self.device)
        self.criterion = LOSSES[spec.loss.name](torch, spec.loss.params)
        self.sparse = spec.loss.name == "sparse_categorical_crossentropy"
        pairs = zip(self.linears, spec.layers, strict=True)
        self.l2 = [(lin, layer.kernel_l2) for lin, layer in pairs if layer.kernel_l2 > 0]
        opt = spec.optimizer
        self.optimizer = OPTIMIZERS[opt.name](torch, self.model.parameters(), opt.params)

    # ------------------------------------------------------------------ conversions

    def _x(self, x: np.ndarray):
        return self.t.as_tensor(np.asarray(x), dtype=self.dtype, device=self.device)

    def _y(self, y: np.ndarray):
        dtype = self.t.int64 if self.sparse else self.dtype
        return self.t.as_tensor(np.asarray(y), dtype=dtype, device=self.device)

    def _loss(self, x, y):
        loss = self.criterion(self.model(x), y)
        for linear, l2 in self.l2:
            # Keras semantics: the penalty is part of the loss (not weight decay).
            loss = loss + l2 * (linear.weight ** 2).sum()
        return loss

    def _backward(self, x, y):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(x, y)
        loss.backward()
        return loss

    # ------------------------------------------------------------------ contract

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        loss = self._backward(self._x(x), self._y(y))
        grads: Params = {}
        for i, linear in enumerate(self.linears):
            grads[f"dense_{i}/kernel"] = _numpy(linear.weight.grad).T.copy()
            grads[f"dense_{i}/bias"] = _numpy(linear.bias.grad).copy()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.item()), grads

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss = self._backward(self._x(x), self._y(y))
        value = float(loss.item())  # computed before the update
        self.optimizer.step()
        return value

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self.t.no_grad():
            out = self.model(self._x(x))
            if self.spec.fused_output:
                out = FUSED_OUTPUTS[self.spec.output_activation](self.t, out)
        return _numpy(out).copy()

    def get_params(self) -> Params:
        params: Params = {}
        for i, linear in enumerate(self.linears):
            params[f"dense_{i}/kernel"] = _numpy(linear.weight).T.copy()
            params[f"dense_{i}/bias"] = _numpy(linear.bias).copy()
        return params

    def set_params(self, params: Params) -> None:
        with self.t.no_grad():
            for i, linear in enumerate(self.linears):
                linear.weight.copy_(self._tensor(params[f"dense_{i}/kernel"].T))
                linear.bias.copy_(self._tensor(params[f"dense_{i}/bias"]))

    def apply_grads(self, grads: Params) -> None:
        for i, linear in enumerate(self.linears):
            linear.weight.grad = self._tensor(grads[f"dense_{i}/kernel"].T)
            linear.bias.grad = self._tensor(grads[f"dense_{i}/bias"])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _tensor(self, value: np.ndarray):
        # contiguous, as autograd's own gradients are (Linear keeps (fan_out, fan_in))
        return self.t.as_tensor(np.ascontiguousarray(value), dtype=self.dtype,
                                device=self.device)

    def fast_step(self, batches: Sequence[Batch]) -> Callable[[], None]:
        # Tensors on the device before the clock; the step is the usual eager loop body.
        cycle = cycled(batches, lambda x, y: (self._x(x), self._y(y)))
        sync = self.t.cuda.synchronize if self.device.type == "cuda" else no_sync
        opt, loss_of = self.optimizer, self._loss
        sync()

        def step() -> None:
            x, y = next(cycle)
            opt.zero_grad(set_to_none=True)
            loss_of(x, y).backward()
            opt.step()
            sync()  # CUDA kernels run asynchronously: the step ends when the device is done

        return step


def _sequential(torch, spec: Spec, params: Params, dtype: str, device):
    """nn.Sequential holding exactly ``params``; returns it and its Linear modules."""
    modules, linears = [], []
    last = len(spec.layers) - 1
    checked = canonical_params(spec, params, dtype)
    torch_dtype = getattr(torch, dtype)
    for i, (fan_in, layer) in enumerate(zip(spec.sizes[:-1], spec.layers, strict=True)):
        linear = torch.nn.Linear(fan_in, layer.units, bias=True, device=device,
                                 dtype=torch_dtype)
        kernel, bias = checked[f"dense_{i}/kernel"], checked[f"dense_{i}/bias"]
        with torch.no_grad():
            # torch stores (out, in): weight = kernel.T
            linear.weight.copy_(torch.as_tensor(np.ascontiguousarray(kernel.T),
                                                dtype=torch_dtype))
            linear.bias.copy_(torch.as_tensor(bias, dtype=torch_dtype))
        modules.append(linear)
        linears.append(linear)
        if not (i == last and spec.fused_output):
            act = layer.activation
            modules.append(ACTIVATIONS[act.name](torch, act.params))
    return torch.nn.Sequential(*modules), linears


def torch_settings(torch) -> dict[str, object]:
    """torch's own report of its thread pools and float32 matmul precision (also used by
    the Keras-on-torch backend)."""
    return {
        "torch.num_threads": int(torch.get_num_threads()),
        "torch.num_interop_threads": int(torch.get_num_interop_threads()),
        "torch.float32_matmul_precision": str(torch.get_float32_matmul_precision()),
        "torch.backends.cuda.matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "torch.backends.cuda.matmul.fp32_precision": str(
            torch.backends.cuda.matmul.fp32_precision),
        "torch.backends.cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
    }


def no_sync() -> None:
    """On the CPU every op has finished when it returns (also used by Keras on torch)."""


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()
