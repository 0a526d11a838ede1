"""The optimizers' base: hyperparameters, conventions, step count, state, flat arrays, BLAS.

:class:`Optimizer` holds everything an update rule does not: it checks the
hyperparameters, resolves the conventions, counts the steps, keeps the state slots (per
parameter name, or as views of one flat state under :meth:`Optimizer.update_flat`), runs
the rule over a dict of parameters or over one flat array in cache-sized blocks, lends a
scratch array, rounds constants as a framework holds them, and runs a plain descent step
on NumPy's BLAS threads. The rules themselves, small whole formulas chosen by table, are
in :mod:`backends.reference.optimizers`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from backends.base import Params
from backends.reference import blas, flat, float32_constant, resolve_conventions

#: update_flat's block: it stays in L2 cache (docs/performance.md, "Reference: optimizer blocks")
BLOCK = 1 << 16

#: an update rule: ``formula(optimizer, name, p, g)`` steps ``p`` (a parameter, or a block
#: of the flat array) and its state in place; ``name`` is what :meth:`Optimizer.slot` takes
Formula = Callable[["Optimizer", "str | slice", np.ndarray, np.ndarray], None]


class Optimizer:
    """Shared plumbing: hyperparameters, conventions, the step count and the state.

    A subclass names its ``hyperparameters`` and picks its :attr:`formula` in
    :meth:`choose`, from its table of formulas keyed by the conventions.
    """

    hyperparameters: tuple[str, ...] = ()

    def __init__(self, hyper: Mapping[str, float | bool],
                 conventions: Mapping[str, str] | None = None):
        missing = [key for key in self.hyperparameters if key not in hyper]
        unknown = [key for key in hyper if key not in self.hyperparameters]
        if missing or unknown:
            raise ValueError(f"{type(self).__name__} takes {', '.join(self.hyperparameters)}. "
                             f"Missing: {missing}; unknown: {unknown}")
        # bools stay bools; numbers become Python floats (never a NumPy float64 scalar)
        self.hyper = {key: value if isinstance(value, bool) else float(value)
                      for key, value in hyper.items()}
        self.conventions = resolve_conventions(conventions)
        self.t = 0  # steps taken; the first update has t = 1
        #: parameter name -> slot -> array (under update_flat: views of the flat state)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._flat_state: dict[str, np.ndarray] = {}
        self._layout: flat.Layout = {}
        self._size = 0
        self._scratch: np.ndarray | None = None
        #: the update rule for these hyperparameters and conventions
        self.formula: Formula = self.choose()

    def choose(self) -> Formula:
        """The formula for :attr:`hyper` and :attr:`conventions` (a subclass's table);
        constants it reads from the optimizer are set here too."""
        raise NotImplementedError

    def update(self, params: Params, grads: Params) -> None:
        """One step on every parameter, in place."""
        self.t += 1
        for name, param in params.items():
            self.step(name, param, grads[name])

    def update_flat(self, params: np.ndarray, grads: np.ndarray, layout: flat.Layout,
                    overwrite_grads: bool = False) -> None:
        """One step on parameters held as views of one contiguous 1-d array ``params``
        (their gradients likewise in ``grads``), in place; ``layout`` names the pieces.

        Every rule is elementwise, so this is :meth:`update` on all parameters at once,
        with the same numbers; it runs in blocks of :data:`BLOCK` elements that stay in
        cache, or, where the rule has one and ``overwrite_grads`` allows it to use
        ``grads`` as its scratch, in :meth:`flat_step`. The state of each parameter in
        :attr:`state` is a view of the flat state.
        """
        self.t += 1
        self._layout, self._size = layout, params.size
        if overwrite_grads and self.flat_step(params, grads):
            return
        for start in range(0, params.size, BLOCK):
            block = slice(start, start + BLOCK)  # the step's name; the last one is clipped
            self.step(block, params[block], grads[block])

    def step(self, name: str | slice, p: np.ndarray, g: np.ndarray) -> None:
        """The formula on one parameter ``name`` (or one block of the flat array)."""
        self.formula(self, name, p, g)

    def slot(self, name: str | slice, slot: str, like: np.ndarray,
             fill: float = 0.0) -> np.ndarray:
        """The state array ``slot`` of parameter ``name`` (or of the block ``name`` of the
        flat array, under :meth:`update_flat`), created filled with ``fill``."""
        if isinstance(name, slice):
            whole = self._flat_state.get(slot)
            if whole is None:
                whole = self._flat_state[slot] = np.full(self._size, fill, like.dtype)
                for member, view in flat.views(whole, self._layout).items():
                    self.state.setdefault(member, {})[slot] = view
            return whole[name]
        slots = self.state.setdefault(name, {})
        if slot not in slots:
            slots[slot] = np.full_like(like, fill)
        return slots[slot]

    def scaled(self, a: np.ndarray, factor: float) -> np.ndarray:
        """factor * a in a scratch array, valid until the next call: no allocation."""
        scratch = self._scratch
        if scratch is None or scratch.size < a.size or scratch.dtype != a.dtype:
            scratch = self._scratch = np.empty(max(a.size, BLOCK), a.dtype)
        out = scratch[:a.size]
        return np.multiply(a, factor, out=out if a.ndim == 1 else out.reshape(a.shape))

    def f32(self, value: float) -> float:
        """A hyperparameter as Keras on TensorFlow holds it (see float32_constant)."""
        return float32_constant(value, self.conventions, "float32_optimizer_constants")

    def attr(self, value: float) -> float:
        """A hyperparameter as an MXNet operator attribute holds it (a C++ float)."""
        return float32_constant(value, self.conventions, "mxnet_float32_attributes")

    def flat_step(self, p: np.ndarray, g: np.ndarray) -> bool:
        """The step on the whole flat array at once, free to overwrite ``g``: True if done,
        False where the rule has no such form (the default)."""
        return False

    def descend_on_blas(self, p: np.ndarray, g: np.ndarray, lr: float) -> bool:
        """p -= lr * g on the whole flat array with the BLAS's threads, overwriting ``g``:
        True if done, False where it cannot be (lr 0, under one block, no usable BLAS)."""
        # g *= lr; p -= g with BLAS's threads on a large array: the numbers of p -= lr * g
        library = blas.level1()
        if lr == 0.0 or p.size < BLOCK or library is None or not library.handles(p, g):
            return False
        library.scale(g, lr)
        library.subtract(p, g)
        return True
