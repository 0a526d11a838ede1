"""Plug-ins that misbehave on purpose, to show a failing backend never takes others down.

Each wraps the NumPy reference and breaks one thing. Loaded by module path
(``faulty:RaisingBackend``) with this folder on PYTHONPATH.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time

import numpy as np

from backends.base import Backend
from backends.reference.backend import NumpyBackend


class _Wrapped(NumpyBackend):
    def build(self, spec, params, dtype, device):
        return self.Trainer(super().build(spec, params, dtype, device))


class _Delegate:
    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)


class RaisingBackend(_Wrapped):
    name = "raising"

    class Trainer(_Delegate):
        def train_step(self, x, y):
            raise RuntimeError("deliberate failure in train_step")


class CrashingBackend(NumpyBackend):
    name = "crashing"

    def build(self, spec, params, dtype, device):
        os._exit(3)  # the whole process dies, as a segfaulting framework would


class HangingBackend(NumpyBackend):
    name = "hanging"

    def build(self, spec, params, dtype, device):
        time.sleep(3600)


class NanBackend(_Wrapped):
    name = "nan"

    class Trainer(_Delegate):
        def loss_and_grads(self, x, y):
            loss, grads = self.inner.loss_and_grads(x, y)
            return loss, {k: np.full_like(v, np.nan) for k, v in grads.items()}


class WrongNamesBackend(_Wrapped):
    name = "wrong-names"

    class Trainer(_Delegate):
        def get_params(self):
            return {k.replace("kernel", "weight"): v for k, v in self.inner.get_params().items()}


class NoFloat64Backend(NumpyBackend):
    name = "no-float64"

    def supports(self, feature):
        return "float64 is not implemented" if feature == "dtype:float64" else True


class DriftBackend(_Wrapped):
    """Correct until step 2, whose update nudges one bias: a fail that names that step."""

    name = "drift"

    class Trainer(_Delegate):
        steps = 0

        def train_step(self, x, y):
            loss = self.inner.train_step(x, y)
            if self.steps == 2:
                self.inner.model.dense[-1].bias += 1e-3  # the reference's last Dense module
            self.steps += 1
            return loss


class ViewsBackend(_Wrapped):
    """Hands out its live parameter arrays (no copies), as a careless plug-in might."""

    name = "views"

    class Trainer(_Delegate):
        def get_params(self):
            return {f"dense_{i}/{part}": getattr(dense, part)
                    for i, dense in enumerate(self.inner.model.dense)
                    for part in ("kernel", "bias")}


class WrongShapeBackend(_Wrapped):
    """Returns the first kernel's gradient transposed, as a torch-layout slip would."""

    name = "wrong-shape"

    class Trainer(_Delegate):
        def loss_and_grads(self, x, y):
            loss, grads = self.inner.loss_and_grads(x, y)
            return loss, {**grads, "dense_0/kernel": grads["dense_0/kernel"].T.copy()}


class NoGeluBackend(NumpyBackend):
    """Declares gelu and Adagrad unsupported through the class constant."""

    name = "no-gelu"
    unsupported = {"activation:gelu": "no erf in this framework",
                   "optimizer:adagrad": "not implemented yet"}


class NotABackend:
    """A plug-in class that forgot the contract."""

    name = "not-a-backend"


class HalfBackend(Backend):
    """Implements load and versions only."""

    name = "half"

    def load(self, threads):
        pass

    def versions(self):
        return {}


class HangsAtWidth32Backend(NumpyBackend):
    """Hangs while building a network with 32-unit layers; every other size is fine."""

    name = "hangs-at-32"

    def build(self, spec, params, dtype, device):
        if any(layer.units == 32 for layer in spec.layers):
            time.sleep(3600)
        return super().build(spec, params, dtype, device)


class CrashesAtWidth32Backend(NumpyBackend):
    """Dies (as a segfault would) building a network with 32-unit layers."""

    name = "crashes-at-32"

    def build(self, spec, params, dtype, device):
        if any(layer.units == 32 for layer in spec.layers):
            os._exit(3)
        return super().build(spec, params, dtype, device)


class HangOnceBackend(NumpyBackend):
    """Hangs in build while FNN_SUITE_TEST_HANG is set (a run to stop), and otherwise trains
    as the reference does: a run that finishes when it is resumed."""

    name = "hang-once"

    def build(self, spec, params, dtype, device):
        while os.environ.get("FNN_SUITE_TEST_HANG"):
            time.sleep(3600)
        return super().build(spec, params, dtype, device)


class PidHangingBackend(NumpyBackend):
    """Starts a child process of its own, writes "WORKER_PID CHILD_PID" to the file that
    $FNN_TEST_PID_FILE names, then hangs in build: a worker to signal, or to orphan."""

    name = "pid-hanging"

    def build(self, spec, params, dtype, device):
        child = subprocess.Popen(["sleep", "3600"])
        path = os.environ["FNN_TEST_PID_FILE"]
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {child.pid}\n")
        os.replace(path + ".tmp", path)
        time.sleep(3600)


class FullDiskBackend(NumpyBackend):
    """Its worker may write no file over 4 kB (RLIMIT_FSIZE): a disk full for one worker."""

    name = "full-disk"

    def build(self, spec, params, dtype, device):
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(
            resource.RLIMIT_FSIZE)[1]))
        return super().build(spec, params, dtype, device)


class UnrepeatableBackend(NumpyBackend):
    """Each build sums in the other order (natural, reversed, natural, ...): the same
    numbers to rounding, never bit-identical from one build to the next, as a framework
    whose kernels pick their blocking at run time."""

    name = "unrepeatable"
    builds = 0

    def build(self, spec, params, dtype, device):
        UnrepeatableBackend.builds += 1
        self.order = "reversed" if UnrepeatableBackend.builds % 2 else "natural"
        return super().build(spec, params, dtype, device)
