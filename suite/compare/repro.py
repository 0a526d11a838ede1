"""Reproducers, harness side: which backends get one, at which part and step, and the
standalone script written beside its state.

Every backend whose verdict is fail or known difference gets ``repro/<backend>.py`` and
``repro/<backend>.npz`` in the run directory: what a user attaches to a bug report
upstream. The part and step are the first the suite found outside the noise: the parts
run's finding (suite.compare.attribution), else the first check outside it (the loss or
outputs: the forward; the gradients: the backward; the update: the optimizer). A *repro
run* (suite.compare.repro_state, the reference in the main environment) writes the state;
the script is the backend's framework part (``Backend.repro``, a module such as
backends/repro/torch.py) with backends/repro/common.py inlined in place of its import.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite import ledger, registry, rundir
from suite.compare import noise
from suite.compare.noise import NOISE_FACTOR
from suite.compare.plan import Task, repro_task
from suite.compare.verdicts import Parts
from suite.processes import last_line, watch, worker_env
from suite.rundir import PartsRow, SummaryRow

if TYPE_CHECKING:
    from suite.spec import Spec

#: the line of a framework part that the shared NumPy half replaces
COMMON_IMPORT = "from backends.repro.common import State, run"
COMMON_MODULE = "backends.repro.common"
#: a lockstep check -> the part it measures
CHECK_PARTS = {"forward": "forward", "loss": "forward", "gradients": "backward",
               "update": "optimizer"}


@dataclass(frozen=True)
class Target:
    """Where a backend's reproducer starts: its part, tensor and step, and what the suite
    measured there."""

    backend: str
    part: str
    tensor: str  # "loss", or a parameter's canonical name
    step: int
    error: float
    tolerance: float
    ledger: tuple[str, ...] = ()  # the entries its verdict named

    def order(self, variant: dict[str, Any] | None, run: str, spec: str, dtype: str,
              variant_entries: list[str], settings: dict[str, Any] | None = None
              ) -> dict[str, Any]:
        """The repro run's order (suite.compare.repro_state.write_state): ``variant``, the
        options of the ledger variant (the reference under ``variant_entries``'
        conventions); ``settings``: the backend's own (``Backend.repro_settings``: a Keras
        backend's KERAS_BACKEND)."""
        baseline, noise = _runs(dtype)
        return {"part": self.part, "tensor": self.tensor, "step": self.step,
                "variant": variant,
                "meta": {**(settings or {}), "backend": self.backend, "run": run,
                         "spec": spec,
                         "baseline": baseline, "noise": noise,
                         "variant": f"the reference under the ledger's "
                                    f"{', '.join(variant_entries)}" if variant else None,
                         "ledger": list(self.ledger), "noise_factor": NOISE_FACTOR,
                         "suite_error": self.error, "tolerance": self.tolerance}}


def _runs(dtype: str) -> tuple[str, str]:
    if dtype == "float32":
        return ("the reference in float64 from the same float32 state (the exact answer)",
                "the reference in float32 (its own distance to the exact answer)")
    return ("the reference (float64)", "the reference with every sum in another order")


def target_of(checks: list[SummaryRow], first: PartsRow | None) -> Target | None:
    """A backend's reproducer start, from its verdicts and its parts run's finding (the
    first part outside the noise, explained by the ledger or not), or None where it has
    no fail or known difference (or nothing that names a part)."""
    flagged = [c for c in checks if c.verdict in ("fail", "known difference")]
    if not flagged:
        return None
    backend = flagged[0].backend
    named = tuple(dict.fromkeys(e for c in flagged for e in (c.ledger or "").split() if e))
    if first is not None:
        return Target(backend, first.part, first.tensor, first.step, first.rel_l2_error,
                      first.tolerance, named)
    for check in flagged:
        part = CHECK_PARTS.get(check.check)
        if part is None or check.step is None:
            continue
        tensor = "loss" if part == "forward" else str(check.tensor).split(" ", 1)[-1]
        return Target(backend, part, tensor, int(check.step), float(check.rel_l2_error),
                      float(check.tolerance), named)
    return None


