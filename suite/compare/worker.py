"""One backend of a comparison in its own process: ``python -m suite.compare.worker PLAN OUT``.

Reads the plan the session wrote (plan.json: spec and settings; plan.npz: data, batch
order, initial parameters) and its task (OUT/task.json: which backend, and its mode: a
parts run, suite.compare.parts, for attribution, or else the usual), runs the timing
run and then the lockstep run (again, from a fresh build, for each --repeat: into
OUT/repeat-<n>/), and writes its results as files: result.json, and the
lockstep record (OUT/record/, see suite.record) while it trains. Progress goes to stdout
as one JSON object a line; diagnostics go to stderr.

Worker side: standard library and NumPy only, so it runs in other environments too.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Backend, Params, dense_names
from suite import batches, record, registry
from suite.compare import parts, repro_state
from suite.errors import DiskFull
from suite.record_policy import EVERY_STEP, Policy
from suite.spec import Spec, from_dict
from suite.worker import (
    describe_exception,
    emit,
    serve,
    step_statistics,
    unsupported_features,
)


def check_params(params: Params, expected: dict[str, tuple[int, ...]], what: str) -> None:
    """Raise if a backend returned other names or shapes than the canonical ones."""
    if set(params) != set(expected):
        extra = sorted(set(params) - set(expected))
        missing = sorted(set(expected) - set(params))
        raise ValueError(f"{what}: wrong parameter names (unexpected {extra}, missing {missing})")
    for name, shape in expected.items():
        got = tuple(np.shape(params[name]))
        if got != shape:
            raise ValueError(f"{what}: {name} has shape {got}, expected {shape}")


@dataclass
class Job:
    """What one lockstep run needs: a spec, its data, batch order and initial parameters."""

    spec: Spec
    x: np.ndarray
    y: np.ndarray
    orders: np.ndarray  # row order of each epoch, shape (epochs, rows)
    params: Params
    device: str = "cpu"

    @property
    def dtype(self) -> str:
        return self.spec.training.dtype

    def steps(self) -> list[batches.Step]:
        t = self.spec.training
        return list(batches.steps(self.orders, t.batch_size, t.max_steps))

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(self.params[name].shape)
                for name in dense_names(len(self.spec.layers))}


class Plan(Job):
    """The shared plan (PLAN_DIR) and this worker's task (OUT_DIR/task.json)."""

    def __init__(self, folder: Path, out: Path):
        self.meta = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
        task = json.loads((out / "task.json").read_text(encoding="utf-8"))
        self.meta["backend"] = task["backend"]
        self.meta["timing"]["enabled"] &= task["timing"]["enabled"]
        self.meta["repeat"] = int(task.get("repeat", 1))
        self.meta["mode"] = task.get("mode", "lockstep")  # or "parts" (attribution)
        self.meta["reference"] = task.get("reference")  # the reference's target, for parts
        self.meta["variant"] = task.get("variant")  # the ledger variant's options, for parts
        self.meta["repro"] = task.get("repro")  # a repro run's order (suite.compare.repro)
        arrays = np.load(folder / "plan.npz")
        params = {k[len("params/"):]: arrays[k] for k in arrays.files if k.startswith("params/")}
        super().__init__(from_dict(self.meta["spec"], source="plan"), arrays["x"], arrays["y"],
                         arrays["orders"], params, self.meta.get("device", "cpu"))


def run_timing(backend: Backend, plan: Plan) -> dict[str, Any]:
    settings = plan.meta["timing"]
    t0 = time.perf_counter()
    trainer = backend.build(plan.spec, plan.params, plan.dtype, plan.device)
    build_s = time.perf_counter() - t0
    size = plan.spec.training.batch_size
    full = [s.rows for s in plan.steps() if len(s.rows) == size][: settings["distinct_batches"]]
    if not full:  # fewer rows than one batch: time the partial batch
        full = [plan.steps()[0].rows]
    data = [(plan.x[rows], plan.y[rows]) for rows in full]
    warmup, measured = settings["warmup"], settings["steps"]
    emit(phase="timing", step=0, total=warmup + measured)
    times = trainer.time_steps(data, warmup + measured)
    if len(times) != warmup + measured:
        raise ValueError(f"time_steps returned {len(times)} timings, expected {warmup + measured}")
    steady = np.asarray(times[warmup:]) * 1e3
    predict_times = []
    for _ in range(settings.get("predict_repeats", 10)):
        t0 = time.perf_counter()
        trainer.predict(data[0][0])
        predict_times.append(time.perf_counter() - t0)
    return {
        "status": "ok",
        "build_s": build_s,
        "first_step_s": float(times[0]),
        **step_statistics(steady, len(data[0][0])),
        "predict_ms": float(np.median(predict_times) * 1e3),
        "steps_timed": measured,
        "batch_size": int(len(data[0][0])),
        "step_ms": [float(t) for t in steady],
    }


