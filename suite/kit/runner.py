"""Run the conformance battery: the reference and each backend in worker processes.

One worker runs every probe of one backend (so a framework is imported once); the
reference worker also runs each probe under every ledger convention that applies to a
backend being checked. The results are compared check by check with the same code and
tolerances as ``suite compare``; a cell holds one verdict per backend, probe, dtype and
check.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from suite import catalogue, envs, ledger, machine, processes, registry
from suite.compare import comparison, noise
from suite.compare.verdicts import Twin
from suite.files import save_npz, write_json
from suite.initializers import initial_params
from suite.kit import battery
from suite.kit.battery import Probe
from suite.processes import ProgressFn, ignore_progress
from suite.rundir import (
    REFERENCE,
    SEVERITY,
    SUMMARY_COLUMNS,
    noise_name,
    twin_name,
    variant_name,
)
from suite.spec import Spec, from_dict
from suite.validation import (
    Constraint,
    one_of,
    positive_int,
    positive_seconds,
    validate,
    validate_fields,
)

#: conformance.csv: a summary row (suite.rundir.SummaryRow) with its probe, feature and dtype
CELL_COLUMNS = ["backend", "probe", "feature", "dtype", *SUMMARY_COLUMNS[1:]]
#: Whether probes are judged by the measured noise, as `suite compare` runs are. Not yet:
#: a probe is a tiny network built to hit one feature, and some are degenerate for a
#: noise estimate (every weight one, an output bias whose gradient cancels to a few ulps
#: at the first step): one correct implementation's rounding there is no measure of
#: another's, and the measured noise would call correct backends failing. The probes
#: keep the fixed tolerances (suite.compare.noise.FIXED_TOLERANCES) until the noise is
#: floored by each sum's own condition; the noise runs still tell which ledger entries
#: change a float32 probe (their variants compute in float64).
MEASURED_NOISE = False
WORKER = "suite.kit.worker"


@dataclass(frozen=True)
class KitOptions:
    dtypes: tuple[str, ...] = catalogue.DTYPES
    device: str = "cpu"
    threads: int | None = None  # None: every core
    timeout_s: float = 900.0  # per worker
    # Backends' battery workers run side by side, this many at once: the kit times
    # nothing, and a cold compile cache (PyTensor's numba, Theano's g++) is single-threaded.
    # Not compared (nor hashed): it changes how long the battery takes, not its result, so
    # pytest_checks' cache serves KitOptions() and KitOptions(workers=2) alike.
    workers: int = field(default=1, compare=False)

    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "device": one_of(catalogue.DEVICES, "--device"),
        "threads": positive_int("--threads", optional=True),
        "timeout_s": positive_seconds("--timeout"),
        "workers": positive_int("--workers"),
    }

    def __post_init__(self) -> None:
        validate_fields(self)
        for dtype in self.dtypes:
            if dtype not in catalogue.DTYPES:
                validate({"dtypes": dtype}, {"dtypes": one_of(catalogue.DTYPES, "--dtype")})


@dataclass
class KitResult:
    """The battery's outcome: ``cells`` has one row per backend, probe, dtype and check."""

    cells: pd.DataFrame
    versions: dict[str, dict[str, str]]  # backend -> framework versions
    probes: list[Probe]
    options: KitOptions
    threads: int
    ledger: list[dict] = field(default_factory=list)  # entries that explained a difference

    def backends(self) -> list[str]:
        return list(dict.fromkeys(self.cells.backend))

    def only(self, name: str) -> KitResult:
        """This result restricted to one backend."""
        cells = self.cells[self.cells.backend == name].reset_index(drop=True)
        return KitResult(cells, {name: self.versions.get(name, {})}, self.probes,
                         self.options, self.threads, comparison.applied_entries(cells))

    def unexpected(self) -> pd.DataFrame:
        """Cells that fail or error: what makes ``suite check-backend`` exit non-zero."""
        return self.cells[self.cells.verdict.isin(["fail", "error"])]


@dataclass(frozen=True)
class _Job:
    id: str
    probe: Probe
    dtype: str
    spec: Spec


