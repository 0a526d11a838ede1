"""Attribution, worker side: a backend's parts run alone, each fed the reference's own
inputs, so that a drift is placed in the forward, the backward or the optimizer.

A backend's lockstep run compounds: a gradient a little off moves the parameters a
little off, and every later step starts from there. A *parts run* cuts the chain. The
reference trains in this process (the *source*: the run's own arithmetic, in the run's
dtype), and at every step the backend is given the source's state:

- forward and backward alone, at every step: the backend's parameters are set to the
  source's (``Trainer.set_params``), and its loss and gradients on that step's batch are
  set against the baseline's at the same parameters;
- the optimizer alone, at every step: a second build of the backend is set to the
  source's parameters and applies the source's gradients with its own optimizer and
  state (``Trainer.apply_grads``); its update (its parameters after it minus the
  source's before) is set against the baseline's, fed the same, so that nothing
  compounds but the optimizer's own state.

A *judge*, a second correct implementation fed the same inputs, gives the noise of each
row, as the noise run does for the lockstep run (the same options, suite.compare.noise
``noise_options``): in a float32 run the judge is the reference in float64, the exact
answer, and the baseline is the judge (the noise is the source's own distance to it); in
a float64 run the judge is the reference summed in another order, and the baseline is
the source. The backend's ledger variant, where it has one, is fed the same inputs too.

Both rest on the contract that ``apply_grads``, fed the backend's own gradients, makes
the update ``train_step`` makes: the run checks it on its first steps (part
``contract``), so that a backend whose training path departs from the parts it was
measured by is not called correct by them.

Everything happens in one process, so every row is measured on the same inputs, whatever
BLAS this environment's NumPy has. The rows are distances only (suite.compare.distance);
suite.compare.attribution judges them.

Worker side: standard library and NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from backends.base import Backend, Trainer
from suite.compare.distance import RunningSize, max_abs_diff, rel_l2_error, stored_rounding
from suite.compare.noise import noise_options

#: the first steps on which the run checks that apply_grads makes train_step's update
CONTRACT_STEPS = 10
#: one row: (step, part, tensor, error, noise, max_abs_diff, finite, error against the
#: ledger variant fed the same (NaN without one), how many epsilons its floor is)
Row = tuple[int, str, str, float, float, float, bool, float, float]


class _Distances:
    """Rows measured against the baseline: the judge (float32) or the source (float64)."""

    def __init__(self, exact_judge: bool):
        self.exact_judge = exact_judge
        self.rows: list[Row] = []
        self.size = RunningSize()  # relative to the largest each has been, as in lockstep

    def add(self, step: int, part: str, tensor: str, backend, source, judge,
            variant=None, stored=None) -> None:
        """One row; ``stored``: the baseline's parameters after an update, whose rounding
        to the dtype an update read from them carries (suite.compare.distance)."""
        base, other = (judge, source) if self.exact_judge else (source, judge)
        scale = self.size((part, tensor), base)
        value = np.asarray(backend)
        self.rows.append((step, part, tensor, rel_l2_error(value, base, scale),
                          rel_l2_error(other, base, scale), max_abs_diff(value, base),
                          bool(np.all(np.isfinite(value))),
                          rel_l2_error(value, variant, scale) if variant is not None
                          else math.nan,
                          stored_rounding(stored, scale) if stored is not None else 1.0))


def run_parts(backend: Backend, reference: Callable[..., Backend], job: Any,
              threads: int, emit: Callable[..., None],
              variant: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parts run of ``backend`` on ``job`` (suite.compare.worker.Job); ``reference``
    makes the reference backend with options (``reference()``, ``reference(dtype=...)``);
    ``variant``, the options of the backend's ledger variant, if it has one: fed the same
    inputs, each row's distance to it says whether the ledger explains that part.

    Returns ``{"rows": [...], "steps": n, "recorded": n}`` (every step is measured);
    raises NotImplementedError
    (its reason) when the backend has no set_params or apply_grads.
    """
    dtype = job.dtype

    def build(framework: Backend) -> Trainer:
        return framework.build(job.spec, job.params, dtype, job.device)

    source = build(_loaded(reference(), threads))
    judge_backend = _loaded(reference(**noise_options(dtype)), threads)
    forwards, updates = [build(backend), build(judge_backend)], [build(backend),
                                                                 build(judge_backend)]
    if variant is not None:
        variant_backend = _loaded(reference(**variant), threads)
        forwards.append(build(variant_backend))
        updates.append(build(variant_backend))
    distances = _Distances(exact_judge=dtype == "float32")
    steps = job.steps()
    contract = _contract_rows(build(backend), build(backend), job, steps[:CONTRACT_STEPS])
    every = max(1, len(steps) // 50)
    for step in steps:
        x, y = job.x[step.rows], job.y[step.rows]
        at = source.get_params()
        loss, grads = source.loss_and_grads(x, y)
        # the forward and the backward alone: each at the source's parameters
        measured = []
        for trainer in forwards:
            trainer.set_params(at)
            measured.append(trainer.loss_and_grads(x, y))
        (mine, my_grads), (judged, judged_grads), *theirs = measured
        distances.add(step.index, "forward", "loss", mine, loss, judged,
                      theirs[0][0] if theirs else None)
        for name in grads:
            distances.add(step.index, "backward", name, my_grads[name], grads[name],
                          judged_grads[name], theirs[0][1][name] if theirs else None)
        # NOTE: the update alone, each step from the source's parameters (every optimizer
        # keeps its own state, fed the source's gradients): the parameters after it minus
        # the source's before, so that nothing compounds but the state
        source.apply_grads(grads)
        after = source.get_params()
        moved = []
        for trainer in updates:
            trainer.set_params(at)
            trainer.apply_grads(grads)
            moved.append(trainer.get_params())
        for name in after:
            start = np.asarray(at[name], np.float64)
            mine, judged, *theirs = (np.asarray(p[name], np.float64) - start for p in moved)
            distances.add(step.index, "optimizer", name, mine,
                          np.asarray(after[name], np.float64) - start, judged,
                          theirs[0] if theirs else None,
                          stored=moved[1][name] if distances.exact_judge else after[name])
        if step.index % every == 0 or step.index == len(steps) - 1:
            emit(phase="parts", step=step.index + 1, total=len(steps))
    return {"rows": [list(row) for row in contract + distances.rows], "steps": len(steps),
            "recorded": len(steps)}


def _contract_rows(stepped: Trainer, applied: Trainer, job: Any, steps: list) -> list[Row]:
    """The contract the parts run rests on, checked on the run's first steps: fed its own
    gradients, ``apply_grads`` makes the update ``train_step`` makes. One row a step and
    parameter: the distance of the two builds' parameters (noise 0: only the dtype's
    floor excuses a difference). Fails early, before any training, when the backend
    lacks either method (NotImplementedError)."""
    applied.set_params(job.params)
    rows: list[Row] = []
    for step in steps:
        x, y = job.x[step.rows], job.y[step.rows]
        stepped.set_params(applied.get_params())  # step by step from the same parameters
        stepped.train_step(x, y)
        applied.apply_grads(applied.loss_and_grads(x, y)[1])
        mine, theirs = applied.get_params(), stepped.get_params()
        for name, value in mine.items():
            rows.append((step.index, "contract", name, rel_l2_error(value, theirs[name]),
                         0.0, max_abs_diff(value, theirs[name]),
                         bool(np.all(np.isfinite(value))), math.nan, 1.0))
    return rows


def _loaded(backend: Backend, threads: int) -> Backend:
    backend.load(threads)  # the reference's pins nothing: NumPy's BLAS reads the environment
    return backend
