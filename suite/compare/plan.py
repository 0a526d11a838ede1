"""What a compare run will do: its options, the workers to run, and the plan they read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from suite import catalogue, data, envs, ledger, registry
from suite.batches import epoch_orders
from suite.compare import noise
from suite.compare.attribution import MODES as ATTRIBUTION_MODES
from suite.errors import UserError
from suite.files import save_npz, write_json
from suite.record_policy import Policy, fit, human_bytes, parse_policy, parse_size
from suite.rundir import (
    REFERENCE,
    BackendEntry,
    noise_name,
    parts_name,
    repro_name,
    twin_name,
    variant_name,
)
from suite.spec import Spec
from suite.validation import (
    Constraint,
    one_of,
    parses,
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
    record: str | None = None  # None: the spec's [record] steps (default auto)
    record_budget: str | None = None  # None: the spec's [record] budget (default 1GB)
    repeat: int = 1  # lockstep runs of the reference and each backend (determinism)
    attribution: str = "auto"  # which backends get a parts run (suite.compare.attribution)

    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "device": one_of(catalogue.DEVICES, "--device"),
        "threads": positive_int("--threads", optional=True),
        "timeout_s": positive_seconds("--timeout"),
        "timing_warmup": positive_int(),
        "timing_steps": positive_int("--timing-steps"),
        "repeat": positive_int("--repeat"),
        "attribution": one_of(ATTRIBUTION_MODES, "--attribution"),
        "record": parses("all, auto or first=N,every=K", parse_policy, "--record", True),
        "record_budget": parses("a size such as 500MB or 2GB", parse_size, "--record-budget",
                                True),
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    def repeats(self, task: Task) -> int:
        """How many lockstep runs ``task`` makes: the reference's and the backends' repeat,
        the ledger variants' never."""
        return self.repeat if task.role in ("reference", "backend") else 1

    def recording_runs(self, tasks: list[Task]) -> int:
        """Lockstep runs that keep a record, repeats included (for the budget)."""
        return sum(self.repeats(task) for task in tasks)


@dataclass
class Task:
    """One worker of the run."""

    name: str
    target: str
    role: str  # one of rundir.ROLES
    options: dict[str, Any] = field(default_factory=dict)
    timing: bool = True
    env: envs.EnvSpec | None = None  # None: the main environment
    environment: dict[str, str] = field(default_factory=dict)  # variables the worker gets
    variant: dict[str, Any] | None = None  # a parts run's ledger variant (its options)
    repro: dict[str, Any] | None = None  # a repro run's order (suite.compare.repro)

    def twin(self, environment: dict[str, str]) -> Task:
        """This backend's twin: its lockstep run again with ``environment`` (a ledger
        entry's switches, suite.ledger.twin_env_for), never timed."""
        return Task(twin_name(self.name), self.target, "twin", dict(self.options),
                    timing=False, env=self.env, environment=dict(environment))

    def parts(self, variant: dict[str, Any] | None = None) -> Task:
        """The parts run of this backend (attribution): the same framework, environment
        and options, never timed; ``variant``, the options of its ledger variant, is fed
        the same inputs."""
        return Task(parts_name(self.name), self.target, "parts", dict(self.options),
                    timing=False, env=self.env, variant=variant)


def repro_task(backend: str, reference: str, order: dict[str, Any]) -> Task:
    """The reference run, in the main environment, that writes ``backend``'s reproducer's
    state (suite.compare.repro_state), never timed."""
    return Task(repro_name(backend), reference, "repro", timing=False, repro=order)


def plan_tasks(spec: Spec, requested: list[str] | None
               ) -> tuple[list[Task], dict[str, BackendEntry]]:
    """The workers to run (the reference first, then its noise run, the backends, and the
    reference's ledger variants last), and the backends left out with their run.json
    entries (see ``registry.select``)."""
    chosen, skipped = registry.select(requested)
    tasks = [Task(b.name, b.target, "reference" if b.name == REFERENCE else "backend",
                  env=b.env) for b in chosen]
    dtype = spec.training.dtype
    reference = tasks[0].target
    noise_run = Task(noise_name(dtype), reference, "noise", noise.noise_options(dtype),
                     timing=False)
    variants = []
    for task in tasks[1:]:
        conventions = ledger.conventions_for(spec, task.name)
        if conventions:
            variants.append(Task(variant_name(task.name), reference, "variant",
                                 noise.variant_options(dtype, conventions), timing=False))
    return ([tasks[0], noise_run, *tasks[1:], *variants],
            {name: BackendEntry("backend", "unavailable", reason)
             for name, reason in skipped.items()})