def plan_jobs(probes: Sequence[Probe], dtypes: Sequence[str]) -> dict[tuple[str, str], _Job]:
    """(probe label, dtype) -> its job; probes with equal specs share one job."""
    by_key: dict[str, _Job] = {}
    jobs: dict[tuple[str, str], _Job] = {}
    for dtype in dtypes:
        for probe in probes:
            spec = from_dict(probe.spec_for(dtype), source=f"probe {probe.label}")
            key = json.dumps(spec.to_dict(), sort_keys=True)  # the normalized spec
            if key not in by_key:
                by_key[key] = _Job(f"{len(by_key):03d}-{dtype}", probe, dtype, spec)
            jobs[probe.label, dtype] = by_key[key]
    return jobs


def write_plan(folder: Path, jobs: dict[tuple[str, str], _Job], options: KitOptions,
               threads: int) -> None:
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"threads": threads, "device": options.device, "jobs": {}}
    labels = list(dict.fromkeys(label for label, _ in jobs))
    for job in {job.id: job for job in jobs.values()}.values():
        # The probe's place in the battery seeds its data: the same rows in every dtype.
        x, y = battery.data(job.probe.spec, job.dtype, labels.index(job.probe.label))
        arrays[f"{job.id}/x"], arrays[f"{job.id}/y"] = x, y
        for name, value in initial_params(job.spec).items():
            arrays[f"{job.id}/params/{name}"] = value.astype(job.dtype)
        meta["jobs"][job.id] = {"spec": job.spec.to_dict(), "probe": job.probe.label}
    save_npz(folder / "plan.npz", arrays)
    write_json(folder / "plan.json", meta)


def _variant_runs(jobs: dict[tuple[str, str], _Job], backend: str) -> list[dict[str, Any]]:
    """The reference under ``backend``'s ledger conventions: all that apply, and each alone.

    The runs under one entry's conventions tell which entries change anything in a probe,
    so that a known difference names only those.
    """
    runs: dict[tuple[str, str | None], dict[str, Any]] = {}
    for job in jobs.values():
        entries = ledger.applicable(job.spec, backend)
        if not entries:
            continue
        variant = variant_name(backend, base=job.id)
        runs[job.id, None] = {"run": variant, "job": job.id,
                              "options": noise.variant_options(
                                  job.dtype, ledger.conventions_for(job.spec, backend))}
        for entry in entries if len(entries) > 1 else ():
            # under this entry's conventions alone: "<job>~<backend>~<entry>"
            runs[job.id, entry.id] = {"run": variant_name(entry.id, base=variant),
                                      "job": job.id,
                                      "options": noise.variant_options(job.dtype,
                                                                       entry.conventions)}
    return list(runs.values())


def _differs(a: comparison.Lockstep, b: comparison.Lockstep) -> bool:
    """Whether two runs of the same job computed anything differently."""
    if a.losses != b.losses or not np.array_equal(a.outputs, b.outputs):
        return True
    return any(not np.array_equal(store_a[key], store_b.get(key))
               for store_a, store_b in ((a.grads, b.grads), (a.params, b.params))
               for key in store_a)


def _entries_that_matter(name: str, job: _Job, ref_dir: Path,
                         ref: comparison.Lockstep | None) -> list[str]:
    entries = ledger.applicable(job.spec, name)
    if len(entries) <= 1 or ref is None:
        return [entry.id for entry in entries]
    found = []
    for entry in entries:
        alone = _load(ref_dir / variant_name(entry.id, base=variant_name(name, base=job.id)),
                      REFERENCE)
        if alone is None or alone.result["status"] != "ok" or _differs(alone, ref):
            found.append(entry.id)
    return found


def _run_worker(name: str, target: str, runs: list[dict], scratch: Path, env: dict[str, str],
                options: KitOptions, on_event: ProgressFn,
                env_spec: envs.EnvSpec | None = None) -> tuple[Path, dict[str, Any]]:
    folder = scratch / "workers" / re.sub(r"[^A-Za-z0-9._-]", "_", name)
    task = {"backend": {"name": name, "target": target, "options": {}}, "runs": runs}
    folder.mkdir(parents=True, exist_ok=True)
    result = processes.run_backend_worker(WORKER, name, env_spec, task, scratch / "plan",
                                          folder, scratch / f"{folder.name}.log", env,
                                          options.timeout_s, on_event)
    return folder, result


