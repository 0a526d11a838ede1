"""Tolerances measured from the run's own rounding noise.

Every comparison runs the reference once more, as a *noise run*, to learn how far two
correct implementations of the same arithmetic may differ on this network and data:

- a float32 run: the reference in float64 from the same float32 data and initial
  parameters (``numpy+float64``). That is the exact answer, to float32's eyes; each
  backend's distance to it is set against the float32 reference's own distance to it.
- a float64 run: the reference with every sum in another order (``numpy+reordered``,
  backends.reference.reordered). Each backend's distance to the reference is set against
  the reordered reference's distance to it.

So a comparison has a *baseline* (what every error is measured against: the float64
shadow, or the float64 reference) and a *noise* run (a correct implementation whose
error against the baseline is the noise). Per tensor and step the noise is the running
maximum of that error over the steps so far (rounding differences compound, and one
step's noise of a scalar such as the loss is a single draw), floored at the dtype's
machine epsilon. A tensor is within the noise when its error is at most
:data:`NOISE_FACTOR` times that.

The ledger's variants run in the baseline's precision too (float64), so a backend's
distance to its variant is the distance to the exact answer under its framework's
formula.

Runs written before noise runs existed have none: they are judged by the fixed
tolerances of those versions (:data:`FIXED_TOLERANCES`), and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from suite.rundir import noise_name

if TYPE_CHECKING:
    from suite.compare.lockstep import Lockstep

#: a tensor passes within this many times the measured noise (README: Verdicts)
NOISE_FACTOR = 4.0
#: the noise is never taken below one machine epsilon (relative L2); ``atol`` excuses a
#: tensor whose values all differ by at most this much (an exactly zero gradient)
FLOORS = {
    "float32": {"rel": float(np.finfo(np.float32).eps), "atol": 1e-12},
    "float64": {"rel": float(np.finfo(np.float64).eps), "atol": 1e-24},
}
#: the fixed limits (relative L2; "step": step 0, "trajectory": later steps) of the
#: versions before noise runs, still used for a run directory that has no noise run
FIXED_TOLERANCES = {
    "float64": {"step": 1e-9, "trajectory": 1e-6, "atol": 1e-12},
    "float32": {"step": 1e-4, "trajectory": 1e-2, "atol": 1e-6},
}


def noise_options(dtype: str) -> dict[str, Any]:
    """The reference's options for the noise run of a ``dtype`` comparison."""
    return {"dtype": "float64"} if dtype == "float32" else {"order": "reversed"}


def variant_options(dtype: str, conventions: dict[str, str]) -> dict[str, Any]:
    """The reference's options for a ledger variant: the conventions, in the baseline's
    precision (float64)."""
    options: dict[str, Any] = {"conventions": conventions}
    if dtype == "float32":
        options["dtype"] = "float64"
    return options


def describe(dtype: str) -> str:
    """One line for reports: what the noise of a ``dtype`` run is."""
    if dtype == "float32":
        return ("measured noise: the float32 reference's distance to the same training in "
                f"float64 ({noise_name(dtype)}), the baseline every backend is measured "
                f"against; within {NOISE_FACTOR:g} x that, at least "
                f"{FLOORS[dtype]['rel']:.3g} (float32's epsilon)")
    return ("measured noise: the distance between the reference and itself with every sum "
            f"in another order ({noise_name(dtype)}); within {NOISE_FACTOR:g} x that, at "
            f"least {FLOORS[dtype]['rel']:.3g} (float64's epsilon)")


def settings(dtype: str) -> dict[str, Any]:
    """run.json's ``tolerances``: how a ``dtype`` run is judged."""
    return {"noise_run": noise_name(dtype), "noise_factor": NOISE_FACTOR,
            "floor": FLOORS[dtype]["rel"], "atol": FLOORS[dtype]["atol"]}


@dataclass
class Envelope:
    """The noise of each tensor as the steps go: the running maximum of its measured noise,
    and the tolerance it gives (NOISE_FACTOR x the envelope, at least the dtype's floor)."""

    dtype: str
    _max: dict[tuple[str, str], float] = field(default_factory=dict)

    def tolerance(self, kind: str, tensor: str, noise: float, floor_scale: float = 1.0
                  ) -> tuple[float, float]:
        """(noise envelope, tolerance) of ``tensor`` after this step's ``noise``; the floor
        times ``floor_scale`` where a tensor's rounding is larger than its own epsilon."""
        key = (kind, tensor)
        envelope = max(self._max.get(key, 0.0), noise if math.isfinite(noise) else 0.0)
        self._max[key] = envelope
        return envelope, NOISE_FACTOR * max(envelope, self.floor * floor_scale)

    @property
    def floor(self) -> float:
        return FLOORS[self.dtype]["rel"]

    @property
    def atol(self) -> float:
        return FLOORS[self.dtype]["atol"]


@dataclass
class Baseline:
    """What one comparison measures against.

    ``base``: the answer (float64 shadow or float64 reference). ``noise``: a correct
    implementation, or None for a run without a noise run (fixed tolerances then).
    """

    base: Lockstep
    noise: Lockstep | None
    dtype: str
    initial: dict[str, np.ndarray]  # the initial parameters (the first update's start)
    _envelope: Envelope = field(init=False)

    def __post_init__(self) -> None:
        self._envelope = Envelope(self.dtype)

    @classmethod
    def of(cls, reference: Lockstep, noise_run: Lockstep | None, dtype: str,
           initial: dict[str, np.ndarray]) -> Baseline:
        if noise_run is None:
            return cls(reference, None, dtype, initial)
        if dtype == "float32":  # the shadow is the answer; the reference, one float32 try
            return cls(noise_run, reference, dtype, initial)
        return cls(reference, noise_run, dtype, initial)

    def fresh(self) -> Baseline:
        """The same baseline with an empty noise envelope (one per backend compared)."""
        return replace(self)  # replace runs __post_init__: a new envelope

    @property
    def measured(self) -> bool:
        return self.noise is not None

    def tolerance(self, step: int, kind: str, tensor: str, noise: float,
                  floor_scale: float = 1.0) -> tuple[float, float]:
        """(noise envelope, tolerance) of one tensor at ``step``; steps come in order."""
        if not self.measured:
            fixed = FIXED_TOLERANCES[self.dtype]
            return math.nan, fixed["step"] if step == 0 else fixed["trajectory"]
        return self._envelope.tolerance(kind, tensor, noise, floor_scale)

    @property
    def atol(self) -> float:
        return (FLOORS if self.measured else FIXED_TOLERANCES)[self.dtype]["atol"]

    def floor(self) -> float:
        return FLOORS[self.dtype]["rel"] if self.measured else 0.0
