"""The run directory of ``suite compare``: its layout, its typed records, and how it is made.

This module is the contract between the writers (the compare session and its worker) and
the readers (the comparison, the reports, :class:`suite.compare.results.Run`, the kit):

    run.json                 RunRecord keys; ``backends`` maps a name to a BackendEntry
    initial_params.npz       dense_<i>/kernel (fan_in, fan_out), dense_<i>/bias (fan_out,)
    losses.csv               LOSS_COLUMNS
    comparison.csv           ComparisonRow, one per backend, step, kind and tensor
    parts.csv                PartsRow, one per backend with a parts run, step, part, tensor
    summary.csv              SummaryRow, one per backend and check
    timing.csv               TimingRow, one per timed backend
    record/<name>/           a backend's lockstep record, written while it trains
                             (suite.record: record.json, outputs.npz, part-*.npz)
    grads/, params/, outputs/<name>.npz    the same in the first format (ARRAYS), read
    workers/<name>.json, <name>.log        each worker's raw result and its stderr

The reference's name, the checks, the verdicts and their order, and the names of the
reference's ledger variants (``numpy~keras``) are defined here and nowhere else.
Standard library only: the worker side and the registry import it too.
"""

from __future__ import annotations

import errno
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from suite.errors import UserError
from suite.files import atomic_write_text

REFERENCE = "numpy"
LATEST = "latest"
RUN_JSON = "run.json"
ROLES = ("reference", "backend", "variant", "noise", "parts", "twin", "repro")
#: the roles of the extra runs that measure rather than being measured, never timed nor
#: reported as rows of their own: the reference's ledger variants, its noise run
#: (suite.compare.noise), a backend's parts run for attribution (suite.compare.parts),
#: its twin (a ledger entry's environment switches on: suite.ledger twins), and the
#: reference run that writes a backend's reproducer's state (suite.compare.repro)
REFERENCE_RUNS = ("variant", "noise", "parts", "twin", "repro")
#: the run directory's folder of reproducers: <backend>.py and <backend>.npz
REPRO = "repro"
#: a backend's status in run.json: pending until its worker ends
STATUSES = ("pending", "ok", "error", "unsupported", "unavailable")
RECORD = "record"
ARRAYS = ("grads", "params", "outputs")  # the first format's folders

#: check -> what it compares, in report order
CHECKS: dict[str, str] = {
    "forward": "outputs on the first batch before training",
    "loss": "the first step's loss",
    "gradients": "the first step's gradients",
    "update": "the first update (parameters after it minus before)",
    "trajectory": "losses, gradients and parameters of every later step",
}
VERDICTS = ("pass", "known difference", "unsupported", "fail", "error")
#: worst first: what a backend's headline (or a kit probe's cell) follows
SEVERITY = ("error", "fail", "known difference", "unsupported", "pass")
#: comparison.csv's kinds of tensor
KINDS = ("output", "loss", "grad", "update", "param")

_VARIANT = "~"
_NOISE = "+"


def noise_name(dtype: str, base: str = REFERENCE) -> str:
    """The noise run of a comparison in ``dtype`` (see suite.compare.noise): the reference
    in float64 for a float32 run (``numpy+float64``), summed in another order for a float64
    run (``numpy+reordered``)."""
    return f"{base}{_NOISE}{'float64' if dtype == 'float32' else 'reordered'}"


def parts_name(backend: str) -> str:
    """The parts run of ``backend`` (attribution, suite.compare.parts): ``torch+parts``."""
    return f"{backend}{_NOISE}parts"


def twin_name(backend: str) -> str:
    """The twin of ``backend``: its lockstep run again under a ledger entry's environment
    switches (``mxnet+twin``)."""
    return f"{backend}{_NOISE}twin"


def repro_name(backend: str) -> str:
    """The reference run that writes ``backend``'s reproducer's state: ``mxnet+repro``."""
    return f"{backend}{_NOISE}repro"


def repro_files(run_dir: Path, backend: str) -> tuple[Path, Path]:
    """``backend``'s reproducer: repro/<backend>.py and the state beside it."""
    return run_dir / REPRO / f"{backend}.py", run_dir / REPRO / f"{backend}.npz"


