"""``--repeat``: is each backend's lockstep run the same when it is made again?

The worker makes the lockstep run ``repeat`` times, each from a fresh build, on the same
batches and initial parameters (records: record/<name>/ and repeats/<name>/<i>/). Here
every repeat is set against the first, loss by loss and, at the recorded steps, tensor
by tensor. A backend is *bit-reproducible* when every number is identical; otherwise the
first step and tensor that differ, and the largest relative L2 difference, say how far
two runs of one framework on one machine may differ: noise that no other backend can be
blamed for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from suite import record, rundir


def compare_repeats(run_dir: Path, name: str, result: dict[str, Any]) -> dict[str, Any] | None:
    """run.json's ``determinism`` entry for one backend, or None if it made no repeat.

    Keys: ``runs`` (lockstep runs compared), ``bit_identical`` (True, False, or None when a
    repeat failed), ``max_rel_diff`` (relative L2, over losses and recorded tensors),
    ``first_step`` and ``tensor`` (where the runs first differ), ``reason`` (a failed
    or unreadable repeat).
    """
    repeats = result.get("repeats") or []
    if not repeats:
        return None
    found: dict[str, Any] = {"runs": 1 + len(repeats), "bit_identical": True,
                             "max_rel_diff": 0.0, "first_step": None, "tensor": None,
                             "reason": None}
    losses = result.get("lockstep", {}).get("losses", [])
    first = record.read_run(run_dir, name)
    try:
        for number, repeat in enumerate(repeats, start=2):
            if repeat.get("status") != "ok":
                found.update(bit_identical=None,
                             reason=f"repeat {number} failed: {repeat.get('reason')}")
                return found
            if len(repeat["losses"]) != len(losses):
                found.update(bit_identical=False, reason=f"repeat {number} took "
                             f"{len(repeat['losses'])} steps, the first run {len(losses)}")
            _differences(found, ((s, "loss", a, b) for s, (a, b)
                                 in enumerate(zip(losses, repeat["losses"], strict=False))))
            again = record.read_folder(rundir.repeat_dir(run_dir, name, number))
            try:
                steps = sorted(set(first.steps) & set(again.steps))
                # NOTE: steps in order, each step's kinds together, as a generator: each
                # record reads each of its shards once, one step's arrays in memory at a time
                _differences(found, (
                    (step, f"{kind} {tensor}", getattr(first, kind)[f"{step}/{tensor}"],
                     getattr(again, kind)[f"{step}/{tensor}"])
                    for step in steps for kind in ("grads", "params")
                    for tensor in first.grads.tensors))
            finally:
                again.close()
    except record.DamagedRecord as exc:
        found.update(bit_identical=None, reason=str(exc))
    finally:
        first.close()
    return found


def _differences(found: dict[str, Any], pairs: Iterable[tuple]) -> None:
    """Fold (step, what, first, repeat) pairs into ``found``: the first step differing
    (earliest over kinds) and the largest relative L2 difference."""
    for step, what, a, b in pairs:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if np.array_equal(a, b, equal_nan=True):
            continue
        found["bit_identical"] = False
        scale = float(np.linalg.norm(a))
        diff = float(np.linalg.norm(a - b)) / scale if scale else math.inf
        found["max_rel_diff"] = max(found["max_rel_diff"], diff)
        if found["first_step"] is None or step < found["first_step"]:
            found["first_step"], found["tensor"] = int(step), what


def describe(entry: dict[str, Any]) -> str:
    """One line for a report: ``bit-identical in 2 runs`` or where the runs differ."""
    if entry["bit_identical"] is None:
        return f"not known: {entry['reason']}"
    if entry["bit_identical"]:
        return f"bit-identical in {entry['runs']} runs"
    return (f"not bit-reproducible: {entry['runs']} runs first differ at step "
            f"{entry['first_step']} ({entry['tensor']}), by up to {entry['max_rel_diff']:.3g} "
            "(relative L2)")
