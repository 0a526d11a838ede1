"""A plausible run directory for the report tests, written as real CSV, NPZ and JSON files.

A tiny spec (4 -> 8 relu -> 3 softmax, Adam, 12 steps in 2 epochs) and five backends next
to the NumPy reference, one for each verdict:

    torch     pass on all checks (some differences exactly zero)
    keras     known difference keras-adam-epsilon: update from step 0, trajectory later
    myplugin  fail: its dense_1/kernel drifts out of the trajectory tolerance at step 7
    jax       error: the worker timed out (no arrays, no rows in comparison.csv)
    mlx       unsupported: it declared a feature of the spec unsupported

The arrays are synthetic but consistent: comparison.csv is computed from the NPZ files,
and summary.csv from comparison.csv, selecting and judging rows the way
suite/comparison.py does (kept separate so that report tests never run workers).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from suite.spec import from_dict

RUN_ID = "20261124-193000-tiny-mlp"
STEPS, EPOCHS, BATCH = 12, 2, 16
TOLERANCES = {"step": 1e-4, "trajectory": 1e-2, "atol": 1e-6}
TENSORS = ("dense_0/kernel", "dense_0/bias", "dense_1/kernel", "dense_1/bias")
LEDGER = {
    "id": "keras-adam-epsilon", "title": "Adam epsilon placement", "backends": ["keras"],
    "features": ["optimizer:adam"], "reference": "p -= lr * m_hat / (sqrt(v_hat) + eps)",
    "backend": "p -= lr * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)",
    "source": "keras/src/optimizers/adam.py", "applied_to": ["keras"],
}
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
    "numpy~keras-adam-epsilon": {"role": "variant", "status": "ok", "reason": None,
                                 "versions": {"numpy": "2.4.6"}},
}
TIMING = [  # backend, import_s, build_s, first_step_s, step_ms_median, step_ms_iqr, predict_ms
    ("numpy", 0.004, 0.0004, 0.0009, 0.21, 0.02, 0.05),
    ("torch", 1.92, 0.012, 0.0041, 0.35, 0.05, 0.09),
    ("keras", 3.41, 0.21, 0.93, 1.8, 0.3, 0.6),
    ("myplugin", 0.31, 0.02, 0.011, 0.62, 0.11, 0.2),
]


def build_run(root: Path, *, timing: str = "full", summary_for_failed: bool = True,
              status: str = "complete") -> Path:
    """Write the run directory under ``root`` and return its path.

    ``timing``: "full", "empty" (a zero-byte timing.csv) or "missing" (no timing.csv).
    ``summary_for_failed``: whether summary.csv has rows for the jax and mlx backends.
    """
    run_dir = Path(root) / RUN_ID
    for sub in ("grads", "params", "outputs", "workers"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ref = _reference(rng)
    arrays = {name: _perturbed(ref, profile, rng) for name, profile in PROFILES.items()}
    arrays["numpy"] = ref
    arrays["numpy~keras-adam-epsilon"] = _perturbed(ref, PROFILES["keras"], rng)
    np.savez(run_dir / "initial_params.npz", **ref["initial"])
    for name, found in arrays.items():
        for kind in ("grads", "params"):
            np.savez(run_dir / kind / f"{name}.npz", **found[kind])
        np.savez(run_dir / "outputs" / f"{name}.npz", outputs=found["outputs"])
    comparison = _comparison(arrays, rng)
    comparison.to_csv(run_dir / "comparison.csv", index=False)
    _losses(arrays).to_csv(run_dir / "losses.csv", index=False)
    summary = _summary(comparison, summary_for_failed)
    summary.to_csv(run_dir / "summary.csv", index=False)
    _write_timing(run_dir / "timing.csv", timing)
    for name in BACKENDS:
        (run_dir / "workers" / f"{name}.log").write_text("", encoding="utf-8")
    (run_dir / "run.json").write_text(json.dumps(_meta(status, timing), indent=2) + "\n",
                                      encoding="utf-8")
    return run_dir


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


def _row(name, step, kind, tensor, mine, ref, variant) -> dict:
    mine, ref = np.asarray(mine, np.float64), np.asarray(ref, np.float64)
    rel = float(np.linalg.norm(mine - ref) / max(np.linalg.norm(ref), 1e-30))
    tol = TOLERANCES["step"] if step == 0 else TOLERANCES["trajectory"]
    max_abs = float(np.max(np.abs(mine - ref)))
    var = np.nan if variant is None else float(
        np.linalg.norm(mine - variant) / max(np.linalg.norm(variant), 1e-30))
    return {"backend": name, "step": step, "kind": kind, "tensor": tensor,
            "max_abs_diff": max_abs, "rel_l2_error": rel, "tolerance": tol,
            "within": rel <= tol or max_abs <= TOLERANCES["atol"], "variant_rel_l2_error": var}


def _comparison(arrays: dict, rng: np.random.Generator) -> pd.DataFrame:
    ref, rows = arrays["numpy"], []
    for name in PROFILES:
        mine = arrays[name]
        # keras matches the ledger variant of the reference up to rounding
        twin = _perturbed(mine, {k: (lambda *_: 1e-7) for k in ("grad", "param", "loss")},
                          rng) if name == "keras" else None

        def variant(key, index, twin=twin):
            return None if twin is None else twin[key][index]

        rows.append(_row(name, 0, "output", "outputs", mine["outputs"], ref["outputs"],
                         variant("outputs", slice(None))))
        for t in range(STEPS):
            rows.append(_row(name, t, "loss", "loss", mine["loss"][t], ref["loss"][t],
                             variant("loss", t)))
            for kind, key in (("grad", "grads"), ("param", "params")):
                for tensor in TENSORS:
                    k = f"{t}/{tensor}"
                    rows.append(_row(name, t, kind, tensor, mine[key][k], ref[key][k],
                                     variant(key, k)))
    return pd.DataFrame(rows)


CHECK_ROWS = {  # as suite/comparison.py selects them
    "forward": lambda c: c["kind"] == "output",
    "loss": lambda c: (c["kind"] == "loss") & (c["step"] == 0),
    "gradients": lambda c: (c["kind"] == "grad") & (c["step"] == 0),
    "update": lambda c: (c["kind"] == "param") & (c["step"] == 0),
    "trajectory": lambda c: (c["kind"] != "output") & (c["step"] > 0),
}


def _summary(comparison: pd.DataFrame, for_failed: bool) -> pd.DataFrame:
    rows = []
    for name, info in BACKENDS.items():
        if info["role"] != "backend":
            continue
        for check, select in CHECK_ROWS.items():
            mine = comparison[(comparison["backend"] == name) & select(comparison)]
            if mine.empty:
                if for_failed:
                    rows.append({"backend": name, "check": check, "verdict": info["status"],
                                 "reason": info["reason"]})
                continue
            rows.append({"backend": name, "check": check, **_verdict(mine)})
    return pd.DataFrame(rows, columns=["backend", "check", "verdict", "step", "tensor",
                                       "rel_l2_error", "tolerance", "ledger", "reason"])


def _verdict(rows: pd.DataFrame) -> dict:
    worst = rows.loc[rows["rel_l2_error"].idxmax()]
    out = rows[~rows["within"]]
    found = {"verdict": "pass", "rel_l2_error": worst["rel_l2_error"],
             "tolerance": worst["tolerance"]}
    if out.empty:
        return found
    first = out.sort_values("step", kind="stable").iloc[0]
    known = bool(((rows["variant_rel_l2_error"] <= rows["tolerance"]) | rows["within"]).all())
    found.update(step=int(first["step"]), tensor=f"{first['kind']} {first['tensor']}")
    if known:
        found.update(verdict="known difference", ledger=LEDGER["id"],
                     reason="agrees with the reference under the ledger's conventions")
    else:
        found.update(verdict="fail", reason=(
            f"{first['kind']} {first['tensor']} differs by {first['rel_l2_error']:.3g} "
            f"(relative L2) at step {int(first['step'])}, tolerance {first['tolerance']:.3g}"))
    return found


def _losses(arrays: dict) -> pd.DataFrame:
    per_epoch = STEPS // EPOCHS
    rows = [{"backend": name, "epoch": t // per_epoch, "step": t, "loss": float(loss)}
            for name, found in arrays.items() if "~" not in name
            for t, loss in enumerate(found["loss"])]
    return pd.DataFrame(rows)


def _write_timing(path: Path, how: str) -> None:
    if how == "missing":
        return
    if how == "empty":
        path.write_text("", encoding="utf-8")
        return
    rows = [{"backend": name, "threads": 2, "import_s": imp, "build_s": build,
             "first_step_s": first, "step_ms_median": med, "step_ms_iqr": iqr,
             "samples_per_s": BATCH / (med / 1e3), "predict_ms": pred, "steps_timed": 200,
             "status": "ok", "reason": None}
            for name, imp, build, first, med, iqr, pred in TIMING]
    rows.append({"backend": "jax", "threads": 2, "status": "error",
                 "reason": "not timed: the lockstep run failed"})
    pd.DataFrame(rows).to_csv(path, index=False)


def _meta(status: str, timing: str) -> dict:
    backends = {}
    for name, info in BACKENDS.items():
        timed = timing == "full" and info["status"] == "ok" and "~" not in name
        backends[name] = {**info, "lockstep_s": 0.8 if info["status"] == "ok" else None,
                          "timing_status": "ok" if timed else "off", "timing_reason": None}
    return {
        "suite_version": "0.1.0", "run": RUN_ID, "created": "2026-11-24T19:30:00+00:00",
        "status": status, "spec": from_dict(SPEC).to_dict(),
        "data": {"name": "blobs", "source": "synthetic", "n_samples": 96, "n_features": 4,
                 "target_kind": "class_index", "n_outputs": 3, "n_classes": 3,
                 "standardized": True, "sha256": "ab12cd34"},
        "seed": 0, "dtype": "float32", "device": "cpu", "threads": 2, "steps": STEPS,
        "environment": {"python": "3.11.7", "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
                        "cpu": "AMD EPYC 7B13", "cpu_count": 2, "numpy": "2.4.6"},
        "backends": backends, "ledger": [LEDGER], "tolerances": TOLERANCES,
    }
