"""A reproducer's state, worker side: the reference trained to the first step at which a
backend left the noise, and everything a standalone script needs to show it there.

The reference (the *source*: the run's own arithmetic and dtype) trains step by step as
in the backend's parts run (suite.compare.parts), with the same judge and ledger variant
fed the same state, up to the step named. There it keeps the state the script starts
from (the parameters, and the batch or every step's gradients so far) and the tensors
the script's own framework values are measured against: the baseline, the noise, the
variant, and the norm the suite's errors are relative to. The file's layout is
backends/repro/common.py's docstring.

Worker side: standard library and NumPy only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Backend, Params, Trainer
from suite.compare.distance import RunningSize
from suite.compare.noise import noise_options
from suite.files import save_npz

#: an optimizer's state is every gradient so far: above this, no reproducer is written
MAX_STATE_BYTES = 256 * 2**20


def network(spec) -> dict[str, Any]:
    """The network as a reproducer builds it: plain names and every hyperparameter."""
    return {
        "input_dim": spec.sizes[0],
        "layers": [{"units": layer.units, "activation": layer.activation.name,
                    "activation_params": dict(layer.activation.params),
                    "kernel_l2": layer.kernel_l2} for layer in spec.layers],
        "loss": spec.loss.name, "loss_params": dict(spec.loss.params),
        "fused_output": spec.output_activation if spec.fused_output else None,
        "optimizer": spec.optimizer.name, "optimizer_params": dict(spec.optimizer.params),
    }


def write_state(reference: Callable[..., Backend], job: Any, order: dict[str, Any],
                threads: int, path: Path) -> dict[str, Any]:
    """Train the reference to ``order["step"]`` and write the state there to ``path``.

    ``order``: ``part`` (forward, backward, optimizer), ``tensor``, ``step``, ``variant``
    (the ledger variant's reference options, or None) and ``meta`` (what the script
    prints: the backend, the run, the baseline's and noise's descriptions, the suite's
    tolerance). Returns the state's summary for result.json.
    """
    dtype, part, last = job.dtype, order["part"], int(order["step"])
    steps = job.steps()
    if not 0 <= last < len(steps):
        raise ValueError(f"step {last} is not a step of this run (0 to {len(steps) - 1})")

    def build(options: dict[str, Any]) -> Trainer:
        backend = reference(**options)
        backend.load(threads)
        return backend.build(job.spec, job.params, dtype, job.device)

    if part == "optimizer":
        _check_size(job.params, last)
    source, judge = build({}), build(noise_options(dtype))
    variant = build(order["variant"]) if order.get("variant") else None
    exact_judge = dtype == "float32"  # the baseline: the judge (float32) or the source
    size = RunningSize()
    arrays: dict[str, np.ndarray] = {}
    seen_grads: list[Params] = []
    for step in steps[:last + 1]:
        x, y = job.x[step.rows], job.y[step.rows]
        at = source.get_params()
        loss, grads = source.loss_and_grads(x, y)
        if part == "optimizer":
            seen_grads.append(grads)
            values = _updates(at, grads, source, judge, variant)
        else:
            values = _forward_backward(at, (loss, grads), x, y, judge, variant)
            source.apply_grads(grads)
        mine, judged, theirs = values
        baseline, noise = (judged, mine) if exact_judge else (mine, judged)
        scales = {tensor: size(tensor, value) for tensor, value in baseline.items()}
        if step.index == last:
            arrays.update({f"params/{k}": v for k, v in at.items()})
            if part == "optimizer":
                for j, sent in enumerate(seen_grads):
                    arrays.update({f"grads/{j}/{k}": v for k, v in sent.items()})
            else:
                arrays["x"], arrays["y"] = x, y
            for tensor in baseline:
                arrays[f"baseline/{tensor}"] = np.asarray(baseline[tensor], np.float64)
                arrays[f"noise/{tensor}"] = np.asarray(noise[tensor], np.float64)
                arrays[f"scale/{tensor}"] = np.asarray(scales[tensor], np.float64)
                if theirs is not None:
                    arrays[f"variant/{tensor}"] = np.asarray(theirs[tensor], np.float64)
    meta = {**order["meta"], "part": part, "tensor": order["tensor"], "step": last,
            "dtype": dtype, "threads": threads, "network": network(job.spec),
            "device": job.device, "suite_spec": job.spec.to_dict()}
    arrays["meta"] = np.asarray(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz(path, arrays)
    return {"path": path.name, "bytes": path.stat().st_size, "part": part,
            "tensor": order["tensor"], "step": last}


def _forward_backward(at: Params, measured: tuple[float, Params], x, y, judge: Trainer,
                      variant: Trainer | None):
    """Loss and gradients at the source's parameters: the source's, the judge's and the
    variant's, as ``{"loss": ..., "grad/<name>": ...}`` each."""

    def named(loss, grads) -> dict[str, Any]:
        return {"loss": np.float64(loss), **{f"grad/{k}": v for k, v in grads.items()}}

    others = []
    for trainer in (judge, variant):
        if trainer is None:
            others.append(None)
            continue
        trainer.set_params(at)
        others.append(named(*trainer.loss_and_grads(x, y)))
    return named(*measured), others[0], others[1]


def _updates(at: Params, grads: Params, source: Trainer, judge: Trainer,
             variant: Trainer | None):
    """One update from the source's parameters with its gradients (each optimizer keeps
    its own state, as in the parts run): the parameters after minus before."""
    moved = []
    for trainer in (source, judge, variant):
        if trainer is None:
            moved.append(None)
            continue
        if trainer is not source:  # the source is there already, and trains on from it
            trainer.set_params(at)
        trainer.apply_grads(grads)
        after = trainer.get_params()
        moved.append({f"update/{k}": np.asarray(after[k], np.float64)
                      - np.asarray(at[k], np.float64) for k in at})
    return moved[0], moved[1], moved[2]


def _check_size(params: Params, last: int) -> None:
    needed = sum(v.nbytes for v in params.values()) * (last + 1)
    if needed > MAX_STATE_BYTES:
        raise ValueError(
            f"the optimizer's reproducer replays every gradient up to step {last}: "
            f"{needed / 2**20:.0f} MB of state, over the {MAX_STATE_BYTES / 2**20:.0f} MB a "
            "reproducer may hold")
