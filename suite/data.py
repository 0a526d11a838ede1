"""The data of a run: load it, check it against the spec, and prepare it for the loss.

:func:`load` gives a :class:`Dataset` (features as float64 and the target as read) from a
built-in set (``suite.datasets``) or a user file (CSV or Parquet with a target column, or
NPZ with arrays ``x`` and ``y``; read by ``suite.data_files``). :func:`prepare` checks it
against the spec, standardizes it if asked, and gives a :class:`Prepared`: x and y in the
run dtype, y shaped for the loss (``catalogue.TARGET_KIND``), and a description for
run.json. Every mistake is a one-line :class:`DataError`; rows count from 0, as in pandas.
Nothing here shuffles. Harness side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from suite import catalogue, datasets
from suite.data_files import Dataset, read_file
from suite.datasets import DEFAULT_SAMPLES
from suite.errors import DataError
from suite.spec import DataSource, Spec

__all__ = ["DEFAULT_SAMPLES", "Dataset", "Prepared", "load", "prepare", "load_for"]


@dataclass(frozen=True, eq=False)
class Prepared:
    """Checked data in the run dtype, shaped for the loss."""

    x: np.ndarray  # (n_samples, input_dim), run dtype
    y: np.ndarray  # (n_samples,) int64 class indices, or (n_samples, units) run dtype
    mean: np.ndarray  # (input_dim,) float64 subtracted from x (zeros unless standardized)
    scale: np.ndarray  # (input_dim,) float64 x was divided by (ones unless standardized)
    description: dict[str, Any]  # JSON-able, for run.json


# ---------------------------------------------------------------------------- loading


def load(source: DataSource, spec: Spec, n_samples: int = DEFAULT_SAMPLES) -> Dataset:
    """A built-in set by name (shaped by the spec) or a user file by path.

    ``source.target`` names the target column of a CSV or Parquet file; ``n_samples``
    applies to the synthetic built-in sets only.
    """
    if source.name in datasets.BUILTIN:
        made = datasets.make(source.name, spec, n_samples)
        return Dataset(source.name, made.source, made.x, made.y, n_classes=made.n_classes)
    return read_file(source.name, source.target)


# ---------------------------------------------------------------------------- checks


def _check_features(data: Dataset, spec: Spec) -> None:
    if len(data.x) == 0:
        raise DataError("no rows", where=data.where, hint="give data with at least one row")
    n_features = data.x.shape[1]
    if n_features != spec.input_dim:
        raise DataError(f"{n_features} features, but the spec's input_dim is {spec.input_dim}",
                        where=data.where, hint=f"set input_dim = {n_features} in the spec, or "
                                               f"use data with {spec.input_dim} features")
    _check_finite(data.x, data, "features", column_of=lambda j: j)


def _check_finite(values: np.ndarray, data: Dataset, what: str, column_of) -> None:
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    first = np.argwhere(bad)[0]
    row = int(first[0])
    column = column_of(int(first[1])) if values.ndim == 2 else column_of(None)
    raise DataError(f"{values[tuple(first)]} is the first of {int(bad.sum())} NaN or "
                    f"infinite values in the {what}", where=data.at(row, column),
                    hint="drop or fill those rows")


def _target_column(data: Dataset):
    """How a target value's column is named: the table column, or y[:, j] for an array."""
    if data.columns is not None:
        return lambda j: data.target
    return lambda j: data.target if j is None else f"{data.target}[:, {j}]"


# ---------------------------------------------------------------------------- targets
# Each shapes the float64/int64 target for one kind of loss: (y, data, spec) -> array.


def _labels(y: np.ndarray, data: Dataset, spec: Spec) -> np.ndarray:
    """Integer class labels of shape (n,) from a target of shape (n,) or (n, 1)."""
    loss = spec.loss.name
    y = y.reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1:
        raise DataError(f"target of shape {y.shape}, but {loss} needs one class label per row",
                        where=data.where, hint="use categorical_crossentropy for one-hot or "
                                               "probability targets")
    fractional = y != np.round(y)
    if fractional.any():
        row = int(np.argmax(fractional))
        raise DataError(f"non-integer label {y[row]}, but {loss} needs class labels 0, 1, .., "
                        f"k-1", where=data.at(row, data.target),
                        hint="use mse, mae or huber for a real-valued target")
    if (y < 0).any():
        row = int(np.argmax(y < 0))
        raise DataError(f"negative label {y[row]:g}; {loss} needs class labels 0, 1, .., k-1",
                        where=data.at(row, data.target), hint="relabel the classes from 0")
    labels = y.astype(np.int64)
    units = spec.layers[-1].units
    if labels.max() >= units:
        top = int(labels.max())
        raise DataError(f"labels 0..{top} ({top + 1} classes), but the output layer has "
                        f"{units} units", where=data.at(int(np.argmax(labels)), data.target),
                        hint=f"set units = {top + 1} on the last layer")
    return labels


def _class_index(y: np.ndarray, data: Dataset, spec: Spec) -> np.ndarray:
    return _labels(y, data, spec)


def _one_hot(y: np.ndarray, data: Dataset, spec: Spec) -> np.ndarray:
    units = spec.layers[-1].units
    if y.ndim == 1 or y.shape[1] == 1:
        return np.eye(units)[_labels(y, data, spec)]
    _check_columns(y, data, units)
    if (y < 0).any():
        row, col = (int(i) for i in np.argwhere(y < 0)[0])
        raise DataError(f"negative value {y[row, col]} in a one-hot or probability target",
                        where=data.at(row, f"{data.target}[:, {col}]"))
    sums = y.sum(axis=1)
    off = np.abs(sums - 1.0) > 1e-6
    if off.any():
        row = int(np.argmax(off))
        raise DataError(f"a row summing to {sums[row]:g}; {spec.loss.name} needs one-hot or "
                        f"probability rows summing to 1", where=data.at(row, data.target),
                        hint="give class labels instead, or normalize the rows")
    return y.astype(np.float64)