def run_lockstep(backend: Backend, plan: Job, out: Path,
                 policy: Policy = EVERY_STEP) -> dict[str, Any]:
    """Every step: loss and gradients (no update), then one update, then the parameters.

    The steps that ``policy`` records keep their gradients and parameters, written to
    ``out/record/`` in shards while the run goes (suite.record); every step keeps its loss.
    """
    trainer = backend.build(plan.spec, plan.params, plan.dtype, plan.device)
    expected = plan.expected_shapes()
    steps = plan.steps()
    writer = record.Writer(out / "record", list(expected), policy, len(steps))
    writer.outputs(np.asarray(trainer.predict(plan.x[steps[0].rows])))
    losses, probe_losses, epochs = [], [], []
    status, reason = "ok", None
    every = max(1, len(steps) // 50)
    # The lockstep run's own cost, apart from training: the extra gradient pass, reading
    # gradients and parameters out of the framework, and writing the record.
    train_s = export_s = 0.0
    t0 = time.perf_counter()
    try:
        for step in steps:
            xb, yb = plan.x[step.rows], plan.y[step.rows]
            started = time.perf_counter()
            probe, grads = trainer.loss_and_grads(xb, yb)
            check_params(grads, expected, f"gradients at step {step.index}")
            trained = time.perf_counter()
            loss = float(trainer.train_step(xb, yb))
            exported = time.perf_counter()
            train_s += exported - trained
            export_s += trained - started
            params = trainer.get_params()
            check_params(params, expected, f"parameters after step {step.index}")
            if writer.wants(step.index):
                writer.add(step.index, grads, params)
            export_s += time.perf_counter() - exported
            losses.append(loss)
            probe_losses.append(float(probe))
            epochs.append(step.epoch)
            bad = _first_non_finite(loss, grads, params)
            if bad:
                status, reason = "error", f"non-finite {bad} at step {step.index}"
                if not writer.wants(step.index):  # the step that broke is kept
                    writer.add(step.index, grads, params)
                break
            if step.index % every == 0 or step.index == len(steps) - 1:
                emit(phase="lockstep", step=step.index + 1, total=len(steps))
    except DiskFull:
        raise  # the worker's one line: this backend's reason
    except Exception as exc:
        traceback.print_exc()
        status = "error"
        reason = f"{describe_exception(exc)} (at step {len(losses)})"
    seconds = time.perf_counter() - t0
    writer.close()
    return {"status": status, "reason": reason, "seconds": seconds, "train_s": train_s,
            "export_s": export_s, "losses": losses,
            "probe_losses": probe_losses, "epochs": epochs, "steps_planned": len(steps),
            "steps_recorded": sum(len(s["steps"]) for s in writer.shards)}


def _first_non_finite(loss: float, grads: Params, params: Params) -> str | None:
    if not math.isfinite(loss):
        return "loss"
    for what, arrays in (("gradient", grads), ("parameter", params)):
        for name, value in arrays.items():
            if not np.all(np.isfinite(value)):
                return f"{what} {name}"
    return None


def run(plan_dir: Path, out: Path) -> dict[str, Any]:
    plan = Plan(plan_dir, out)
    info = plan.meta["backend"]
    result: dict[str, Any] = {"backend": info["name"], "status": "ok", "reason": None}
    t0 = time.perf_counter()
    backend = registry.import_target(info["target"])(**info.get("options", {}))
    backend.load(plan.meta["threads"])
    result["import_s"] = time.perf_counter() - t0
    result["versions"] = backend.versions()
    result["runtime"] = backend.runtime_settings()
    missing = unsupported_features(backend, plan.spec, plan.device)
    if missing:
        result.update(status="unsupported", reason="; ".join(missing))
        return result
    policy = Policy.from_dict(plan.meta.get("record"))
    if plan.meta["mode"] == "repro":  # a reproducer's state: the reference to its step
        order = plan.meta["repro"]
        state = out / "repro" / f"{order['meta']['backend']}.npz"
        result["repro"] = repro_state.write_state(registry.import_target(info["target"]),
                                                  plan, order, plan.meta["threads"], state)
        return result
    if plan.meta["mode"] == "parts":  # attribution: the parts alone (suite.compare.parts)
        reference = registry.import_target(plan.meta["reference"])
        try:
            result["parts"] = parts.run_parts(backend, reference, plan,
                                              plan.meta["threads"], emit,
                                              plan.meta.get("variant"))
        except NotImplementedError as exc:
            result.update(status="unsupported", reason=f"no attribution: {exc}")
        return result
    if plan.meta["timing"]["enabled"]:
        try:
            result["timing"] = run_timing(backend, plan)
        except Exception as exc:
            traceback.print_exc()
            result["timing"] = {"status": "error", "reason": describe_exception(exc)}
    result["lockstep"] = run_lockstep(backend, plan, out, policy)
    if result["lockstep"]["status"] != "ok":
        result.update(status="error", reason=result["lockstep"]["reason"])
        return result
    # --repeat: the same lockstep run again from a fresh build, each into its own folder,
    # for suite.compare.determinism to set against the first
    result["repeats"] = []
    for again in range(2, plan.meta.get("repeat", 1) + 1):
        lockstep = run_lockstep(backend, plan, out / f"repeat-{again}", policy)
        result["repeats"].append({key: lockstep[key] for key in
                                  ("status", "reason", "losses", "steps_recorded")})
    return result


def main(argv: list[str] | None = None) -> int:
    return serve(run, "suite.compare.worker", argv)


if __name__ == "__main__":
    sys.exit(main())
