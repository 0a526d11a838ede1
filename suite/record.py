"""A backend's lockstep record: the gradients and parameters of its recorded steps,
written while it trains, in NPZ shards of about :data:`SHARD_BYTES`, and read back one
step at a time, so that neither the worker nor the comparison holds a whole run.

    <folder>/record.json       the index: format, tensors, the steps of each finished shard
    <folder>/outputs.npz       the outputs on the first batch before training
    <folder>/part-00000.npz    steps (the shard's step numbers), and for each tensor its
                               arrays at those steps stacked: grads/<tensor>, params/<tensor>

The index is rewritten after each shard, so a worker that dies keeps every finished
shard. Which steps are recorded is a policy (suite.record_policy). Worker side: standard
library and NumPy only.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from suite import rundir
from suite.errors import UserError
from suite.files import read_json, save_npz, write_json
from suite.record_policy import Policy

INDEX = "record.json"
OUTPUTS = "outputs.npz"
#: 2: a shard holds one stacked array a tensor (a few NPZ members, read fast); 1, still
#: read: one member a step and tensor (grads/<step>/<tensor>), whose headers took most of
#: a comparison's reading time (docs/performance.md, "Lockstep records")
FORMAT = 2
#: a shard is written once its arrays pass this size: large enough that a shard's
#: header and rename cost nothing, small enough that a worker holds little
SHARD_BYTES = 64 << 20


class DamagedRecord(UserError):
    """A record file that cannot be read (truncated, missing, not an NPZ)."""


# ---------------------------------------------------------------------------- writing


class Writer:
    """Writes one backend's record into ``folder`` while it trains."""

    def __init__(self, folder: Path, tensors: list[str], policy: Policy, total: int,
                 shard_bytes: int = SHARD_BYTES):
        self.folder, self.tensors, self.policy, self.total = folder, tensors, policy, total
        self.shard_bytes = shard_bytes
        self.shards: list[dict[str, Any]] = []
        self._pending: dict[str, list[np.ndarray]] = {}
        self._steps: list[int] = []
        self._bytes = 0
        folder.mkdir(parents=True, exist_ok=True)
        self._write_index(complete=False)

    def wants(self, step: int) -> bool:
        return self.policy.records(step, self.total)

    def outputs(self, outputs: np.ndarray) -> None:
        save_npz(self.folder / OUTPUTS, {"outputs": np.asarray(outputs)})

    def add(self, step: int, grads: Mapping[str, Any], params: Mapping[str, Any]) -> None:
        """Copies of one step's arrays (a backend may hand out views of live tensors)."""
        for kind, arrays in (("grads", grads), ("params", params)):
            for name in self.tensors:
                copy = np.array(arrays[name], copy=True)
                self._pending.setdefault(f"{kind}/{name}", []).append(copy)
                self._bytes += copy.nbytes
        self._steps.append(step)
        if self._bytes >= self.shard_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._steps:
            return
        name = f"part-{len(self.shards):05d}.npz"
        stacked = {key: np.stack(arrays) for key, arrays in self._pending.items()}
        self._pending = {}  # the copies go as soon as they are stacked
        save_npz(self.folder / name, {"steps": np.asarray(self._steps, dtype=np.int64),
                                      **stacked})
        self.shards.append({"file": name, "steps": self._steps})
        self._pending, self._steps, self._bytes = {}, [], 0
        self._write_index(complete=False)

    def close(self) -> None:
        self.flush()
        self._write_index(complete=True)

    def _write_index(self, complete: bool) -> None:
        write_json(self.folder / INDEX, {
            "format": FORMAT, "tensors": self.tensors, "policy": self.policy.to_dict(),
            "steps_planned": self.total, "complete": complete, "shards": self.shards})


# ---------------------------------------------------------------------------- reading


