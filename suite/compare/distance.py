"""How far one tensor is from another: the one measure every comparison uses.

Worker side as well (suite.compare.parts): standard library and NumPy only.
"""

from __future__ import annotations

import math

import numpy as np


def rel_l2_error(value: np.ndarray, reference: np.ndarray, scale: float | None = None
                 ) -> float:
    """|value - reference| / |reference| (L2), or over ``scale`` where given."""
    diff = float(np.linalg.norm(np.asarray(value, np.float64) - np.asarray(reference,
                                                                          np.float64)))
    if scale is None:
        scale = float(np.linalg.norm(np.asarray(reference, np.float64)))
    if scale > 0:
        return diff / scale
    return 0.0 if diff == 0 else math.inf


def max_abs_diff(value: np.ndarray, reference: np.ndarray) -> float:
    difference = np.asarray(value, np.float64) - np.asarray(reference, np.float64)
    return float(np.max(np.abs(difference))) if difference.size else 0.0


class RunningSize:
    """The largest L2 norm each tensor of a baseline has had so far, step by step: what its
    errors are relative to.

    NOTE: a tensor that shrinks as the network learns (a gradient, the loss of a learnt
    batch, a last batch of a few rows) is a sum that cancels: its rounding stays that of
    its terms, which were as large as the tensor once was. Relative to its own small
    norm, a correct implementation's error would look huge, and its ratio to another
    correct implementation's error a matter of chance.
    """

    def __init__(self) -> None:
        self._largest: dict[object, float] = {}

    def __call__(self, key: object, reference: np.ndarray | float) -> float:
        size = float(np.linalg.norm(np.asarray(reference, np.float64)))
        largest = max(self._largest.get(key, 0.0), size)
        self._largest[key] = largest
        return largest


def stored_rounding(after: np.ndarray, size: float) -> float:
    """How many epsilons an update's rounding may be, relative to ``size`` (the norm its
    error is measured against), at least one.

    NOTE: an update is read as the parameters after it minus before, and the parameters
    after it were rounded to the dtype: by up to half an epsilon of |p|, which relative to
    a small update is |p| / (2 |update|) epsilons. A noise run whose update rounds alike
    (an elementwise optimizer in float64) cannot show it.
    """
    if size <= 0:
        return 1.0
    return max(1.0, 0.5 * float(np.linalg.norm(np.asarray(after, np.float64))) / size)
