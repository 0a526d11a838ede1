"""What a compare run will do: its options, the workers to run, and the plan they read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from suite import catalogue, data, envs, ledger, registry
from suite.batches import epoch_orders
from suite.files import save_npz, write_json
from suite.rundir import REFERENCE, BackendEntry, variant_name
from suite.spec import Spec
from suite.validation import (
    Constraint,
    one_of,
    positive_int,
    positive_seconds,
    validate_fields,
)


@dataclass
class Options:
    """How ``suite compare`` runs; checked on creation (the CLI and the API alike)."""

    backends: list[str] | None = None  # None: every installed backend
    device: str = "cpu"
    threads: int | None = None  # None: every core
    timeout_s: float = 600.0  # per backend
    timing: bool = True
    timing_warmup: int = 10
    timing_steps: int = 50
    out: Path | None = None
    root: Path = Path("reports")
    force: bool = False

    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "device": one_of(catalogue.DEVICES, "--device"),
        "threads": positive_int("--threads", optional=True),
        "timeout_s": positive_seconds("--timeout"),
        "timing_warmup": positive_int(),
        "timing_steps": positive_int("--timing-steps"),
    }

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass
class Task:
    """One worker of the run."""

    name: str
    target: str
    role: str  # "reference", "backend" or "variant"
    options: dict[str, Any] = field(default_factory=dict)
    timing: bool = True
    env: envs.EnvSpec | None = None  # None: the main environment


def plan_tasks(spec: Spec, requested: list[str] | None
               ) -> tuple[list[Task], dict[str, BackendEntry]]:
    """The workers to run (the reference first, its ledger variants last), and the
    backends left out with their run.json entries (see ``registry.select``)."""
    chosen, skipped = registry.select(requested)
    tasks = [Task(b.name, b.target, "reference" if b.name == REFERENCE else "backend",
                  env=b.env) for b in chosen]
    variants = []
    for task in tasks[1:]:
        conventions = ledger.conventions_for(spec, task.name)
        if conventions:
            variants.append(Task(variant_name(task.name), tasks[0].target, "variant",
                                 {"conventions": conventions}, timing=False))
    return tasks + variants, {name: BackendEntry("backend", "unavailable", reason)
                              for name, reason in skipped.items()}


def write_plan(folder: Path, spec: Spec, prepared: data.Prepared, params: dict,
               options: Options, threads: int) -> None:
    """plan.npz (data, every epoch's row order, initial parameters) and plan.json."""
    orders = epoch_orders(len(prepared.x), spec.training)
    arrays = {"x": prepared.x, "y": prepared.y, "orders": orders}
    arrays.update({f"params/{k}": v for k, v in params.items()})
    save_npz(folder / "plan.npz", arrays)
    write_json(folder / "plan.json", {
        "spec": spec.to_dict(), "device": options.device, "threads": threads,
        "timing": {"enabled": options.timing, "warmup": options.timing_warmup,
                   "steps": options.timing_steps, "distinct_batches": 8}})