def _binary(y: np.ndarray, data: Dataset, spec: Spec) -> np.ndarray:
    units = spec.layers[-1].units
    if _is_class_labels(y, data, units):
        return np.eye(units)[y]
    outside = (y < 0) | (y > 1)
    if outside.any():
        row = np.argwhere(outside)[0]
        at = data.at(int(row[0]), _target_column(data)(int(row[1]) if y.ndim == 2 else None))
        whole = bool((y == np.round(y)).all()) and y.min() >= 0
        if whole:
            k = int(y.max()) + 1
            raise DataError(f"labels 0..{k - 1} ({k} classes), but binary_crossentropy needs "
                            f"0/1 labels or probabilities in [0, 1]", where=at,
                            hint=f"use sparse_categorical_crossentropy with a softmax output "
                                 f"of {k} units")
        raise DataError(f"value {y[tuple(row)]:g} outside [0, 1]; binary_crossentropy needs "
                        f"0/1 labels or probabilities", where=at,
                        hint="rescale the target to [0, 1], or use mse, mae or huber")
    return _as_columns(y, data, units)


def _real(y: np.ndarray, data: Dataset, spec: Spec) -> np.ndarray:
    units = spec.layers[-1].units
    if _is_class_labels(y, data, units):
        return np.eye(units)[y]
    return _as_columns(y, data, units)


def _is_class_labels(y: np.ndarray, data: Dataset, units: int) -> bool:
    """A built-in classification set met by one output per class: one-hot encode it."""
    return data.n_classes is not None and units > 1 and units == data.n_classes and y.ndim == 1


def _as_columns(y: np.ndarray, data: Dataset, units: int) -> np.ndarray:
    """Shape (n,) or (n, units) into (n, units)."""
    if y.ndim == 1:
        if units != 1:
            raise DataError(f"one target column, but the output layer has {units} units",
                            where=data.where, hint=f"give {units} target columns (an NPZ 'y' "
                                                   f"of shape (n, {units})), or set units = 1")
        y = y.reshape(-1, 1)
    _check_columns(y, data, units)
    return y.astype(np.float64)


def _check_columns(y: np.ndarray, data: Dataset, units: int) -> None:
    if y.shape[1] != units:
        raise DataError(f"target with {y.shape[1]} columns (shape {y.shape}), but the output "
                        f"layer has {units} units", where=data.where,
                        hint=f"set units = {y.shape[1]} on the last layer")


_TARGETS: dict[str, Callable[[np.ndarray, Dataset, Spec], np.ndarray]] = {
    "class_index": _class_index,
    "one_hot": _one_hot,
    "binary": _binary,
    "real": _real,
}


# ---------------------------------------------------------------------------- preparing


def standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-feature (x - mean) / std over all rows, in float64.

    Returns (x_standardized (n, d), mean (d,), scale (d,)). A constant feature is only
    centred (its scale is 1).
    """
    constant = x.max(axis=0) == x.min(axis=0)
    # NOTE: a constant column's computed mean can differ from its value in the last bit;
    # taking the value itself makes the centred column exactly zero.
    mean = np.where(constant, x[0], x.mean(axis=0))
    scale = np.where(constant, 1.0, x.std(axis=0))
    return (x - mean) / scale, mean, scale


def prepare(data: Dataset, spec: Spec, standardized: bool | None = None) -> Prepared:
    """Check ``data`` against the spec and give x and y ready to train on.

    ``standardized`` defaults to ``spec.data.standardize``.
    """
    _check_features(data, spec)
    _check_finite(data.y, data, "target", column_of=_target_column(data))
    kind = catalogue.TARGET_KIND[spec.loss.name]
    y = _TARGETS[kind](data.y, data, spec)
    if standardized is None:
        standardized = spec.data.standardize
    n_features = data.x.shape[1]
    x, mean, scale = (standardize(data.x) if standardized
                      else (data.x, np.zeros(n_features), np.ones(n_features)))
    dtype = np.dtype(spec.training.dtype)
    x = np.ascontiguousarray(x, dtype=dtype)
    y = np.ascontiguousarray(y, dtype=np.int64 if kind == "class_index" else dtype)
    return Prepared(x, y, mean, scale, describe(data, spec, x, y, kind, standardized))


def describe(data: Dataset, spec: Spec, x: np.ndarray, y: np.ndarray, kind: str,
             standardized: bool) -> dict[str, Any]:
    """The JSON-able summary saved in run.json."""
    units = spec.layers[-1].units
    found: dict[str, Any] = {
        "name": data.name,
        "source": data.source,
        "n_samples": int(x.shape[0]),
        "n_features": int(x.shape[1]),
        "target_kind": kind,
        "n_outputs": units,
    }
    if data.columns is not None:
        found["target"] = data.target
    if kind in ("class_index", "one_hot"):
        found["n_classes"] = units
    elif kind == "binary" and units == 1:
        found["n_classes"] = 2
    digest = hashlib.sha256(x.tobytes())
    digest.update(y.tobytes())
    found.update(standardized=bool(standardized), dtype=str(x.dtype),
                 sha256=digest.hexdigest()[:16])
    return found


def load_for(spec: Spec, source: DataSource | None = None,
             n_samples: int = DEFAULT_SAMPLES) -> Prepared:
    """Load and prepare the data of a run; ``source`` defaults to ``spec.data``."""
    source = spec.data if source is None else source
    return prepare(load(source, spec, n_samples), spec, source.standardize)
