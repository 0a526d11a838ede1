"""A finished run, loaded from its directory: typed records and pandas tables.

:class:`Run` is what ``suite.compare(...)`` returns and what the report is built from.
Only run.json is required: a run that was interrupted, or whose backend errored, lacks
some tables, and those read as empty tables with the contract's columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from suite import record, rundir
from suite.errors import UserError
from suite.rundir import REFERENCE, BackendEntry, SummaryRow, TimingRow, row_from_cells


def read_table(path: Path, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A run's CSV table; only empty cells are missing (a backend may be named "nan").
    An absent or empty file is an empty table with ``columns``."""
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=list(columns))


@dataclass(frozen=True)
class LedgerEntry:
    """A ledger entry that applied in this run, as run.json records it."""

    id: str
    title: str
    feature: str
    reference: str
    backend: str
    source: str
    applied_to: tuple[str, ...]
    twin_env: tuple[tuple[str, str], ...] = ()  # a twin's switches, where it has a twin

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LedgerEntry:
        return cls(id=raw["id"], title=raw.get("title", ""),
                   feature=", ".join(raw.get("features", ())),
                   reference=raw.get("reference", ""), backend=raw.get("backend", ""),
                   source=raw.get("source", ""), applied_to=tuple(raw.get("applied_to", ())),
                   twin_env=tuple((raw.get("twin_env") or {}).items()))


@dataclass(frozen=True)
class Run:
    """A run directory (``reports/latest``)."""

    path: Path

    @cached_property
    def info(self) -> dict[str, Any]:
        """run.json: spec, data, versions, environment, each backend's status."""
        try:
            return json.loads((self.path / rundir.RUN_JSON).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError("not a run directory: run.json is missing",
                            where=str(self.path)) from None
        except json.JSONDecodeError as exc:
            raise UserError(f"run.json is not valid JSON ({exc})", where=str(self.path)) from None

    @property
    def spec(self) -> dict[str, Any]:
        """The normalized spec, as run.json stores it."""
        return self.info.get("spec", {})

    @property
    def dtype(self) -> str:
        return self.info.get("dtype") or self.spec.get("training", {}).get("dtype", "float32")

    @property
    def determinism(self) -> dict[str, dict[str, Any]]:
        """A run made with ``--repeat``: per backend, whether its repeated lockstep runs
        were bit-identical (see suite.compare.determinism); empty otherwise."""
        return dict(self.info.get("determinism") or {})

    @property
    def reproducers(self) -> dict[str, dict[str, Any]]:
        """Per backend with a fail or known difference, its reproducer (suite.compare.repro):
        ``status`` (ok, none, error), ``script`` and ``state`` (relative to the run
        directory), ``command``, where it starts (``part``, ``tensor``, ``step``) and what
        it showed when the run ran it (``shown``, ``reproduces``)."""
        return dict(self.info.get("reproducers") or {})

    @cached_property
    def backends(self) -> dict[str, BackendEntry]:
        """Every backend of the run by name, in run.json's order."""
        return {name: BackendEntry.from_dict(raw)
                for name, raw in self.info.get("backends", {}).items()}

    @property
    def reference(self) -> str:
        return next((n for n, b in self.backends.items() if b.role == "reference"), REFERENCE)

    @property
    def compared(self) -> list[str]:
        """Backends checked against the reference, in run.json's order (an unavailable one
        never ran: the errors table says why)."""
        return [n for n, b in self.backends.items()
                if b.role == "backend" and b.status != "unavailable"]

    @cached_property
    def ledger(self) -> list[LedgerEntry]:
        """The ledger entries that applied (behind a known difference)."""
        return [LedgerEntry.from_dict(raw) for raw in self.info.get("ledger", [])]

    def _csv(self, name: str) -> pd.DataFrame:
        return read_table(self.path / f"{name}.csv", rundir.TABLES[name])

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

    @cached_property
    def parts(self) -> pd.DataFrame:
        """Attribution: per backend with a parts run, recorded step, part and tensor, its
        error alone against the noise (suite.compare.attribution); empty without one."""
        return self._csv("parts")

    @cached_property
    def checks(self) -> list[SummaryRow]:
        """summary.csv as records."""
        return [row_from_cells(SummaryRow, row) for row in self.summary.to_dict("records")]

    @cached_property
    def timings(self) -> list[TimingRow]:
        """timing.csv as records."""
        return [row_from_cells(TimingRow, row) for row in self.timing.to_dict("records")]

    @property
    def verdicts(self) -> pd.DataFrame:
        """Backends x checks, verdicts as cells."""
        table = self.summary.pivot(index="backend", columns="check", values="verdict")
        return table[[c for c in self.summary.check.unique()]]

    def arrays(self, kind: str, backend: str) -> Mapping[str, np.ndarray]:
        """``kind`` is grads or params (keys as ``<step>/dense_<i>/kernel``, the recorded
        steps only, read lazily from whichever format the run was written in) or outputs
        (key ``outputs``)."""
        if kind not in rundir.ARRAYS:
            raise ValueError(f"expected one of {', '.join(rundir.ARRAYS)}. Received: {kind!r}")
        if backend not in self.info.get("backends", {}):
            raise KeyError(f"no backend {backend!r} in this run")
        stored = record.read_run(self.path, backend)
        if kind == "outputs":
            return {} if stored.outputs is None else {"outputs": stored.outputs}
        return getattr(stored, kind)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.info.get('status')!r})"
