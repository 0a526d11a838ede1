"""A user's data file read into a :class:`Dataset`: CSV or Parquet with a target column,
or NPZ with arrays ``x`` and ``y``; every mistake is a one-line :class:`DataError` that
says which file, row and column. Nothing here looks at the spec. Harness side.
"""

from __future__ import annotations

import difflib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from suite import datasets
from suite.errors import DataError


@dataclass(frozen=True, eq=False)
class Dataset:
    """Data as loaded, before any check against the spec."""

    name: str  # the built-in name or the file path as given
    source: str  # "synthetic", "scikit-learn", or the file path as given
    x: np.ndarray  # (n_samples, n_features) float64
    y: np.ndarray  # (n_samples,) or (n_samples, k), int64 or float64 as read
    columns: tuple[str, ...] | None = None  # feature names of a table, for messages
    target: str = "y"  # the target column of a table, or the NPZ array
    n_classes: int | None = None  # known for built-in classification sets

    @property
    def where(self) -> str:
        return f"data file {self.name!r}" if self.source == self.name else f"data {self.name!r}"

    def at(self, row: int, column: int | str | None = None) -> str:
        """Where one value is: the data, its row and its column."""
        if isinstance(column, int):
            column = self.columns[column] if self.columns else f"x[:, {column}]"
        return f"{self.where}, row {row}" + (f", column {column!r}" if column else "")



def read_file(name: str, target: str | None = None) -> Dataset:
    """A user's CSV, Parquet or NPZ file; ``target`` is the target column of a table."""
    path = Path(name)
    where = f"data file {name!r}"
    builtins = _builtin_listing()
    reader = _READERS.get(path.suffix.lower())
    if not path.exists():
        if reader is None:
            close = difflib.get_close_matches(name, datasets.builtin_names(), n=1)
            guess = f"did you mean {close[0]!r}? " if close else ""
            raise DataError(f"no built-in dataset or file named {name!r}",
                            hint=f"{guess}give a .csv, .parquet or .npz file; or use {builtins}")
        raise DataError("file not found", where=where, hint=f"check the path; or use {builtins}")
    if not path.is_file():
        raise DataError("not a file", where=where, hint=f"give a data file; or use {builtins}")
    if reader is None:
        raise DataError(f"unknown file type {path.suffix or '(no extension)'!r}; expected "
                        f"{', '.join(_READERS)}", where=where,
                        hint=f"convert it to CSV, Parquet or NPZ; or use {builtins}")
    return reader(path, name, target)


def _builtin_listing() -> str:
    return f"a built-in dataset: {', '.join(datasets.builtin_names())}"


def _cannot_read(name: str, exc: BaseException) -> DataError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"cannot read the file ({reason})", where=f"data file {name!r}",
                     hint=f"check its format; or use {_builtin_listing()}")


def _read_table(path: Path, name: str, target: str | None) -> Dataset:
    import pandas as pd

    read = pd.read_csv if path.suffix.lower() == ".csv" else pd.read_parquet
    try:
        frame = read(path)
    except (OSError, ValueError, ImportError, UnicodeDecodeError) as exc:
        raise _cannot_read(name, exc) from None
    return _from_frame(frame, name, target)


def _from_frame(frame, name: str, target: str | None) -> Dataset:
    """Split a pandas DataFrame into numeric features and the target column."""
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    where = f"data file {name!r}"
    listing = f"columns: {', '.join(frame.columns) or 'none'}"
    if target is None:
        raise DataError(f"a table needs a target column; {listing}", where=where,
                        hint='set target = "<column>" under [data] in the spec, '
                             "or pass --target <column>")
    if target not in frame.columns:
        close = difflib.get_close_matches(target, list(frame.columns), n=1)
        raise DataError(f"no target column {target!r}; {listing}", where=where,
                        hint=f"did you mean {close[0]!r}?" if close else None)
    if len(frame) == 0:
        raise DataError("no rows", where=where, hint="give a file with at least one data row")
    if len(frame.columns) == 1:
        raise DataError(f"no feature columns, only the target {target!r}", where=where)
    features = frame.drop(columns=[target])
    for column in features.columns:
        _require_numeric(features[column], where, f"column {column!r}",
                         "encode it as numbers or drop it")
    _require_numeric(frame[target], where, f"target column {target!r}",
                     "encode class labels as integers 0, 1, .., k-1")
    x = features.to_numpy(dtype=np.float64, na_value=np.nan)
    return Dataset(name, name, x, _target_array(frame[target]), tuple(features.columns), target)


def _require_numeric(series, where: str, what: str, fix: str) -> None:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return
    bad = series.notna() & pd.to_numeric(series, errors="coerce").isna()
    row = int(np.argmax(bad.to_numpy())) if bad.any() else 0
    raise DataError(f"{what} is not numeric (dtype {series.dtype}; row {row} "
                    f"holds {series.iloc[row]!r})", where=where, hint=fix)


def _target_array(series) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_integer_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=np.int64)
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _read_npz(path: Path, name: str, target: str | None) -> Dataset:
    where = f"data file {name!r}"
    try:
        archive = np.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):  # a single array: an .npy file named .npz
            raise ValueError("an .npy array, not an NPZ archive")
        with archive:
            keys = list(archive.files)
            if "x" not in keys or "y" not in keys:
                raise DataError(f"an NPZ file needs arrays 'x' and 'y'; found: "
                                f"{', '.join(repr(k) for k in keys) or 'none'}", where=where,
                                hint="save it with numpy.savez(path, x=features, y=target)")
            x, y = archive["x"], archive["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _cannot_read(name, exc) from None
    for key, array in (("x", x), ("y", y)):
        if array.dtype.kind not in "biuf":
            raise DataError(f"array {key!r} has dtype {array.dtype}; expected numbers",
                            where=where, hint="save numeric arrays")
        if array.ndim not in (1, 2):
            raise DataError(f"array {key!r} has shape {array.shape}; expected (n_samples,) "
                            f"or (n_samples, k)", where=where)
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} rows but y has {len(y)}", where=where,
                        hint="give one target row per feature row")
    y = y.astype(np.int64) if y.dtype.kind in "biu" else y.astype(np.float64)
    x = x.reshape(-1, 1) if x.ndim == 1 else x
    return Dataset(name, name, x.astype(np.float64), y)


_READERS: dict[str, Callable[[Path, str, str | None], Dataset]] = {
    ".csv": _read_table,
    ".parquet": _read_table,
    ".pq": _read_table,
    ".npz": _read_npz,
}
