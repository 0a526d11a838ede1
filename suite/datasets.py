"""Built-in datasets: synthetic sets shaped by the spec, and scikit-learn's bundled sets.

Each entry of :data:`BUILTIN` is a small function ``(spec, n_samples, seed) -> Builtin``.
Synthetic sets are deterministic from the seed; scikit-learn's sets are read from the
files it ships (no network) and ignore both. Rows come in a fixed order: nothing here
shuffles (``suite.batches`` fixes the batch order). Harness side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from suite.errors import DataError
from suite.spec import Spec

DEFAULT_SAMPLES = 1000

# A stream of its own, apart from the initializers' and the batch order's.
_DATA_STREAM = 1000


@dataclass(frozen=True, eq=False)
class Builtin:
    x: np.ndarray  # (n_samples, n_features) float64
    y: np.ndarray  # (n_samples,) int64 labels, or (n_samples, n_outputs) float64 values
    source: str  # "synthetic" or "scikit-learn"
    n_classes: int | None  # set for classification sets


def _rng(seed: int, code: int) -> np.random.Generator:
    return np.random.default_rng([seed, _DATA_STREAM, code])


def _interleaved_labels(n_samples: int, n_classes: int) -> np.ndarray:
    """Labels 0, 1, .., k-1, 0, 1, ..: without shuffling every batch still sees each class."""
    return np.arange(n_samples, dtype=np.int64) % n_classes


# ---------------------------------------------------------------------------- synthetic


def regression(spec: Spec, n_samples: int, seed: int) -> Builtin:
    """y = a fixed random smooth function of x plus a little noise.

    x : (n_samples, input_dim) standard normal; y : (n_samples, units of the last layer).
    """
    rng = _rng(seed, 0)
    n_features, n_outputs, hidden = spec.input_dim, spec.layers[-1].units, 16
    w1 = rng.standard_normal((n_features, hidden)) / np.sqrt(n_features)
    b1 = rng.uniform(-1.0, 1.0, hidden)
    w2 = rng.standard_normal((hidden, n_outputs)) * (1.5 / np.sqrt(hidden))
    x = rng.standard_normal((n_samples, n_features))
    y = np.sin(x @ w1 + b1) @ w2 + 0.05 * rng.standard_normal((n_samples, n_outputs))
    return Builtin(x, y, "synthetic", None)


def blobs(spec: Spec, n_samples: int, seed: int) -> Builtin:
    """One Gaussian blob (unit spread) per class around centres drawn in [-5, 5]^input_dim.

    One class per output unit; a single output unit (a sigmoid) separates two classes.
    """
    rng = _rng(seed, 1)
    n_classes = max(spec.layers[-1].units, 2)
    centres = rng.uniform(-5.0, 5.0, (n_classes, spec.input_dim))
    y = _interleaved_labels(n_samples, n_classes)
    x = centres[y] + rng.standard_normal((n_samples, spec.input_dim))
    return Builtin(x, y, "synthetic", n_classes)


def random(spec: Spec, n_samples: int, seed: int) -> Builtin:
    """Standard normal inputs and uniformly drawn labels, one class per output unit: no
    structure to learn, for timing (the benchmark specs' shapes, like DLBench's FCN-5,
    are far larger than any bundled set). Cheap at any width: no per-class centres.
    """
    rng = _rng(seed, 3)
    n_classes = max(spec.layers[-1].units, 2)
    x = rng.standard_normal((n_samples, spec.input_dim), dtype=np.float32).astype(np.float64)
    return Builtin(x, rng.integers(0, n_classes, n_samples), "synthetic", n_classes)


def spirals(spec: Spec, n_samples: int, seed: int) -> Builtin:
    """Two interleaved spirals in the plane (labels 0 and 1), coordinates within about [-1, 1]."""
    if spec.input_dim != 2:
        raise DataError(
            f"two features, but the spec's input_dim is {spec.input_dim}",
            where="data 'spirals'",
            hint="set input_dim = 2 in the spec, or use data 'blobs' or 'regression', "
                 "which take any number of features",
        )
    rng = _rng(seed, 2)
    y = _interleaved_labels(n_samples, 2)
    # Position along each arm, 0 at the centre to 1 at the tip, in row order.
    along = (np.arange(n_samples) // 2 + 0.5) / -(-n_samples // 2)
    angle = 0.5 * np.pi + 3.5 * np.pi * along + np.pi * y
    radius = 0.1 + 0.9 * along
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x += 0.02 * rng.standard_normal(x.shape)
    return Builtin(x, y, "synthetic", 2)


# ---------------------------------------------------------------------------- scikit-learn


def _sklearn(loader_name: str) -> Callable[[Spec, int, int], Builtin]:
    def load(spec: Spec, n_samples: int, seed: int) -> Builtin:
        from sklearn import datasets  # lazily: only these four sets need scikit-learn

        x, y = getattr(datasets, loader_name)(return_X_y=True)
        y = np.asarray(y, dtype=np.int64)
        return Builtin(np.asarray(x, dtype=np.float64), y, "scikit-learn", int(y.max()) + 1)

    load.__doc__ = f"scikit-learn's bundled set, ``sklearn.datasets.{loader_name}``."
    return load


BUILTIN: dict[str, Callable[[Spec, int, int], Builtin]] = {
    "regression": regression,
    "blobs": blobs,
    "spirals": spirals,
    "random": random,
    "iris": _sklearn("load_iris"),  # (150, 4), 3 classes
    "wine": _sklearn("load_wine"),  # (178, 13), 3 classes
    "breast_cancer": _sklearn("load_breast_cancer"),  # (569, 30), 2 classes
    "digits": _sklearn("load_digits"),  # (1797, 64), 10 classes
}


def builtin_names() -> list[str]:
    return list(BUILTIN)


def make(name: str, spec: Spec, n_samples: int = DEFAULT_SAMPLES, seed: int | None = None
         ) -> Builtin:
    """A built-in set by name; ``seed`` defaults to the spec's training seed.

    ``n_samples`` applies to the synthetic sets only (scikit-learn's sets are fixed).
    """
    if name not in BUILTIN:
        raise DataError(f"no built-in dataset named {name!r}",
                        hint=f"built-in datasets: {', '.join(BUILTIN)}")
    if n_samples < 1:
        raise DataError(f"expected a positive number of samples. Received: {n_samples}",
                        where=f"data {name!r}")
    return BUILTIN[name](spec, n_samples, spec.training.seed if seed is None else seed)
