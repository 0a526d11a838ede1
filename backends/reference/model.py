"""A Sequential of Dense and Activation layers, built from a spec and initial parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from backends.base import Params, canonical_params
from backends.reference import activations, flat, float32_constant, losses, resolve_conventions
from backends.reference.layers import Activation, Dense

if TYPE_CHECKING:
    from suite.spec import Spec

SPARSE = "sparse_categorical_crossentropy"
#: Wide hidden layers' outputs are feature-major for batches of up to this many rows (see
#: backends.reference.layers and :func:`feature_major`); the logits stay row-major, as the
#: losses read them by row.
FEATURE_MAJOR_ROWS = 128
#: the fewest units (and inputs, before the logits) of a feature-major hidden layer
FEATURE_MAJOR_UNITS = 256


class Sequential:
    """The spec's network in ``dtype``, holding its own copies of the parameters.

    When ``spec.fused_output`` is True the output activation is left out: the network
    ends in logits, the loss takes them, and :meth:`predict` applies sigmoid or softmax.

    Every parameter is a view into one contiguous array, ``flat_params``, and every
    gradient a view into ``flat_grads`` (``layout`` names the pieces): an elementwise
    optimizer updates them all in one pass (:meth:`Optimizer.update_flat`), which may use
    ``flat_grads`` as its scratch once :meth:`backward` has filled it.

    Parameters
    ----------
    spec : Spec
    params : dict of canonical name -> ndarray
        ``dense_<i>/kernel`` of shape (fan_in, fan_out), ``dense_<i>/bias`` of shape
        (fan_out,); checked, copied and cast to ``dtype`` by
        :func:`backends.base.canonical_params`.
    dtype : str
    conventions : dict of str -> str, optional
        Reference conventions (see ``backends.reference.CONVENTIONS``).
    """

    def __init__(self, spec: Spec, params: Params, dtype: str = "float64",
                 conventions: Mapping[str, str] | None = None):
        self.dtype = np.dtype(dtype)
        checked = canonical_params(spec, params, self.dtype)
        self.layout = flat.layout_of({name: value.shape for name, value in checked.items()})
        self.flat_params = np.concatenate([value.ravel() for value in checked.values()])
        self.flat_grads = np.zeros_like(self.flat_params)
        self.params = flat.views(self.flat_params, self.layout)
        self.grads = flat.views(self.flat_grads, self.layout)
        self.dense: list[Dense] = []
        self.layers: list[Dense | Activation] = []
        resolved = resolve_conventions(conventions)
        last = len(spec.layers) - 1
        for i, layer in enumerate(spec.layers):
            # NOTE: Keras's L2 regularizer computes ops.cast(l2, x.dtype) * sum(x**2).
            l2 = float32_constant(layer.kernel_l2, resolved, "float32_l2")
            kernel, bias = f"dense_{i}/kernel", f"dense_{i}/bias"
            major = i < last and feature_major(*spec.sizes[i:i + 2], feeds_hidden=i + 1 < last)
            dense = Dense(self.params[kernel], self.params[bias], l2,
                          self.grads[kernel], self.grads[bias],
                          feature_major_rows=FEATURE_MAJOR_ROWS if major else 0)
            self.dense.append(dense)
            self.layers.append(dense)
            if not (i == last and spec.fused_output):
                # in place: its z and delta are the Dense layers' own workspaces
                self.layers.append(Activation(layer.activation.name, layer.activation.params,
                                              conventions, in_place=True))
        self.output = activations.get(spec.output_activation) if spec.fused_output else None
        self.loss_fn = losses.get(spec.loss.name)
        self.loss_params = {key: float(value) for key, value in spec.loss.params.items()}
        self.target_dtype = np.dtype(np.int64) if spec.loss.name == SPARSE else self.dtype
        self._penalized = [dense for dense in self.dense if dense.l2]
        self._backward_layers = self.layers[:0:-1]  # every layer but the first, last first
        self._delta: np.ndarray | None = None

    def prepare(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x and y in the model's dtypes (no copy when they already are)."""
        return np.asarray(x, dtype=self.dtype), np.asarray(y, dtype=self.target_dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x of shape (batch, input_dim) -> output (batch, units), logits when fused."""
        return self._forward(np.asarray(x, dtype=self.dtype)).copy()

    def _forward(self, h: np.ndarray) -> np.ndarray:
        """The output in the last layer's workspace (valid until the next forward)."""
        for layer in self.layers:
            h = layer.forward(h)
        return h

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """The batch's data loss plus every L2 penalty; keeps dL/dz for :meth:`backward`."""
        x, y = self.prepare(x, y)
        value, self._delta = self.loss_fn.value_and_grad(self._forward(x), y,
                                                         **self.loss_params)
        if self._penalized:
            # NOTE: the same sum as adding every layer's penalty, zeros included, to 0.0
            value += sum(dense.penalty() for dense in self._penalized)
        return value

    def backward(self, copy: bool = True) -> Params:
        """Gradients of the last :meth:`loss` under canonical names: fresh arrays, or with
        ``copy=False`` the live views of ``flat_grads`` that the next backward overwrites."""
        delta = self._delta
        if delta is None:
            raise RuntimeError("backward() needs a loss(x, y) call first")
        for layer in self._backward_layers:
            delta = layer.backward(delta)
        self.layers[0].backward(delta, input_delta=False)
        self._delta = None
        if not copy:
            return self.grads
        return {name: grad.copy() for name, grad in self.grads.items()}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs (batch, units) with the output activation applied (probabilities)."""
        z = self._forward(np.asarray(x, dtype=self.dtype))
        return self.output.forward(z) if self.output is not None else z.copy()


def feature_major(fan_in: int, fan_out: int, feeds_hidden: bool) -> bool:
    """Whether a hidden layer keeps its output feature-major (for small batches): when it
    is wide, and either its input is wide too or it feeds another hidden layer.

    Narrower networks ran slower feature-major: their products are too small for the
    threads to matter (see docs/performance.md, section "Reference: feature-major hidden
    layers").
    """
    return fan_out >= FEATURE_MAJOR_UNITS and (fan_in >= FEATURE_MAJOR_UNITS or feeds_hidden)

