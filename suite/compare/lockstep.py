"""A backend's lockstep results as the comparison reads them: its worker's result and its
record, from a run directory or a kit job's folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from suite import record as record_files
from suite import rundir
from suite.files import read_json


@dataclass
class Lockstep:
    """One backend's lockstep results: its worker's result and its record (read lazily)."""

    name: str
    result: dict
    record: record_files.Record

    @property
    def grads(self) -> record_files.Stored:
        return self.record.grads

    @property
    def params(self) -> record_files.Stored:
        return self.record.params

    @property
    def outputs(self) -> np.ndarray | None:
        return self.record.outputs

    @property
    def losses(self) -> list[float]:
        return self.result.get("lockstep", {}).get("losses", [])

    @property
    def epochs(self) -> list[int]:
        return self.result.get("lockstep", {}).get("epochs", [])

    @classmethod
    def load(cls, run_dir: Path, name: str) -> Lockstep:
        """One backend of a run directory (workers/<name>.json and its record); raises
        DamagedRecord naming the file that cannot be read."""
        result = _read_result(rundir.worker_result(run_dir, name))
        return cls(name, result, record_files.read_run(run_dir, name, _trained(result)))

    @classmethod
    def repeat_of(cls, run_dir: Path, first: Lockstep) -> Lockstep | None:
        """The backend's second lockstep run (--repeat), or None where it made none that
        finished; raises DamagedRecord naming a file that cannot be read."""
        repeats = first.result.get("repeats") or []
        if not repeats or repeats[0].get("status") != "ok":
            return None
        result = {"status": "ok", "lockstep": {"losses": repeats[0]["losses"]}}
        return cls(first.name, result,
                   record_files.read_folder(rundir.repeat_dir(run_dir, first.name, 2),
                                            bool(repeats[0]["losses"])))

    @classmethod
    def from_folder(cls, folder: Path, name: str) -> Lockstep:
        """One job of the conformance kit: result.json and its record."""
        result = _read_result(folder / "result.json")
        return cls(name, result, record_files.read_folder(folder / rundir.RECORD,
                                                          _trained(result)))


def _trained(result: dict) -> bool:
    """Whether a worker's result says its lockstep run took a step (so left a record)."""
    return bool(result.get("lockstep", {}).get("losses"))


def _read_result(path: Path) -> dict:
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise record_files.DamagedRecord(f"cannot read the worker's result ({exc})",
                                         where=str(path)) from None