def variant_name(backend: str, base: str = REFERENCE) -> str:
    """The run of ``base`` (the reference) under the ledger conventions of ``backend``."""
    return f"{base}{_VARIANT}{backend}"


def parse_variant(name: str) -> tuple[str, str] | None:
    """``"numpy~keras"`` -> ("numpy", "keras"); None for a name that is no variant's."""
    base, sep, backend = name.partition(_VARIANT)
    return (base, backend) if sep and base and backend else None


# ---------------------------------------------------------------------------- records


def _known(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """The items of ``raw`` that are fields of the dataclass ``cls``."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in raw.items() if k in names}


@dataclass
class BackendEntry:
    """One entry of run.json's ``backends``."""

    role: str  # one of ROLES
    status: str = "pending"  # one of STATUSES
    reason: str | None = None
    target: str | None = None  # package.module:Class (what --resume asks for again)
    versions: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # a variant's conventions
    runtime: dict[str, Any] = field(default_factory=dict)  # its threads and precision
    lockstep_s: float | None = None
    lockstep_train_s: float | None = None
    lockstep_export_s: float | None = None
    lockstep_steps: int | None = None
    timing_status: str = "off"
    timing_reason: str | None = None
    wall_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BackendEntry:
        found = _known(cls, raw)
        for key in ("versions", "options", "runtime"):
            found[key] = dict(found.get(key) or {})
        return cls(**{"role": "backend", **found})


def _columns(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class ComparisonRow:
    """One row of comparison.csv: a backend's tensor at one step against the reference."""

    backend: str
    step: int
    kind: str  # one of KINDS
    tensor: str
    max_abs_diff: float  # against the baseline (suite.compare.noise)
    rel_l2_error: float  # against the baseline
    noise: float  # the measured noise: a correct implementation's error (its envelope)
    tolerance: float  # NOISE_FACTOR x max(noise, the dtype's floor)
    within: bool
    variant_rel_l2_error: float  # against the reference under the ledger's conventions
    favours_variant: bool  # the variant is closer than the baseline by more than the noise
    finite: bool  # False where the backend returned NaN or inf


@dataclass(frozen=True)
class PartsRow:
    """One row of parts.csv: a backend's part alone at one step (attribution,
    suite.compare.parts): its loss or gradient at the reference's parameters, or its
    update from the reference's parameters with the reference's gradients."""

    backend: str
    step: int
    part: str  # forward, backward or optimizer
    tensor: str  # "loss" for the forward, else a parameter's name
    max_abs_diff: float
    rel_l2_error: float  # against the baseline, fed the same
    noise: float  # the judge's envelope (suite.compare.noise.Envelope)
    tolerance: float
    within: bool
    finite: bool
    variant_rel_l2_error: float = math.nan  # against the ledger variant fed the same


@dataclass(frozen=True)
class SummaryRow:
    """One row of summary.csv: a backend's verdict on one check."""

    backend: str
    check: str  # one of CHECKS
    verdict: str  # one of VERDICTS
    step: int | None = None  # the first step out of tolerance
    tensor: str | None = None  # "<kind> <tensor>"
    rel_l2_error: float | None = None  # the worst (largest against its tolerance)
    noise: float | None = None  # the measured noise there
    tolerance: float | None = None
    ledger: str | None = None  # entry ids behind a known difference, space-separated
    reason: str | None = None
    #: where a drift began, from the backend's parts run: "forward", "backward <tensor>",
    #: "optimizer <tensor>" (each "at step N"), "compounding" (the trajectory left the
    #: noise, every part alone stayed within it), or "within noise" (nothing left it)
    attribution: str | None = None

    @property
    def entries(self) -> list[str]:
        return (self.ledger or "").split()


@dataclass(frozen=True)
class TimingRow:
    """One row of timing.csv; every measurement may be missing (None)."""

    backend: str
    threads: int | None = None
    import_s: float | None = None
    build_s: float | None = None
    first_step_s: float | None = None
    step_ms_median: float | None = None
    step_ms_iqr: float | None = None
    samples_per_s: float | None = None
    predict_ms: float | None = None
    steps_timed: int | None = None
    status: str | None = None
    reason: str | None = None


LOSS_COLUMNS = ("backend", "epoch", "step", "loss")
COMPARISON_COLUMNS = _columns(ComparisonRow)
SUMMARY_COLUMNS = _columns(SummaryRow)
PARTS_COLUMNS = _columns(PartsRow)
TIMING_COLUMNS = _columns(TimingRow)
#: table name (its CSV file's stem) -> columns
TABLES = {"losses": LOSS_COLUMNS, "comparison": COMPARISON_COLUMNS,
          "summary": SUMMARY_COLUMNS, "timing": TIMING_COLUMNS, "parts": PARTS_COLUMNS}


def row_from_cells(cls: type, cells: dict[str, Any]):
    """A record from a CSV row as pandas read it: empty cells and NaN as None, integers as
    int, strings as str; columns the record lacks are ignored."""
    found = {}
    for f in fields(cls):
        if f.name not in cells:
            continue
        value = _missing_as_none(cells[f.name])
        if value is not None and f.type in ("int | None", "int"):
            value = int(value)
        elif value is not None and f.type in ("str | None", "str"):
            value = str(value)
        found[f.name] = value
    return cls(**found)


def _missing_as_none(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value.item() if hasattr(value, "item") else value


# ---------------------------------------------------------------------------- layout


def record_dir(run_dir: Path, name: str) -> Path:
    """``record/<name>/``: a backend's lockstep record (see suite.record)."""
    return run_dir / RECORD / name


def array_file(run_dir: Path, kind: str, name: str) -> Path:
    """``grads/<name>.npz`` and the like (``kind`` is one of ARRAYS): the lockstep arrays
    of the first format, one NPZ per kind with every step; still read."""
    return run_dir / kind / f"{name}.npz"


def repeat_dir(run_dir: Path, name: str, repeat: int) -> Path:
    """``repeats/<name>/<repeat>/``: the record of a backend's lockstep run made again
    (``--repeat``; the first run's record is record/<name>/)."""
    return run_dir / "repeats" / name / str(repeat)


def worker_result(run_dir: Path, name: str) -> Path:
    return run_dir / "workers" / f"{name}.json"


def worker_log(run_dir: Path, name: str) -> Path:
    return run_dir / "workers" / f"{name}.log"


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


def create(spec_name: str, root: Path, out: Path | None, force: bool) -> Path:
    """A new, empty run directory: ``out`` as given, or ``root/<timestamp>-<name>``."""
    if out is not None:
        if out.exists() and any(out.iterdir()):
            if not force:
                raise UserError(f"output directory {out} already exists and is not empty",
                                hint="choose another --out, or add --force to replace it")
            if not (out / RUN_JSON).exists():
                raise UserError(f"refusing to replace {out}: it is not a run directory "
                                "(no run.json)", hint="choose another --out")
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        return out
    root.mkdir(parents=True, exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(spec_name)}"
    path, n = root / base, 1
    while path.exists():
        n += 1
        path = root / f"{base}-{n}"
    path.mkdir()
    return path


def point_latest(run_dir: Path) -> Path:
    """Make ``<parent>/latest`` point at ``run_dir`` (a relative symlink, swapped atomically)."""
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.tmp"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        # No symlinks here (or `latest` is a real folder): a text pointer instead.
        atomic_write_text(run_dir.parent / f"{LATEST}.txt", run_dir.name + "\n")
    return link


def adopt_worker_files(run_dir: Path, worker_dir: Path, name: str) -> None:
    """Move a finished worker's records (its lockstep run's, and each repeat's) to their
    documented places."""
    _adopt(worker_dir / RECORD, record_dir(run_dir, name))
    for repeat in sorted(worker_dir.glob("repeat-*")):
        _adopt(repeat / RECORD, repeat_dir(run_dir, name, int(repeat.name.split("-")[1])))
    for state in sorted((worker_dir / REPRO).glob("*.npz")):  # a repro run's state
        _adopt(state, run_dir / REPRO / state.name)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _adopt(source: Path, target: Path) -> None:
    """A rename (of a folder or a file), or where the worker wrote on another file system,
    a copy beside the destination and a rename, so that it is there whole or not at all."""
    if not source.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove(target)  # a re-run of this backend replaces its record
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        staging = target.with_name(f".{target.name}.partial")
        _remove(staging)
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, staging)
        os.replace(staging, target)
        _remove(source)