def check_backends(names: Sequence[str], options: KitOptions = KitOptions(),
                   on_event: ProgressFn = ignore_progress) -> KitResult:
    """Run the battery on each backend (names or ``module:Class`` targets) and compare."""
    targets = {registry.name_of(name): registry.resolve(name) for name in names}
    env_specs = {registry.name_of(name): registry.environment_of(name) for name in names}
    probes = battery.probes()
    jobs = plan_jobs(probes, options.dtypes)
    threads = machine.threads_or_all(options.threads)
    env = processes.worker_env(threads)
    jobs_by_id = {job.id: job for job in jobs.values()}
    distinct = list(jobs_by_id)
    scratch = Path(tempfile.mkdtemp(prefix="fnn-suite-kit-"))
    with processes.StopSignals():  # Ctrl-C, SIGTERM, SIGHUP: every worker goes
        try:
            (scratch / "plan").mkdir()
            write_plan(scratch / "plan", jobs, options, threads)
            ref_runs = [{"run": job_id, "job": job_id} for job_id in distinct]
            # a float32 probe's noise run (the float64 reference) also tells which ledger
            # entries matter; a float64 probe's (the reordered reference) only judges
            ref_runs += [{"run": noise_name(jobs_by_id[job_id].dtype, base=job_id),
                          "job": job_id, "options": noise.noise_options(jobs_by_id[job_id].dtype)}
                         for job_id in distinct
                         if MEASURED_NOISE or jobs_by_id[job_id].dtype == "float32"]
            for name in targets:
                ref_runs += _variant_runs(jobs, name)
            on_event(REFERENCE, {"phase": "start", "total": len(ref_runs)})
            ref_dir, ref_result = _run_worker(REFERENCE, registry.resolve(REFERENCE),
                                              ref_runs, scratch, env, options, on_event)
            on_event(REFERENCE, {"phase": "done", "status": ref_result["status"]})
            runs = [{"run": job_id, "job": job_id} for job_id in distinct]
            finished = _batteries(targets, env_specs, runs, scratch, env, options, on_event)
            cells: list[dict] = []
            versions = {}
            for name, (folder, result) in finished.items():
                versions[name] = result.get("versions", {})
                found = _compare(name, jobs, folder, result, ref_dir, ref_result)
                twin = _twin_battery(name, targets[name], env_specs[name], jobs, found,
                                     scratch, env, options, on_event)
                if twin is not None:  # the probes its twin entries may explain, again
                    found = _compare(name, jobs, folder, result, ref_dir, ref_result, twin)
                cells += found
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    frame = pd.DataFrame(cells, columns=CELL_COLUMNS)
    return KitResult(frame, versions, probes, options, threads, comparison.applied_entries(frame))


def _batteries(targets: dict[str, str], env_specs: dict[str, envs.EnvSpec | None],
               runs: list[dict], scratch: Path, env: dict[str, str], options: KitOptions,
               on_event: ProgressFn) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each backend's battery worker, ``options.workers`` of them side by side."""

    def battery_of(name: str) -> tuple[Path, dict[str, Any]]:
        on_event(name, {"phase": "start", "total": len(runs)})
        done = _run_worker(name, targets[name], runs, scratch, env, options, on_event,
                           env_specs[name])
        on_event(name, {"phase": "done", "status": done[1]["status"],
                        "reason": done[1].get("reason")})
        return done

    pool = ThreadPoolExecutor(max(1, options.workers))
    try:
        return dict(zip(targets, pool.map(battery_of, targets), strict=True))
    except BaseException as exc:  # Ctrl-C, SIGTERM: the pool's workers go before it waits
        processes.stop_all(getattr(exc, "signum", signal.SIGINT))
        raise
    finally:
        pool.shutdown(cancel_futures=True)


def _twin_battery(name: str, target: str, env_spec: envs.EnvSpec | None,
                  jobs: dict[tuple[str, str], _Job], cells: list[dict], scratch: Path,
                  env: dict[str, str], options: KitOptions, on_event: ProgressFn
                  ) -> Path | None:
    """The backend's twin (suite.ledger.twins) on the probes that failed where a twin entry
    applies, run with the entries' environment switches; its folder, or None."""
    failed = {(c["probe"], c["dtype"]) for c in cells if c["verdict"] == "fail"}
    wanted = {job.id: ledger.twin_env_for(job.spec, name) for key, job in jobs.items()
              if key in failed and ledger.twin_env_for(job.spec, name)}
    if not wanted:
        return None
    switches = {k: v for found in wanted.values() for k, v in found.items()}
    twin = twin_name(name)
    runs = [{"run": job_id, "job": job_id} for job_id in wanted]
    on_event(twin, {"phase": "start", "total": len(runs)})
    folder, result = _run_worker(twin, target, runs, scratch, {**env, **switches}, options,
                                 on_event, env_spec)
    on_event(twin, {"phase": "done", "status": result["status"], "reason": result.get("reason")})
    return folder


