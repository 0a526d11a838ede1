"""Run the conformance battery: the reference and each backend in worker processes.

One worker runs every probe of one backend (so a framework is imported once); the
reference worker also runs each probe under every ledger convention that applies to a
backend being checked. The results are compared check by check with the same code and
tolerances as ``suite compare``; a cell holds one verdict per backend, probe, dtype and
check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from suite import catalogue, comparison, envs, harness, ledger, registry, rundir
from suite.errors import UserError
from suite.initializers import initial_params
from suite.kit import battery
from suite.kit.battery import Probe
from suite.spec import Spec, from_dict

CELL_COLUMNS = ["backend", "probe", "feature", "dtype", "check", "verdict", "step", "tensor",
                "rel_l2_error", "tolerance", "ledger", "reason"]

# The checks of each probe, in the suite's vocabulary (comparison.CHECKS).
CHECKS = ("forward", "loss", "gradients", "update", "trajectory")

# Worst first: the verdict a probe shows is its worst check's.
SEVERITY = ("error", "fail", "unsupported", "known difference", "pass")

# Progress callback: (worker name, event) as in suite.harness.
ProgressFn = Callable[[str, dict[str, Any]], None]


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
    np.savez(folder / "plan.npz", **arrays)
    rundir.write_json(folder / "plan.json", meta)


def _variant_runs(jobs: dict[tuple[str, str], _Job], backend: str) -> list[dict[str, Any]]:
    """The reference under ``backend``'s ledger conventions: all that apply, and each alone.

    The runs under one entry's conventions tell which entries change anything in a probe,
    so that a known difference names only those.
    """
    runs = {}
    for job in jobs.values():
        entries = ledger.applicable(job.spec, backend)
        if not entries:
            continue
        runs[job.id] = {"run": f"{job.id}~{backend}", "job": job.id,
                        "options": {"conventions": ledger.conventions_for(job.spec, backend)}}
        for entry in entries if len(entries) > 1 else ():
            runs[f"{job.id}~{entry.id}"] = {"run": f"{job.id}~{backend}~{entry.id}",
                                            "job": job.id,
                                            "options": {"conventions": entry.conventions}}
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
        alone = _load(ref_dir / f"{job.id}~{name}~{entry.id}", registry.REFERENCE)
        if alone is None or alone.result["status"] != "ok" or _differs(alone, ref):
            found.append(entry.id)
    return found


def _run_worker(name: str, target: str, runs: list[dict], scratch: Path, env: dict[str, str],
                options: KitOptions, on_event: ProgressFn,
                env_spec: envs.EnvSpec | None = None) -> tuple[Path, dict[str, Any]]:
    folder = scratch / "workers" / re.sub(r"[^A-Za-z0-9._-]", "_", name)
    task = {"backend": {"name": name, "target": target, "options": {}}, "runs": runs}
    try:
        python, env = harness.interpreter(name, env_spec, env, on_event)
    except UserError as exc:  # this backend's environment could not be had
        folder.mkdir(parents=True, exist_ok=True)
        return folder, {"status": "error", "reason": str(exc)}
    result = harness.run_process("suite.kit.worker", name, task, scratch / "plan", folder,
                                 scratch / f"{folder.name}.log", env, options.timeout_s,
                                 on_event, python)
    return folder, result


def check_backends(names: Sequence[str], options: KitOptions = KitOptions(),
                   on_event: ProgressFn | None = None) -> KitResult:
    """Run the battery on each backend (names or ``module:Class`` targets) and compare."""
    on_event = on_event or (lambda name, event: None)
    targets = {registry.name_of(name): registry.resolve(name) for name in names}
    env_specs = {registry.name_of(name): None if registry.is_target(name) else envs.spec_for(name)
                 for name in names}
    probes = battery.probes()
    jobs = plan_jobs(probes, options.dtypes)
    threads = options.threads or os.cpu_count() or 1
    env = harness.worker_env(threads)
    distinct = list({job.id: job for job in jobs.values()})
    scratch = Path(tempfile.mkdtemp(prefix="fnn-suite-kit-"))
    try:
        (scratch / "plan").mkdir()
        write_plan(scratch / "plan", jobs, options, threads)
        ref_runs = [{"run": job_id, "job": job_id} for job_id in distinct]
        for name in targets:
            ref_runs += _variant_runs(jobs, name)
        on_event(registry.REFERENCE, {"phase": "start", "total": len(ref_runs)})
        ref_dir, ref_result = _run_worker(registry.REFERENCE,
                                          registry.resolve(registry.REFERENCE), ref_runs,
                                          scratch, env, options, on_event)
        on_event(registry.REFERENCE, {"phase": "done", "status": ref_result["status"]})
        def battery_of(name: str) -> tuple[Path, dict[str, Any]]:
            runs = [{"run": job_id, "job": job_id} for job_id in distinct]
            on_event(name, {"phase": "start", "total": len(runs)})
            done = _run_worker(name, targets[name], runs, scratch, env, options, on_event,
                               env_specs[name])
            on_event(name, {"phase": "done", "status": done[1]["status"],
                            "reason": done[1].get("reason")})
            return done

        with ThreadPoolExecutor(max(1, options.workers)) as pool:
            finished = dict(zip(targets, pool.map(battery_of, targets), strict=True))
        cells: list[dict] = []
        versions = {}
        for name, (folder, result) in finished.items():
            versions[name] = result.get("versions", {})
            cells += _compare(name, jobs, folder, result, ref_dir, ref_result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    frame = pd.DataFrame(cells, columns=CELL_COLUMNS)
    return KitResult(frame, versions, probes, options, threads, comparison.applied_entries(frame))


def _load(folder: Path, name: str) -> comparison.Lockstep | None:
    if not (folder / "result.json").exists():
        return None
    return comparison.Lockstep.from_folder(folder, name)


def _compare(name: str, jobs: dict[tuple[str, str], _Job], folder: Path, result: dict,
             ref_dir: Path, ref_result: dict) -> list[dict]:
    cells = []
    for (label, dtype), job in jobs.items():
        tol = comparison.TOLERANCES[dtype]
        tensors = [f"dense_{i}/{p}" for i in range(len(job.spec.layers))
                   for p in ("kernel", "bias")]
        run = _load(folder / job.id, name)
        ref = _load(ref_dir / job.id, registry.REFERENCE)
        variant = _load(ref_dir / f"{job.id}~{name}", registry.REFERENCE)
        rows: list[dict] = []
        if run is None:
            info = {"status": "error", "reason": result.get("reason")
                    or "the worker stopped before this probe"}
        elif ref is None or ref.result["status"] != "ok":
            reason = (ref.result.get("reason") if ref else None) or ref_result.get("reason")
            info = {"status": "error", "reason": f"reference failed: {reason}"}
        else:
            info = run.result
            if info["status"] != "unsupported":
                try:
                    rows = comparison.compare_lockstep(run, ref, variant, tol, tensors)
                except (KeyError, ValueError) as exc:
                    info = {"status": "error", "reason": f"bad result: {exc}"}
        frame = pd.DataFrame(rows, columns=comparison.COMPARISON_COLUMNS)
        entries = _entries_that_matter(name, job, ref_dir, ref)
        for check in CHECKS:
            verdict = comparison.verdict(check, comparison.CHECK_ROWS[check](frame), info,
                                         entries)
            cells.append({"backend": name, "probe": label, "feature": job.probe.feature,
                          "dtype": dtype, **verdict})
    return cells


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
