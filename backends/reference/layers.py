"""Layers: one module per kind. ``forward`` caches what ``backward`` needs; ``backward``
takes delta = dL/d(output) of shape (batch, units_out) and returns dL/d(input).

Speed without changing a number: each layer writes its output (and a Dense layer its input
delta and its gradients) into arrays it owns and reuses from step to step, so a training
step allocates almost nothing. What ``forward`` and ``backward`` return is therefore valid
until the layer's next call: copy what you keep. An :class:`Activation` built with
``in_place=True`` overwrites the ``z`` and ``delta`` it is given (the Sequential passes it
arrays that no one else reads).

A hidden Dense layer may keep its output feature-major (a Fortran-order array of shape
(batch, units)) for batches of up to ``feature_major_rows`` rows; which layers do is
``backends.reference.model.feature_major``'s choice. NumPy's OpenBLAS then sees the batch
as its rows and splits the products better between its threads; larger batches stay
row-major (see docs/performance.md, section "Reference: feature-major hidden layers").
The layout depends on the batch's and the layers' sizes alone, so a run's numbers depend
on nothing else; the two layouts' products and sums may differ in their last bits.
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
    kernel_grad, bias_grad : ndarray shaped like kernel and bias
        Where :meth:`backward` writes the gradients (held by reference, like the
        parameters: views into one flat array let an optimizer update every parameter at
        once).
    feature_major_rows : int
        Batches of up to this many rows get a feature-major output workspace (0: never).
    """

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, l2: float,
                 kernel_grad: np.ndarray, bias_grad: np.ndarray, feature_major_rows: int = 0):
        self.kernel = kernel
        self.bias = bias
        self.l2 = float(l2)
        self.feature_major_rows = feature_major_rows
        self.kernel_grad = kernel_grad
        self.bias_grad = bias_grad
        self._h: np.ndarray | None = None
        self._z: np.ndarray | None = None  # workspace: the output
        self._dh: np.ndarray | None = None  # workspace: the input delta

    def forward(self, h: np.ndarray) -> np.ndarray:
        """h of shape (batch, fan_in) -> z of shape (batch, fan_out), in the workspace."""
        self._h = h
        z = self._z
        if z is None or len(z) != len(h):
            order = "F" if len(h) <= self.feature_major_rows else "C"
            z = self._z = np.empty((len(h), self.kernel.shape[1]), self.kernel.dtype, order)
        np.matmul(h, self.kernel, out=z)
        z += self.bias
        return z

    def backward(self, delta: np.ndarray, input_delta: bool = True) -> np.ndarray | None:
        """Write ``kernel_grad`` and ``bias_grad``; return delta @ kernel.T (None if not
        asked), in the workspace."""
        h = self._h
        np.matmul(h.T, delta, out=self.kernel_grad)
        if self.l2:
            self.kernel_grad += (2.0 * self.l2) * self.kernel
        # NOTE: NumPy sums a feature-major delta down its contiguous columns, pairwise, and
        # a row-major one row after row: the bias gradient's rounding follows the layout.
        np.add.reduce(delta, axis=0, out=self.bias_grad)  # delta.sum(0) without its wrapper
        if not input_delta:
            return None
        dh = self._dh
        order = _order(h)
        if dh is None or dh.shape != h.shape or _order(dh) != order:
            dh = self._dh = np.empty(h.shape, self.kernel.dtype, order)
        return np.matmul(delta, self.kernel.T, out=dh)

    def penalty(self) -> float:
        """l2 * sum(kernel**2), the term this layer adds to the loss."""
        if not self.l2:
            return 0.0
        return self.l2 * float(np.sum(self.kernel * self.kernel))


def _order(a: np.ndarray) -> str:
    """"F" for a Fortran-order (feature-major) array of several rows, else "C"."""
    return "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"


class Activation:
    """out = sigma(z), elementwise, through the activation registry.

    With ``in_place=True`` the layer may overwrite the ``z`` it is given with ``out`` and
    the ``delta`` it is given with its result, where the registry has those forms.
    """

    def __init__(self, name: str, params: Mapping[str, float] | None = None,
                 conventions: Mapping[str, str] | None = None, in_place: bool = False):
        self.name = name
        self.fn = activations.get(name, conventions)
        # Python floats: a NumPy float64 scalar would upcast float32 arrays under NumPy 2.
        self.params = {key: float(value) for key, value in (params or {}).items()}
        self._forward_in_place = self.fn.forward_in_place if in_place else None
        self._backward_in_place = self.fn.backward_in_place if in_place else None
        self._z: np.ndarray | None = None
        self._out: np.ndarray | None = None

    def forward(self, z: np.ndarray) -> np.ndarray:
        if self._forward_in_place is not None:
            self._z = None  # overwritten: the in-place backward needs only out
            self._out = self._forward_in_place(z, **self.params)
        else:
            self._z = z
            self._out = self.fn.forward(z, **self.params)
        return self._out

    def backward(self, delta: np.ndarray) -> np.ndarray:
        if self._backward_in_place is not None:
            return self._backward_in_place(self._out, delta, **self.params)
        return self.fn.backward(self._z, self._out, delta, **self.params)
