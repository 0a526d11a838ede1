"""Parameters as views into one flat array: the model's layout, which optimizers share.

Holding every parameter (and every gradient) in one contiguous array lets an elementwise
optimizer update them all in one pass, and lets a layer write its gradients where the
optimizer reads them. The arrays under their canonical names are views of that array.
"""

from __future__ import annotations

import math

import numpy as np

from backends.base import Params

#: canonical name -> (offset, shape) of a parameter in its flat array
Layout = dict[str, tuple[int, tuple[int, ...]]]


def layout_of(shapes: dict[str, tuple[int, ...]]) -> Layout:
    """Offsets of ``shapes`` (name -> shape) laid end to end, in their order."""
    layout: Layout = {}
    offset = 0
    for name, shape in shapes.items():
        layout[name] = (offset, shape)
        offset += math.prod(shape)
    return layout


def views(flat: np.ndarray, layout: Layout) -> Params:
    """Each name's piece of ``flat``, shaped: C-contiguous views, writes go through."""
    return {name: flat[offset:offset + math.prod(shape)].reshape(shape)
            for name, (offset, shape) in layout.items()}
