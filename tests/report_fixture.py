"""A plausible run directory for the report tests, written as real NPZ and JSON files, and
tabulated by the real comparison (suite.compare.comparison), as a finished run would be.

A tiny spec (4 -> 8 relu -> 3 softmax, Adam, 12 steps in 2 epochs) and five backends next
to the NumPy reference, one for each verdict:

    torch     pass on all checks (some differences exactly zero)
    keras     known difference keras-adam-epsilon: update from step 0, trajectory later
              (its arrays agree with the variant reference numpy~keras to 1e-7)
    myplugin  fail: its dense_1/kernel drifts out of the trajectory tolerance at step 7
    jax       error: the worker timed out (no arrays, no rows in comparison.csv)
    mlx       unsupported: it declared a feature of the spec unsupported

The arrays are synthetic (the reference's, nudged by a set relative error per backend,
step and tensor), so that report tests never run workers. The run has no noise run, as
runs written before measured noise have none: it is judged by the fixed tolerances.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from suite import record, rundir
from suite.compare import session
from suite.compare.noise import FIXED_TOLERANCES
from suite.compare.plan import RecordPlan, Task
from suite.files import write_json
from suite.record_policy import Policy
from suite.rundir import variant_name
from suite.spec import from_dict

RUN_ID = "20261124-193000-tiny-mlp"
STEPS, EPOCHS, BATCH = 12, 2, 16
SPEC = {
    "name": "tiny-mlp", "input_dim": 4,
    "layers": [{"units": 8, "activation": "relu"},
               {"units": 3, "activation": "softmax", "kernel_regularizer": {"l2": 0.001}}],
    "loss": "sparse_categorical_crossentropy",
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "training": {"batch_size": BATCH, "epochs": EPOCHS, "seed": 0},
    "data": {"name": "blobs", "standardize": True},
}
# Relative error of each backend at step t, by kind (grad, param); None: no arrays.
PROFILES = {
    "torch": {"grad": lambda t, x: 0.0 if "bias" in x and t == 0 else 2e-7,
              "param": lambda t, x: 1e-7 * (1 + t), "loss": lambda t: 0.0 if t == 0 else 1e-7},
    "keras": {"grad": lambda t, x: 3e-7 if t == 0 else 0.5 * 3e-4 * 1.4 ** (t - 1),
              "param": lambda t, x: 3e-4 * 1.4 ** t,
              "loss": lambda t: 2e-7 if t == 0 else 0.3 * 3e-4 * 1.4 ** (t - 1)},
    "myplugin": {"grad": lambda t, x: 5e-7,
                 "param": lambda t, x: 1e-6 * 4.0 ** t if x == "dense_1/kernel" else 1e-6,
                 "loss": lambda t: 1e-7 if t == 0 else 0.05 * 1e-6 * 4.0 ** (t - 1)},
}
BACKENDS = {
    "numpy": {"role": "reference", "status": "ok", "reason": None,
              "versions": {"numpy": "2.4.6"}},
    "torch": {"role": "backend", "status": "ok", "reason": None,
              "versions": {"torch": "2.13.0"}},
    "keras": {"role": "backend", "status": "ok", "reason": None,
              "versions": {"keras": "3.15.1", "tensorflow": "2.21.0"}},
    "myplugin": {"role": "backend", "status": "ok", "reason": None,
                 "versions": {"myplugin": "0.3.1"}},
    "jax": {"role": "backend", "status": "error", "reason": "worker timed out after 600 s",
            "versions": {"jax": "0.7.2"}},
    "mlx": {"role": "backend", "status": "unsupported",
            "reason": "loss:sparse_categorical_crossentropy is not implemented",
            "versions": {"mlx": "0.29.0"}},
    variant_name("keras"): {"role": "variant", "status": "ok", "reason": None,
                            "versions": {"numpy": "2.4.6"}},
}
VARIANT = variant_name("keras")
TIMING = [  # backend, import_s, build_s, first_step_s, step_ms_median, step_ms_iqr, predict_ms
    ("numpy", 0.004, 0.0004, 0.0009, 0.21, 0.02, 0.05),
    ("torch", 1.92, 0.012, 0.0041, 0.35, 0.05, 0.09),
    ("keras", 3.41, 0.21, 0.93, 1.8, 0.3, 0.6),
    ("myplugin", 0.31, 0.02, 0.011, 0.62, 0.11, 0.2),
]


def build_run(root: Path, *, timing: str = "full", summary_for_failed: bool = True,
              status: str = "complete", legacy: bool = False) -> Path:
    """Write the run directory under ``root`` and return its path.

    ``timing``: "full", "empty" (a zero-byte timing.csv) or "missing" (no timing.csv).
    ``summary_for_failed``: whether summary.csv keeps the rows of the jax and mlx backends.
    ``legacy``: the lockstep arrays in the first format (one NPZ per kind and backend)
    instead of the record that workers write now.
    """
    run_dir = Path(root) / RUN_ID
    (run_dir / "workers").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ref = _reference(rng)
    arrays = {name: _perturbed(ref, profile, rng) for name, profile in PROFILES.items()}
    arrays["numpy"] = ref
    # keras agrees with the reference under its ledger conventions up to rounding
    arrays[VARIANT] = _perturbed(arrays["keras"], {key: (lambda *_: 1e-7) for key in
                                                   ("grad", "param", "loss")}, rng)
    np.savez(run_dir / "initial_params.npz", **ref["initial"])
    for name, found in arrays.items():
        _write_arrays(run_dir, name, found, legacy)
    entries = {}
    for name, info in BACKENDS.items():
        result = _worker_result(name, arrays.get(name))
        write_json(rundir.worker_result(run_dir, name), result)
        rundir.worker_log(run_dir, name).write_text("", encoding="utf-8")
        entries[name] = session.backend_entry(Task(name, "", info["role"]), result).to_dict()
    record = _meta(status, entries)
    write_json(run_dir / rundir.RUN_JSON, record)
    session.tabulate(run_dir, record)
    if not summary_for_failed:
        summary = pd.read_csv(run_dir / "summary.csv")
        summary[~summary.backend.isin(["jax", "mlx"])].to_csv(run_dir / "summary.csv",
                                                              index=False)
    if timing == "missing":
        (run_dir / "timing.csv").unlink()
    elif timing == "empty":
        (run_dir / "timing.csv").write_text("", encoding="utf-8")
    return run_dir


def _write_arrays(run_dir: Path, name: str, found: dict, legacy: bool) -> None:
    if legacy:
        for kind in rundir.ARRAYS:
            (run_dir / kind).mkdir(exist_ok=True)
        for kind in ("grads", "params"):
            np.savez(rundir.array_file(run_dir, kind, name), **found[kind])
        np.savez(rundir.array_file(run_dir, "outputs", name), outputs=found["outputs"])
        return
    tensors = list(dict.fromkeys(key.split("/", 1)[1] for key in found["grads"]))
    # small shards, so that a run of a few steps still spans several files
    writer = record.Writer(rundir.record_dir(run_dir, name), tensors, Policy(), STEPS,
                           shard_bytes=1024)
    writer.outputs(found["outputs"])
    for step in range(STEPS):
        writer.add(step, {t: found["grads"][f"{step}/{t}"] for t in tensors},
                   {t: found["params"][f"{step}/{t}"] for t in tensors})
    writer.close()


def _reference(rng: np.random.Generator) -> dict:
    """Reference arrays: initial params, a gradient and updated params per step, losses."""
    shapes = {"dense_0/kernel": (4, 8), "dense_0/bias": (8,), "dense_1/kernel": (8, 3),
              "dense_1/bias": (3,)}
    params = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in shapes.items()}
    initial, grads, after = dict(params), {}, {}
    for t in range(STEPS):
        for k, s in shapes.items():
            g = rng.normal(0, 0.2 * np.exp(-t / 8), s).astype(np.float32)
            params[k] = params[k] - np.float32(0.01) * np.sign(g)
            grads[f"{t}/{k}"], after[f"{t}/{k}"] = g, params[k].copy()
    loss = 1.1 * np.exp(-0.12 * np.arange(STEPS)) + 0.02 * rng.random(STEPS)
    outputs = rng.dirichlet(np.ones(3), size=BATCH).astype(np.float32)
    return {"initial": initial, "grads": grads, "params": after, "loss": loss,
            "outputs": outputs}


def _nudge(a: np.ndarray, rel: float, rng: np.random.Generator) -> np.ndarray:
    """``a`` moved by exactly ``rel`` relative L2 error in a random direction."""
    if rel == 0.0:
        return a.copy()
    direction = rng.normal(size=a.shape)
    out = a + rel * np.linalg.norm(a) * direction / np.linalg.norm(direction)
    return out.astype(a.dtype)


def _perturbed(ref: dict, profile: dict, rng: np.random.Generator) -> dict:
    found = {"initial": ref["initial"], "outputs": _nudge(ref["outputs"], 1e-7, rng)}
    for kind, key in (("grads", "grad"), ("params", "param")):
        found[kind] = {name: _nudge(a, profile[key](int(name.split("/")[0]),
                                                    name.split("/", 1)[1]), rng)
                       for name, a in ref[kind].items()}
    found["loss"] = ref["loss"] * (1 + np.array([profile["loss"](t) for t in range(STEPS)]))
    return found


def _worker_result(name: str, found: dict | None) -> dict:
    """workers/<name>.json as the compare worker writes it."""
    info = BACKENDS[name]
    result = {"backend": name, "status": info["status"], "reason": info["reason"],
              "versions": info["versions"], "runtime": {}, "wall_s": 1.0}
    if found is None:
        return result
    per_epoch = STEPS // EPOCHS
    result["lockstep"] = {"status": "ok", "reason": None, "seconds": 0.8, "train_s": 0.5,
                          "export_s": 0.2, "losses": [float(v) for v in found["loss"]],
                          "probe_losses": [float(v) for v in found["loss"]],
                          "epochs": [t // per_epoch for t in range(STEPS)],
                          "steps_planned": STEPS}
    timed = {row[0]: row[1:] for row in TIMING}
    if name in timed:
        imp, build, first, med, iqr, pred = timed[name]
        result["import_s"] = imp
        result["timing"] = {"status": "ok", "build_s": build, "first_step_s": first,
                            "step_ms_median": med, "step_ms_iqr": iqr,
                            "samples_per_s": BATCH / (med / 1e3), "predict_ms": pred,
                            "steps_timed": 200, "batch_size": BATCH}
    return result


def _meta(status: str, backends: dict[str, dict]) -> dict:
    return {
        "suite_version": "0.1.0", "run": RUN_ID, "created": "2026-11-24T19:30:00+00:00",
        "status": status, "spec": from_dict(SPEC).to_dict(),
        "data": {"name": "blobs", "source": "synthetic", "n_samples": 96, "n_features": 4,
                 "target_kind": "class_index", "n_outputs": 3, "n_classes": 3,
                 "standardized": True, "sha256": "ab12cd34"},
        "seed": 0, "dtype": "float32", "device": "cpu", "threads": 2, "steps": STEPS,
        # every step of the two-layer net's 4*8+8+8*3+3 float32 parameters, twice a step
        "record": RecordPlan(Policy(), STEPS, len(backends), 2 * 67 * 4, 1 << 30).to_dict(),
        "environment": {"python": "3.11.7", "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
                        "cpu": "AMD EPYC 7B13", "cpu_count": 2, "numpy": "2.4.6"},
        "backends": backends, "ledger": [], "tolerances": FIXED_TOLERANCES["float32"],
    }
