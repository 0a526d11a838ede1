"""The sizes a benchmark sweeps, and the spec each one trains. Worker side (NumPy only).

A size is (width, depth, batch_size): ``depth`` hidden layers of ``width`` units each,
between the spec's own input and output layers. Hidden layers take the activation and
initializers of the spec's first hidden layer. A None width or depth keeps the spec's own
hidden layers, so a spec with uneven layers (784-1000-500-100-10) can be timed as it is.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from suite.spec import Component, Layer, Spec
from suite.validation import Constraint, validate


def _positive_ints(flag: str) -> Constraint:
    return Constraint("positive integers", lambda values: all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values), flag=flag)


_GRID = {"widths": _positive_ints("--widths"), "depths": _positive_ints("--depths"),
         "batch_sizes": _positive_ints("--batch-sizes")}

#: the batches a size cycles through while it is timed (and the memory estimate counts)
DISTINCT_BATCHES = 4


@dataclass(frozen=True)
class Size:
    width: int | None
    depth: int | None
    batch_size: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def grid(spec: Spec, widths: Sequence[int] = (), depths: Sequence[int] = (),
         batch_sizes: Sequence[int] = ()) -> list[Size]:
    """Every combination, from the arguments, else the spec's ``[bench]`` table, else the
    spec's own network and batch size; ordered by work per step (smallest first)."""
    validate({"widths": widths, "depths": depths, "batch_sizes": batch_sizes}, _GRID)
    widths = tuple(widths) or spec.bench.widths or (None,)
    depths = tuple(depths) or spec.bench.depths or (None,)
    batches = tuple(batch_sizes) or spec.bench.batch_sizes or (spec.training.batch_size,)
    sizes = {Size(w, d, b) for w, d, b in itertools.product(widths, depths, batches)}
    return sorted(sizes, key=lambda s: (flops_per_step(sized_spec(spec, s)), s.batch_size,
                                        s.width or 0, s.depth or 0))


def sized_spec(spec: Spec, size: Size) -> Spec:
    """``spec`` with ``size``'s hidden layers and batch size."""
    hidden, output = spec.layers[:-1], spec.layers[-1]
    if size.width is not None or size.depth is not None:
        template = hidden[0] if hidden else Layer(size.width or 1, output.activation)
        if not hidden and template.activation.name in ("softmax", "sigmoid", "linear"):
            template = dataclasses.replace(template, activation=Component("relu", {}))
        width = size.width if size.width is not None else template.units
        depth = size.depth if size.depth is not None else max(len(hidden), 1)
        hidden = tuple(dataclasses.replace(template, units=width) for _ in range(depth))
    training = dataclasses.replace(spec.training, batch_size=size.batch_size)
    return dataclasses.replace(spec, layers=(*hidden, output), training=training)


def flops_per_step(spec: Spec) -> float:
    """6 x batch x sum(fan_in x fan_out): forward 2, backward 4 multiply-adds per weight."""
    sizes = spec.sizes
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    return 6.0 * spec.training.batch_size * weights


def parameter_count(spec: Spec) -> int:
    sizes = spec.sizes
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def describe(spec: Spec) -> dict[str, Any]:
    """The columns that name a sized network in bench.csv."""
    hidden = [layer.units for layer in spec.layers[:-1]]
    return {"layers": "-".join(str(n) for n in spec.sizes), "input_dim": spec.input_dim,
            "width": max(hidden) if hidden else 0, "depth": len(hidden),
            "outputs": spec.layers[-1].units, "batch_size": spec.training.batch_size}


def synthetic_batches(spec: Spec, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` batches of random inputs and targets in the form the spec's loss takes.

    Timing does not depend on the values, so the data is drawn here, in the worker, rather
    than shipped: FCN-5's 26752 inputs at batch 512 would be 55 MB a batch.
    """
    rng = np.random.default_rng([seed, 5])
    batch, units, dtype = spec.training.batch_size, spec.layers[-1].units, spec.training.dtype
    out = []
    for _ in range(count):
        x = rng.standard_normal((batch, spec.input_dim), dtype=np.float32).astype(dtype)
        labels = rng.integers(0, max(units, 2), batch)
        name = spec.loss.name
        if name == "sparse_categorical_crossentropy":
            y = labels.astype(np.int64)
        elif name == "categorical_crossentropy":
            y = np.zeros((batch, units), dtype=dtype)
            y[np.arange(batch), labels] = 1
        elif name == "binary_crossentropy":
            y = (rng.random((batch, units)) < 0.5).astype(dtype)
        else:  # regression losses
            y = rng.standard_normal((batch, units)).astype(dtype)
        out.append((x, y))
    return out