def _open(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DamagedRecord("missing record file", where=str(path)) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DamagedRecord(f"cannot read the record file ({_reason(exc)})",
                            where=str(path)) from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read(archive, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DamagedRecord(f"cannot read {key} ({_reason(exc)})", where=str(path)) from None


class Shards:
    """The shard in use, read whole (at most :data:`SHARD_BYTES` of arrays): a record's
    steps are read in order, so each shard is read once, and a record of one shard (a
    short run's) is read once however often it is compared."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.arrays: dict[str, np.ndarray] = {}
        self.rows: dict[int, int] = {}  # step -> its row in the stacked arrays (format 2)

    def get(self, path: Path) -> dict[str, np.ndarray]:
        if path != self.path:
            self.close()
            with _open(path) as archive:
                self.arrays = {key: _read(archive, key, path) for key in archive.files}
            if "steps" in self.arrays:
                self.rows = {int(step): row for row, step in enumerate(self.arrays["steps"])}
            self.path = path
        return self.arrays

    def row(self, step: int) -> int:
        if step not in self.rows:
            raise DamagedRecord(f"step {step} is not in the record file", where=str(self.path))
        return self.rows[step]

    def close(self) -> None:
        self.path, self.arrays, self.rows = None, {}, {}


class Stored(Mapping):
    """One kind (grads or params) of a record, keyed ``<step>/<tensor>``, read lazily:
    a step's arrays come from its shard when asked for."""

    def __init__(self, kind: str, files: dict[int, Path], tensors: list[str],
                 layout: str = "stacked", shards: Shards | None = None):
        # layout: "stacked" (format 2), "per-step" (format 1) or "legacy" (one NPZ a kind)
        self.kind, self.files, self.tensors, self.layout = kind, files, tensors, layout
        self.shards = shards or Shards()

    def __getitem__(self, key: str) -> np.ndarray:
        step_text, _, tensor = key.partition("/")
        step = int(step_text)
        if step not in self.files:
            raise KeyError(key)
        arrays = self.shards.get(self.files[step])
        if self.layout == "stacked":
            return _member(arrays, f"{self.kind}/{tensor}", self.shards)[self.shards.row(step)]
        return _member(arrays, f"{self.kind}/{key}" if self.layout == "per-step" else key,
                       self.shards)

    def __iter__(self) -> Iterator[str]:
        return (f"{step}/{t}" for step in sorted(self.files) for t in self.tensors)

    def __len__(self) -> int:
        return len(self.files) * len(self.tensors)

    @property
    def steps(self) -> list[int]:
        return sorted(self.files)

    def close(self) -> None:
        self.shards.close()


def _member(arrays: dict[str, np.ndarray], key: str, shards: Shards) -> np.ndarray:
    if key not in arrays:
        raise DamagedRecord(f"{key} is not in the record file", where=str(shards.path))
    return arrays[key]


@dataclass
class Record:
    """A backend's record as stored: its grads and params (lazy), its outputs, and what
    the index says about it."""

    grads: Stored
    params: Stored
    outputs: np.ndarray | None
    policy: Policy
    complete: bool

    @property
    def steps(self) -> list[int]:
        return self.grads.steps

    def close(self) -> None:
        self.grads.close()
        self.params.close()


def read(folder: Path) -> Record:
    """The record in ``folder`` (record.json and its shards)."""
    index_path = folder / INDEX
    try:
        index = read_json(index_path)
    except FileNotFoundError:
        raise DamagedRecord("missing record index", where=str(index_path)) from None
    except (OSError, ValueError) as exc:
        raise DamagedRecord(f"cannot read the record index ({_reason(exc)})",
                            where=str(index_path)) from None
    files = {step: folder / shard["file"] for shard in index["shards"]
             for step in shard["steps"]}
    tensors = list(index["tensors"])
    layout = "stacked" if index.get("format", 1) >= 2 else "per-step"
    shards = Shards()  # grads and params share their shards
    return Record(Stored("grads", files, tensors, layout, shards),
                  Stored("params", files, tensors, layout, shards),
                  read_outputs(folder / OUTPUTS), Policy.from_dict(index.get("policy")),
                  bool(index.get("complete")))


def read_legacy(grads: Path, params: Path, outputs: Path) -> Record:
    """A record in the first format: one NPZ per kind with every step (still readable)."""
    stores = []
    for kind, path in (("grads", grads), ("params", params)):
        keys: list[str] = []
        if path.exists():
            with _open(path) as archive:
                keys = list(archive.files)
        steps = {int(k.split("/", 1)[0]) for k in keys}
        tensors = list(dict.fromkeys(k.split("/", 1)[1] for k in keys))
        stores.append(Stored(kind, dict.fromkeys(steps, path), tensors, "legacy"))
    return Record(stores[0], stores[1], read_outputs(outputs), Policy(), True)


def read_outputs(path: Path) -> np.ndarray | None:
    if not path.exists():
        return None
    with _open(path) as archive:
        return _read(archive, "outputs", path)


def read_run(run_dir: Path, name: str, expected: bool = True) -> Record:
    """Backend ``name``'s record in a run directory, in whichever format the suite wrote
    (see :func:`read_folder` for ``expected``)."""
    folder = rundir.record_dir(run_dir, name)
    if not folder.exists() and rundir.array_file(run_dir, "grads", name).exists():
        return read_legacy(*(rundir.array_file(run_dir, kind, name) for kind in rundir.ARRAYS))
    return read_folder(folder, expected)


def read_folder(folder: Path, expected: bool = True) -> Record:
    """The record in ``folder``. A backend that recorded nothing (unsupported, or it failed
    before its first step) has an empty record; where ``expected`` (its result says it
    trained), none is damage."""
    if folder.exists():
        return read(folder)
    if expected:
        raise DamagedRecord("missing lockstep record", where=str(folder))
    return empty()


def empty() -> Record:
    return Record(Stored("grads", {}, []), Stored("params", {}, []), None, Policy(), True)
