"""The conformance battery in one process: ``python -m suite.kit.worker PLAN_DIR OUT_DIR``.

PLAN_DIR holds the probes (plan.json: spec of every job; plan.npz: each job's data and
initial parameters). OUT_DIR/task.json names the backend and the runs to make: a run is
one job with the backend built with given options (the reference runs a job a second
time under a backend's ledger conventions). Each run writes OUT_DIR/<run>/result.json
and its lockstep record (record/) as it goes, so a crash or a timeout loses
only the runs not yet made. Progress goes to stdout, one JSON object a line.

Worker side: standard library and NumPy only.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Backend
from suite import registry
from suite.batches import epoch_orders
from suite.compare.worker import Job, run_lockstep
from suite.files import write_json
from suite.spec import from_dict
from suite.worker import describe_exception, emit, serve, unsupported_features


def read_jobs(folder: Path, device: str) -> dict[str, Job]:
    meta = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
    arrays = np.load(folder / "plan.npz")
    jobs = {}
    for job_id, job in meta["jobs"].items():
        spec = from_dict(job["spec"], source=f"kit job {job_id}")
        prefix = f"{job_id}/params/"
        params = {k[len(prefix):]: arrays[k] for k in arrays.files if k.startswith(prefix)}
        x, y = arrays[f"{job_id}/x"], arrays[f"{job_id}/y"]
        jobs[job_id] = Job(spec, x, y, epoch_orders(len(x), spec.training), params, device)
    return jobs


def run_one(backend: Backend, job: Job, out: Path) -> dict[str, Any]:
    """One job: unsupported, or the lockstep run; never raises."""
    out.mkdir(parents=True, exist_ok=True)
    missing = unsupported_features(backend, job.spec, job.device)
    if missing:
        return {"status": "unsupported", "reason": "; ".join(missing)}
    try:
        lockstep = run_lockstep(backend, job, out)
    except Exception as exc:  # build() or predict() failed before the first step
        traceback.print_exc()
        return {"status": "error", "reason": describe_exception(exc)}
    return {"status": lockstep["status"], "reason": lockstep["reason"], "lockstep": lockstep}


def run(plan_dir: Path, out: Path) -> dict[str, Any]:
    meta = json.loads((plan_dir / "plan.json").read_text(encoding="utf-8"))
    task = json.loads((out / "task.json").read_text(encoding="utf-8"))
    jobs = read_jobs(plan_dir, meta["device"])
    info = task["backend"]
    cls = registry.import_target(info["target"])
    t0 = time.perf_counter()
    backends: dict[str, Backend] = {}
    versions: dict[str, str] = {}
    statuses: dict[str, str] = {}
    for done, entry in enumerate(task["runs"]):
        options = entry.get("options", {})
        key = json.dumps(options, sort_keys=True)
        if key not in backends:
            backends[key] = cls(**options)
            backends[key].load(meta["threads"])
            versions = backends[key].versions()
        folder = out / entry["run"]
        result = run_one(backends[key], jobs[entry["job"]], folder)
        write_json(folder / "result.json", result)
        statuses[entry["run"]] = result["status"]
        emit(phase="kit", step=done + 1, total=len(task["runs"]), run=entry["run"])
    return {"backend": info["name"], "status": "ok", "reason": None, "versions": versions,
            "seconds": time.perf_counter() - t0, "runs": statuses}


def main(argv: list[str] | None = None) -> int:
    return serve(run, "suite.kit.worker", argv)


if __name__ == "__main__":
    sys.exit(main())
