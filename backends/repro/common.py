"""The NumPy half of every reproducer: read the state, set the framework's values against
the exact answer and the noise, print the difference.

A reproducer (``repro/<backend>.py`` in a run directory) is one framework's part
(backends/repro/<framework>.py: ``compute(state)``, the framework's own values at the
state) with this file inlined in place of its import line (suite.compare.repro), so that
it runs with that framework and NumPy alone. Its state, ``repro/<backend>.npz`` beside it,
holds the first step at which the backend left the measured noise:

- ``meta``: JSON: the backend, the part (forward, backward or optimizer), tensor and step,
  the network (layers, activations, loss, optimizer and every hyperparameter), what the
  baseline, noise and variant are, and the suite's error and tolerance there;
- ``params/<name>``: the reference's parameters at that step (canonical names and layout:
  ``dense_<i>/kernel`` of shape (fan_in, fan_out), ``dense_<i>/bias``), in the run's dtype;
- forward and backward: ``x`` and ``y``, that step's batch;
- optimizer: ``grads/<j>/<name>``, the reference's gradients of steps 0 to that step, fed
  in turn to a fresh optimizer (its state built as the suite's run built it), the last at
  those parameters;
- ``baseline/<tensor>``, ``noise/<tensor>`` and, where a ledger entry applies,
  ``variant/<tensor>``: the exact answer (the reference in float64, or in a float64 run
  the reference itself), a second correct implementation (the float32 reference, or the
  reference summed in another order) and the entry's formula, each at the same state;
  ``scale/<tensor>``, the norm the suite's relative errors are taken against.
  Tensors are ``loss`` and ``grad/<name>`` (forward and backward) or ``update/<name>``
  (optimizer: the parameters after minus before).

Standard library and NumPy only, and Python 3.6's syntax (f-strings, no annotations' future),
for old environments.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np


class State:
    """The npz beside the script, read once."""

    def __init__(self, path):
        with np.load(str(path), allow_pickle=False) as stored:
            self.arrays = {key: stored[key] for key in stored.files}
        self.meta = json.loads(str(self.arrays.pop("meta")))
        self.path = Path(path)

    @property
    def network(self):
        return self.meta["network"]

    @property
    def dtype(self):
        return self.meta["dtype"]

    @property
    def part(self):
        return self.meta["part"]

    def names(self):
        """Parameter names in layer order (kernel, then bias)."""
        return [f"dense_{i}/{part}" for i in range(len(self.network["layers"]))
                for part in ("kernel", "bias")]

    def params(self):
        return {name: self.arrays["params/" + name] for name in self.names()}

    def batch(self):
        return self.arrays["x"], self.arrays["y"]

    def grads(self):
        """The reference's gradients, step by step (optimizer part)."""
        return [{name: self.arrays[f"grads/{j}/{name}"] for name in self.names()}
                for j in range(self.meta["step"] + 1)]

    def tensors(self):
        """What the framework is measured on: ``loss`` and ``grad/<name>``, or
        ``update/<name>``."""
        if self.part == "optimizer":
            return ["update/" + name for name in self.names()]
        return ["loss"] + ["grad/" + name for name in self.names()]


def error(value, reference, scale):
    """The suite's measure: |value - reference| (L2) over the baseline's norm so far."""
    diff = float(np.linalg.norm(np.asarray(value, np.float64)
                                - np.asarray(reference, np.float64)))
    if scale > 0:
        return diff / scale
    return 0.0 if diff == 0 else math.inf


def measure(state, computed):
    """One row a tensor: the framework's error against the baseline, the noise's, and
    (where there is one) the variant's distance to the framework."""
    rows = []
    for tensor in state.tensors():
        base, scale = state.arrays["baseline/" + tensor], float(state.arrays["scale/" + tensor])
        mine = np.asarray(computed[tensor], np.float64)
        variant = state.arrays.get("variant/" + tensor)
        rows.append({
            "tensor": tensor,
            "error": error(mine, base, scale),
            "noise": error(state.arrays["noise/" + tensor], base, scale),
            "variant": error(mine, variant, scale) if variant is not None else None,
            "max_abs": float(np.max(np.abs(mine - base))) if mine.size else 0.0,
        })
    return rows


def report(state, rows, versions):
    """What the script prints: the state, one line a tensor, and what it shows; and the
    row of the tensor the suite named."""
    meta = state.meta
    named = meta["part"] if meta["part"] == "forward" else f"{meta['part']} {meta['tensor']}"
    framework = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
    lines = [f"{meta['backend']} ({framework}), {state.dtype}: {named} at step "
             f"{meta['step']} of {meta['spec']} (fnn-suite run {meta['run']})",
             f"baseline: {meta['baseline']}", f"noise:    {meta['noise']}"]
    ledger = ", ".join(meta.get("ledger") or []) or "none"
    if meta.get("variant"):
        lines.append(f"variant:  {meta['variant']}")
    if meta.get("ledger"):
        lines.append(f"ledger:   {ledger} (named by the suite's verdict)")
    header = f"{'tensor':<24} {meta['backend'][:12]:>12} {'noise':>10} {'x noise':>8}"
    lines += ["", header + (f" {'vs variant':>10}" if meta.get("variant") else "")]
    for row in rows:
        ratio = f"{row['error'] / row['noise']:8.3g}" if row["noise"] > 0 else f"{'-':>8}"
        line = f"{row['tensor']:<24} {row['error']:12.3g} {row['noise']:10.3g} {ratio}"
        if row["variant"] is not None:
            line += f" {row['variant']:10.3g}"
        lines.append(line)
    target = "loss" if meta["part"] == "forward" else \
        f"{'update' if meta['part'] == 'optimizer' else 'grad'}/{meta['tensor']}"
    row = next(r for r in rows if r["tensor"] == target)
    lines += ["", f"{target}: {row['error']:.3g} from the baseline (relative L2; "
                  f"the noise {row['noise']:.3g}). The suite measured {meta['suite_error']:.3g} "
                  f"against a tolerance of {meta['tolerance']:.3g} ({meta['noise_factor']:g} x "
                  "the noise so far, floored at the dtype's rounding)."]
    if row["variant"] is not None:
        lines.append(f"Its distance to the ledger variant: {row['variant']:.3g}.")
    if meta.get("twin_env"):
        switches = " ".join(f"{k}={v}" for k, v in sorted(meta["twin_env"].items()))
        lines.append(f"The ledger ({ledger}) says it goes with the framework's own switches: "
                     f"run `{switches} python {Path(sys.argv[0]).name}` to see.")
    return "\n".join(lines), row


def run(compute, versions, argv=None):
    """The script's command line: ``python <backend>.py [--state NPZ] [--json]
    [--save NPZ]``."""
    parser = argparse.ArgumentParser(description=(
        "Reproduce, with this framework and NumPy alone, the difference fnn-suite measured "
        "at the first step the backend left the noise."))
    parser.add_argument("--state", default=str(Path(sys.argv[0]).with_suffix(".npz")),
                        help="the state (default: the npz beside this script)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--save", help="also save the framework's tensors to this npz")
    args = parser.parse_args(argv)
    state = State(args.state)
    computed = compute(state)
    rows = measure(state, computed)
    if args.save:
        np.savez(args.save, **{k: np.asarray(v) for k, v in computed.items()})
    found = versions()
    text, target = report(state, rows, found)
    if args.json:
        print(json.dumps({"backend": state.meta["backend"], "part": state.part,
                          "tensor": state.meta["tensor"], "step": state.meta["step"],
                          "versions": found, "target": target, "rows": rows,
                          "tolerance": state.meta["tolerance"]}))
    else:
        print(text)
    return 0
