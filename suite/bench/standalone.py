"""The standalone loops (backends/standalone/<backend>_loop.py): the reference for the
claim that the suite times each backend as fast as a hand-written script would.

Each script is self-contained (its framework and NumPy only) and trains the same kind of
network: Dense layers with one hidden activation, softmax cross-entropy from logits on
integer labels, plain SGD, float32. ``suite bench --standalone`` runs it after the
suite's own worker, in a fresh process with the same interpreter and thread settings,
and puts both medians side by side.
"""

from __future__ import annotations

import json
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

from suite.bench.sizes import Size, sized_spec
from suite.errors import UserError
from suite.spec import Spec

ACTIVATIONS = ("relu", "sigmoid", "tanh")
LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")


def check_spec(spec: Spec) -> None:
    """Raise UserError unless the standalone scripts train the same network as ``spec``."""
    hidden = {layer.activation.name for layer in spec.layers[:-1]}
    problems = []
    if len(hidden) > 1 or not hidden <= set(ACTIVATIONS):
        problems.append(f"hidden activations {sorted(hidden)} (expected one of "
                        f"{', '.join(ACTIVATIONS)})")
    if spec.loss.name not in LOSSES:
        problems.append(f"loss {spec.loss.name!r} (expected a softmax cross-entropy)")
    opt = spec.optimizer
    if opt.name != "sgd" or opt.params.get("momentum", 0.0) or opt.params.get("weight_decay"):
        problems.append("an optimizer other than plain SGD (expected sgd, momentum 0)")
    if any(layer.kernel_l2 for layer in spec.layers):
        problems.append("an L2 regularizer")
    if spec.training.dtype != "float32":
        problems.append(f"dtype {spec.training.dtype} (expected float32)")
    if problems:
        raise UserError(f"--standalone compares with scripts that train a plain MLP, but spec "
                        f"{spec.name!r} has {'; '.join(problems)}",
                        hint="use a spec like mnist-mlp, or leave out --standalone")


def script_for(backend: str) -> Path | None:
    path = Path(str(resources.files("backends") / "standalone"
                    / f"{backend.replace('-', '_')}_loop.py"))
    return path if path.is_file() else None


def run_script(script: Path, python: str, env: dict[str, str], spec: Spec, size: Size,
               threads: int, timing: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """The script's result for one size: its JSON line, or status error with the reason."""
    sized = sized_spec(spec, size)
    hidden = sized.layers[0].activation.name if len(sized.layers) > 1 else "relu"
    command = [python, str(script), "--sizes", ",".join(map(str, sized.sizes)),
               "--batch-size", str(size.batch_size), "--activation", hidden,
               "--learning-rate", repr(float(spec.optimizer.params["learning_rate"])),
               "--warmup", str(timing["warmup"]), "--steps", str(timing["steps"]),
               "--threads", str(threads)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "reason": f"standalone script took over {timeout_s:g} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = [line for line in done.stderr.splitlines() if line.strip()]
        return {"status": "error", "reason": f"standalone script exited with code "
                                             f"{done.returncode}: {tail[-1] if tail else ''}"}
    return {"status": "ok", **json.loads(lines[-1])}