def twin_runs(tasks: list[Task], spec: Spec) -> int:
    """The backends that may need a twin (suite.ledger.twins): a lockstep record each, made
    only if the backend leaves the noise, but counted in the budget up front."""
    return sum(bool(ledger.twin_env_for(spec, task.name)) for task in tasks
               if task.role == "backend")


def wide_runs(tasks: list[Task], spec: Spec) -> int:
    """The tasks that record in float64 in a float32 run (twice the bytes a step)."""
    if spec.training.dtype != "float32":
        return 0
    return sum(task.options.get("dtype") == "float64" for task in tasks)


@dataclass(frozen=True)
class RecordPlan:
    """Which steps every worker records, and the size of the whole run's record."""

    policy: Policy
    steps: int  # steps in the run
    runs: int  # the workers that record (the reference, backends, variants)
    step_bytes: int  # one recorded step of one worker: its gradients and parameters
    budget: int
    wide: int = 0  # of those, the ones in float64 in a float32 run: twice the bytes

    @property
    def estimate(self) -> int:
        return len(self.policy.steps(self.steps)) * (self.runs + self.wide) * self.step_bytes

    def describe(self) -> str:
        wide = f", {self.wide} of them in float64" if self.wide else ""
        return (f"record: {self.policy.describe(self.steps)}; about "
                f"{human_bytes(self.estimate)} for {self.runs} "
                f"{'run' if self.runs == 1 else 'runs'}{wide} (budget "
                f"{human_bytes(self.budget)})")

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.to_dict(), "text": self.policy.to_text(),
                "description": self.policy.describe(self.steps),
                "recorded_steps": len(self.policy.steps(self.steps)),
                "estimate_bytes": self.estimate, "budget_bytes": self.budget}


def plan_record(spec: Spec, runs: int, steps: int, options: Options, wide: int = 0
                ) -> RecordPlan:
    """The record policy (--record, else the spec's) and its estimate; refuses a policy
    whose record would not fit the budget (UserError: exit 2)."""
    requested = parse_policy(options.record or spec.record.steps)
    budget = parse_size(options.record_budget or spec.record.budget)
    sizes = spec.sizes
    n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))
    step_bytes = 2 * n_params * np.dtype(spec.training.dtype).itemsize
    policy = requested or fit(steps, (runs + wide) * step_bytes, budget)
    plan = RecordPlan(policy, steps, runs, step_bytes, budget, wide)
    if plan.estimate > budget:
        kept = len(policy.steps(steps))
        raise UserError(
            f"the lockstep record would take about {human_bytes(plan.estimate)} ({runs} runs"
            f"{f' ({wide} in float64: twice the bytes)' if wide else ''} "
            f"x {kept} steps x {human_bytes(step_bytes)}), over the budget of "
            f"{human_bytes(budget)}",
            hint="record fewer steps with --record first=N,every=K or --record auto, or "
                 "raise --record-budget")
    return plan


def write_plan(folder: Path, spec: Spec, prepared: data.Prepared, params: dict,
               options: Options, threads: int, policy: Policy) -> None:
    """plan.npz (data, every epoch's row order, initial parameters) and plan.json."""
    orders = epoch_orders(len(prepared.x), spec.training)
    arrays = {"x": prepared.x, "y": prepared.y, "orders": orders}
    arrays.update({f"params/{k}": v for k, v in params.items()})
    save_npz(folder / "plan.npz", arrays)
    write_json(folder / "plan.json", {
        "spec": spec.to_dict(), "device": options.device, "threads": threads,
        "timing": {"enabled": options.timing, "warmup": options.timing_warmup,
                   "steps": options.timing_steps, "distinct_batches": 8},
        "record": policy.to_dict()})
