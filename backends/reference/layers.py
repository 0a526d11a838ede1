"""Layers: one module per kind. ``forward`` caches what ``backward`` needs; ``backward``
takes delta = dL/d(output) of shape (batch, units_out) and returns dL/d(input).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from backends.reference import activations


class Dense:
    """z = h @ kernel + bias, with an optional Keras L2 penalty l2 * sum(kernel**2).

    Parameters
    ----------
    kernel : ndarray of shape (fan_in, fan_out)
    bias : ndarray of shape (fan_out,)
        Held by reference: an optimizer updating them in place updates the layer.
    l2 : float
    """

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, l2: float = 0.0):
        self.kernel = kernel
        self.bias = bias
        self.l2 = float(l2)
        self.grads: dict[str, np.ndarray] = {}
        self._h: np.ndarray | None = None

    def forward(self, h: np.ndarray) -> np.ndarray:
        """h of shape (batch, fan_in) -> z of shape (batch, fan_out)."""
        self._h = h
        z = h @ self.kernel
        z += self.bias  # in place on the fresh product: one array, not two
        return z

    def backward(self, delta: np.ndarray, input_delta: bool = True) -> np.ndarray | None:
        """Store ``grads`` (fresh arrays) and return delta @ kernel.T (None if not asked)."""
        kernel_grad = self._h.T @ delta
        if self.l2:
            kernel_grad += (2.0 * self.l2) * self.kernel
        self.grads = {"kernel": kernel_grad, "bias": delta.sum(axis=0)}
        return delta @ self.kernel.T if input_delta else None

    def penalty(self) -> float:
        """l2 * sum(kernel**2), the term this layer adds to the loss."""
        if not self.l2:
            return 0.0
        return self.l2 * float(np.sum(self.kernel * self.kernel))


class Activation:
    """out = sigma(z), elementwise, through the activation registry."""

    def __init__(self, name: str, params: Mapping[str, float] | None = None,
                 conventions: Mapping[str, str] | None = None):
        self.name = name
        self.fn = activations.get(name, conventions)
        # Python floats: a NumPy float64 scalar would upcast float32 arrays under NumPy 2.
        self.params = {key: float(value) for key, value in (params or {}).items()}
        self._z: np.ndarray | None = None
        self._out: np.ndarray | None = None

    def forward(self, z: np.ndarray) -> np.ndarray:
        self._z = z
        self._out = self.fn.forward(z, **self.params)
        return self._out

    def backward(self, delta: np.ndarray) -> np.ndarray:
        return self.fn.backward(self._z, self._out, delta, **self.params)
