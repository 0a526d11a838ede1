"""A size's memory estimate, so that a grid too large is refused before anything runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from suite.bench.sizes import DISTINCT_BATCHES, Size, parameter_count, sized_spec
from suite.errors import UserError
from suite.spec import Spec

# Optimizer slots: arrays the size of the parameters that each optimizer keeps.
SLOTS = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 3, "adagrad": 1}
# A framework's own resident memory (TensorFlow's is the largest seen: about 700 MB).
FRAMEWORK_BYTES = 1 << 30
GIB = 1 << 30


def estimate_bytes(spec: Spec) -> int:
    """Peak bytes one backend's worker needs for ``spec`` (an upper estimate).

    The suite's float64 initial parameters and their copy in the run's dtype, the
    framework's parameters, gradients, optimizer slots (plus one for AMSGrad) and one
    spare copy (a framework may stage updates), activations with their pre-activations
    and deltas (four arrays a layer), the batches, and the framework itself.
    """
    item = np.dtype(spec.training.dtype).itemsize
    params = parameter_count(spec)
    slots = SLOTS.get(spec.optimizer.name, 3) + bool(spec.optimizer.params.get("amsgrad"))
    batch = spec.training.batch_size
    activations = 4 * batch * sum(spec.sizes[1:]) * item
    data = DISTINCT_BATCHES * batch * (spec.input_dim + spec.layers[-1].units) * item
    return params * (8 + item) + params * item * (3 + slots) + activations + data \
        + FRAMEWORK_BYTES


def available_bytes() -> int:
    """MemAvailable on Linux (what can be had without swapping), else physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check(spec: Spec, sizes: list[Size], limit: int | None = None) -> dict[str, float]:
    """Raise UserError when the largest size would not fit; else the figures, in GiB."""
    limit = available_bytes() if limit is None else limit
    needs = {size: estimate_bytes(sized_spec(spec, size)) for size in sizes}
    largest = max(needs, key=needs.get)
    if needs[largest] > limit:
        too_big = sum(1 for need in needs.values() if need > limit)
        raise UserError(
            f"grid too large for memory: width {largest.width or 'as in spec'}, depth "
            f"{largest.depth or 'as in spec'}, batch {largest.batch_size} needs about "
            f"{needs[largest] / GIB:.1f} GiB per backend (parameters, gradients, optimizer "
            f"state, activations), and {limit / GIB:.1f} GiB is available; {too_big} of "
            f"{len(sizes)} sizes do not fit",
            hint="drop the largest --widths, --depths or --batch-sizes")
    return {"largest_estimate_gib": needs[largest] / GIB, "available_gib": limit / GIB}
