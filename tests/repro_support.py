"""Reproducers in tests: a state made in-process by the worker side's own code
(suite.compare.repro_state), its script written as a run writes it, run in the backend's
environment, and the backend's own values at the same state to hold the script's to.

The cross-check (:func:`backend_values` against the script's ``--save``) is what makes a
reproducer trustworthy: the script, written apart from the backend, must compute what the
backend computed, bit for bit, or it reproduces something else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from suite import data, envs, registry
from suite import spec as specs
from suite.batches import epoch_orders
from suite.compare import repro, repro_state
from suite.compare.worker import Job
from suite.initializers import initial_params
from suite.spec import Spec

ROOT = Path(__file__).resolve().parents[1]


def job_of(spec: Spec) -> Job:
    prepared = data.load_for(spec)
    dtype = spec.training.dtype
    params = {k: v.astype(dtype) for k, v in initial_params(spec).items()}
    return Job(spec, prepared.x, prepared.y, epoch_orders(len(prepared.x), spec.training),
               params)


def make_state(spec: Spec | str, backend: str, part: str, tensor: str, step: int,
               folder: Path, variant: dict[str, Any] | None = None,
               ledger: list[str] = ()) -> Path:
    """``folder/<backend>.npz`` and ``folder/<backend>.py``, as a run writes them."""
    spec = specs.builtin(spec) if isinstance(spec, str) else spec
    cls = registry.import_target(registry.resolve(backend))
    target = repro.Target(backend, part, tensor, step, 0.0, 1.0, tuple(ledger))
    order = target.order(variant, "test", spec.name, spec.training.dtype, list(ledger),
                         cls().repro_settings())
    reference = registry.import_target(registry.resolve("numpy"))
    state = folder / f"{backend}.npz"
    repro_state.write_state(reference, job_of(spec), order, 2, state)
    repro.write_script(cls.repro, folder / f"{backend}.py")
    return state


def python_of(backend: str) -> str:
    """The interpreter of ``backend``'s environment (its own, built on first use)."""
    env = registry.environment_of(backend)
    return str(envs.ensure(env)) if env is not None else sys.executable


def run_script(backend: str, folder: Path, *args: str, cwd: Path | None = None
               ) -> subprocess.CompletedProcess:
    """``python <backend>.py ARGS`` from ``cwd`` (default: the folder's parent, as a user
    runs ``python repro/<backend>.py``), with nothing of the suite on its path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PYTHONNOUSERSITE"] = "1"
    script = folder / f"{backend}.py"
    return subprocess.run([python_of(backend), str(script), *args], cwd=cwd or folder.parent,
                          env=env, capture_output=True, text=True, timeout=600, check=False)


def script_json(backend: str, folder: Path) -> dict[str, Any]:
    done = run_script(backend, folder, "--json", "--save", str(folder / "computed.npz"))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def saved(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "computed.npz") as stored:
        return {key: stored[key] for key in stored.files}


def backend_values(backend: str, state_path: Path) -> dict[str, np.ndarray]:
    """The backend's own tensors at the state, named as the script names them, computed in
    the backend's environment by its Trainer (set_params, loss_and_grads, apply_grads)."""
    code = _BACKEND_VALUES
    out = state_path.with_name("backend.npz")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run([python_of(backend), "-c", code, backend, str(state_path), str(out)],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as stored:
        return {key: stored[key] for key in stored.files}


_BACKEND_VALUES = """
import json
import sys

import numpy as np

from suite import registry
from suite.spec import from_dict

name, state, out = sys.argv[1:4]
with np.load(state) as stored:
    arrays = {key: stored[key] for key in stored.files}
meta = json.loads(str(arrays.pop("meta")))
spec = from_dict(meta["suite_spec"])
params = {k[len("params/"):]: v for k, v in arrays.items() if k.startswith("params/")}
backend = registry.import_target(registry.resolve(name))()
backend.load(threads=meta["threads"])
trainer = backend.build(spec, params, meta["dtype"], "cpu")
values = {}
if meta["part"] == "optimizer":
    for j in range(meta["step"] + 1):
        trainer.set_params(params)
        trainer.apply_grads({k: arrays["grads/%d/%s" % (j, k)] for k in params})
    after = trainer.get_params()
    values = {"update/" + k: after[k].astype(np.float64) - params[k] for k in params}
else:
    trainer.set_params(params)
    loss, grads = trainer.loss_and_grads(arrays["x"], arrays["y"])
    values = {"loss": np.float64(loss), **{"grad/" + k: v for k, v in grads.items()}}
np.savez(out, **values)
"""


def assert_same(script: dict[str, np.ndarray], backend: dict[str, np.ndarray]) -> None:
    """The script computed what the backend computed, bit for bit."""
    assert set(script) == set(backend)
    for key in backend:
        np.testing.assert_array_equal(np.asarray(script[key], np.float64),
                                      np.asarray(backend[key], np.float64), err_msg=key)


def matrix(backends: list[str], cases: list[tuple], everyday: set[tuple[str, int]]) -> list:
    """Every backend with every case, as pytest params; the pairs not in ``everyday``
    ((backend, case index)) run in `make conformance` only (full_battery): each is two
    framework processes, and `make test` keeps one or two a framework part."""
    import pytest

    return [pytest.param(backend, *case, id=f"{backend}-{i}",
                         marks=() if (backend, i) in everyday else pytest.mark.full_battery)
            for backend in backends for i, case in enumerate(cases)]