def tasks(run_dir: Path, rows: list[SummaryRow], record: dict[str, Any], spec: Spec,
          planned: list[Task]) -> list[Task]:
    """The repro runs still to make, once the lockstep, twin and parts runs are judged
    (``rows``, the verdicts): one for each backend with a fail or known difference and a
    framework part (``Backend.repro``); run.json's ``reproducers`` says why any other has
    none."""
    by_name = {task.name: task for task in planned if task.role == "backend"}
    dtype, found, todo = spec.training.dtype, record.setdefault("reproducers", {}), []
    for name, task in by_name.items():
        parts = Parts.load(run_dir, name, dtype)
        finding = parts.finding if parts else None
        first = (finding.first or finding.explained) if finding else None
        target = target_of([r for r in rows if r.backend == name], first)
        if target is None:
            continue
        backend = registry.import_target(task.target)(**task.options)
        if not backend.repro:
            found[name] = {"status": "none", "reason": f"{name} has no reproducer: its "
                           "plug-in names no framework part (Backend.repro)"}
            continue
        conventions = ledger.conventions_for(spec, name)
        variant = noise.variant_options(dtype, conventions) if conventions else None
        order = target.order(variant, record["run"], spec.name, dtype,
                             [e.id for e in ledger.applicable(spec, name)],
                             backend.repro_settings())
        order["meta"]["twin_env"] = ledger.twin_env_for(spec, name)
        found[name] = {"status": "pending", "part": target.part, "tensor": target.tensor,
                       "step": target.step}
        todo.append(repro_task(name, planned[0].target, order))
    return [t for t in todo
            if record["backends"].get(t.name, {}).get("status", "pending") == "pending"]


def finish(run_dir: Path, record: dict[str, Any], task: Task, planned: list[Task],
           timeout_s: float) -> None:
    """After a repro run: the script beside its state, run once as a user runs it, and
    run.json's entry for it (whether it shows the difference the suite measured)."""
    name = task.repro["meta"]["backend"]
    entry = record.setdefault("reproducers", {}).setdefault(name, {})
    ran = record["backends"].get(task.name, {})
    script, state = rundir.repro_files(run_dir, name)
    if ran.get("status") != "ok" or not state.exists():
        entry.update(status="error", reason=ran.get("reason") or "its state was not written")
        return
    backend = next(t for t in planned if t.name == name)
    write_script(registry.import_target(backend.target).repro, script)
    python = str(backend.env.python) if backend.env is not None else sys.executable
    entry.update(status="ok", script=str(script.relative_to(run_dir)),
                 state=str(state.relative_to(run_dir)), bytes=state.stat().st_size,
                 command=f"{python if backend.env is not None else 'python'} "
                         f"{script.relative_to(run_dir)}")
    entry.update(check_script(python, script, record["threads"], timeout_s,
                              run_dir / "workers" / f"{task.name}-script.log"))


def check_script(python: str, script: Path, threads: int, timeout_s: float, log: Path
                 ) -> dict[str, Any]:
    """Run the written script (``--json``) with nothing of the suite on its path: does it
    run standalone, and does it show the part outside the suite's tolerance?"""
    env = {k: v for k, v in worker_env(threads).items() if k != "PYTHONPATH"}
    printed: list[dict[str, Any]] = []
    ended = watch([python, str(script), "--json"], log, env, timeout_s, printed.append)
    found = next((p for p in printed if "target" in p), None)
    if ended.timed_out or ended.code != 0 or found is None:
        why = "timed out" if ended.timed_out else \
            f"exited with code {ended.code}: {last_line(log) or 'no message'}"
        return {"status": "error", "reason": f"the script {why}"}
    shown = found["target"]
    return {"shown": shown["error"], "shown_noise": shown["noise"],
            "reproduces": bool(shown["error"] > found.get("tolerance", math.inf))}


def script_source(module: str) -> str:
    """The standalone script of a framework part ``module``: its source, with the shared
    NumPy half inlined in place of its import line."""
    source = _source(module)
    common = _source(COMMON_MODULE)
    lines = source.splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith(COMMON_IMPORT)), None)
    if at is None:
        raise ValueError(f"{module} does not import the shared half "
                         f"(expected a line starting {COMMON_IMPORT!r})")
    inlined = [f"# --- the suite's NumPy half ({COMMON_MODULE}), inlined ---",
               *_body(common), f"# --- end of {COMMON_MODULE} ---"]
    return "\n".join([*lines[:at], *inlined, *lines[at + 1:]]) + "\n"


def _body(source: str) -> list[str]:
    """A module's lines without its docstring."""
    lines = source.splitlines()
    if lines and lines[0].startswith('"""'):
        end = next(i for i, line in enumerate(lines) if i > 0 and line.endswith('"""')) \
            if not lines[0].endswith('"""') or len(lines[0]) == 3 else 0
        lines = lines[end + 1:]
    return lines


def _source(module: str) -> str:
    found = importlib.util.find_spec(module)
    if found is None or not found.origin:
        raise ValueError(f"no module {module!r} (a reproducer's framework part)")
    return Path(found.origin).read_text(encoding="utf-8")


def write_script(module: str, path: Path) -> None:
    """``repro/<backend>.py``: written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(script_source(module), encoding="utf-8")
    partial.replace(path)