def _load(folder: Path, name: str) -> comparison.Lockstep | None:
    if not (folder / "result.json").exists():
        return None
    return comparison.Lockstep.from_folder(folder, name)


def _compare(name: str, jobs: dict[tuple[str, str], _Job], folder: Path, result: dict,
             ref_dir: Path, ref_result: dict, twin_dir: Path | None = None) -> list[dict]:
    cells = []
    for (label, dtype), job in jobs.items():
        run = _load(folder / job.id, name)
        ref = _load(ref_dir / job.id, REFERENCE)
        variant = _load(ref_dir / variant_name(name, base=job.id), REFERENCE)
        noise_run = _load(ref_dir / noise_name(dtype, base=job.id), REFERENCE)
        rows: list[comparison.ComparisonRow] = []
        if run is None:
            status, reason = "error", (result.get("reason")
                                       or "the worker stopped before this probe")
        elif ref is None or ref.result["status"] != "ok":
            why = (ref.result.get("reason") if ref else None) or ref_result.get("reason")
            status, reason = "error", f"reference failed: {why}"
        else:
            status, reason = run.result["status"], run.result.get("reason")
            if status != "unsupported":
                try:
                    # NOTE: judged by the fixed tolerances (FIXED_TOLERANCES), not by the
                    # measured noise: see MEASURED_NOISE
                    usable = (comparison.usable_noise_run(noise_run, ref)[0]
                              if MEASURED_NOISE else None)
                    baseline = noise.Baseline.of(ref, usable, dtype,
                                                 {k: v.astype(dtype).astype(np.float64)
                                                  for k, v in initial_params(job.spec).items()})
                    rows = comparison.compare_lockstep(run, baseline, variant,
                                                       comparison.tensor_names(job.spec))
                except (KeyError, ValueError) as exc:
                    status, reason = "error", f"bad result: {exc}"
        # the variants compute in the baseline's precision: what they are set against
        plain = noise_run if dtype == "float32" else ref
        entries = _entries_that_matter(name, job, ref_dir, plain)
        twin = (_kit_twin(name, job, twin_dir, baseline, variant)
                if twin_dir is not None and rows else None)
        for verdict in comparison.verdicts(name, rows, status, reason, entries,
                                           comparison.optimizer_label(job.spec), twin=twin):
            cells.append({"probe": label, "feature": job.probe.feature, "dtype": dtype,
                          **asdict(verdict)})
    return cells


def _kit_twin(name: str, job: _Job, twin_dir: Path, baseline: noise.Baseline,
              variant: comparison.Lockstep | None) -> Twin | None:
    """The twin's verdicts on one job, or None where it did not run that job."""
    run = _load(twin_dir / job.id, twin_name(name))
    if run is None or run.result.get("status") != "ok":
        return None
    try:
        rows = comparison.compare_lockstep(run, baseline, variant,
                                           comparison.tensor_names(job.spec))
    except (KeyError, ValueError):
        return None  # a twin whose results cannot be compared explains nothing
    checks = comparison.verdicts(twin_name(name), rows, "ok", None,
                                 [e.id for e in ledger.applicable(job.spec, name)],
                                 comparison.optimizer_label(job.spec))
    return Twin([e.id for e in ledger.twins(job.spec, name)],
                ledger.twin_env_for(job.spec, name), {c.check: c for c in checks})


def worst(verdicts: Sequence[str]) -> str:
    """The most severe of several verdicts."""
    return min(verdicts, key=SEVERITY.index)


def merge(results: Sequence[KitResult]) -> KitResult:
    """Several backends' results (run with the same options) as one."""
    first = results[0]
    cells = pd.concat([r.cells for r in results], ignore_index=True)
    versions = {k: v for r in results for k, v in r.versions.items()}
    return KitResult(cells, versions, first.probes, first.options, first.threads,
                     comparison.applied_entries(cells))
