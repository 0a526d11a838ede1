"""A finished run, loaded from its directory: the tables as pandas DataFrames."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd


def read_table(path: Path) -> pd.DataFrame:
    """A run's CSV table; only empty cells are missing (a backend may be named "nan")."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


@dataclass(frozen=True)
class Run:
    path: Path

    @cached_property
    def info(self) -> dict:
        """run.json: spec, data, versions, environment, each backend's status."""
        return json.loads((self.path / "run.json").read_text(encoding="utf-8"))

    def _csv(self, name: str) -> pd.DataFrame:
        return read_table(self.path / f"{name}.csv")

    @cached_property
    def losses(self) -> pd.DataFrame:
        """backend, epoch, step, loss."""
        return self._csv("losses")

    @cached_property
    def comparison(self) -> pd.DataFrame:
        """Per backend, step and tensor: the metrics against the reference and 'within'."""
        return self._csv("comparison")

    @cached_property
    def summary(self) -> pd.DataFrame:
        """A verdict per backend and check, with the first step and tensor out of tolerance."""
        return self._csv("summary")

    @cached_property
    def timing(self) -> pd.DataFrame:
        return self._csv("timing")

    @property
    def verdicts(self) -> pd.DataFrame:
        """Backends x checks, verdicts as cells."""
        table = self.summary.pivot(index="backend", columns="check", values="verdict")
        return table[[c for c in self.summary.check.unique()]]

    def arrays(self, kind: str, backend: str) -> dict[str, np.ndarray]:
        """``kind`` is grads, params or outputs; keys as ``<step>/dense_<i>/kernel``."""
        with np.load(self.path / kind / f"{backend}.npz") as data:
            return {key: data[key] for key in data.files}

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.info.get('status')!r})"
