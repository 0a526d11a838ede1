"""Backends with a planted bug a few parts in a million in size: the noise-based verdicts
must catch them (float32 rounding at these sizes is about 1e-7).

``planted:GradientScaledBackend`` scales every gradient by 1 + 3e-6 (in what it reports
and in what it trains with); ``planted:LearningRateScaledBackend`` trains with its
learning rate scaled by 1 + 1e-5. Both are the NumPy reference otherwise.
``planted:NoPartsBackend`` has the learning-rate bug and no set_params or apply_grads.
"""

from __future__ import annotations

import dataclasses

from backends.base import Trainer
from backends.reference.backend import NumpyBackend, ReferenceTrainer

GRADIENT_SCALE = 1 + 3e-6
LEARNING_RATE_SCALE = 1 + 1e-5


class _ScaledGradients(ReferenceTrainer):
    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        return loss, {name: grad * GRADIENT_SCALE for name, grad in grads.items()}

    def train_step(self, x, y):
        model = self.model
        loss = model.loss(x, y)
        model.backward(copy=False)
        model.flat_grads *= GRADIENT_SCALE
        self.optimizer.update_flat(model.flat_params, model.flat_grads, model.layout,
                                   overwrite_grads=True)
        return float(loss)


class GradientScaledBackend(NumpyBackend):
    name = "gradient-scaled"

    def build(self, spec, params, dtype, device):
        trainer = super().build(spec, params, dtype, device)
        return _ScaledGradients(trainer.model, trainer.optimizer)


class LearningRateScaledBackend(NumpyBackend):
    name = "learning-rate-scaled"

    def build(self, spec, params, dtype, device):
        hyper = dict(spec.optimizer.params)
        hyper["learning_rate"] = float(hyper["learning_rate"]) * LEARNING_RATE_SCALE
        optimizer = dataclasses.replace(spec.optimizer, params=hyper)
        return super().build(dataclasses.replace(spec, optimizer=optimizer), params, dtype,
                             device)


class _WithoutParts(Trainer):
    """A trainer of the contract's required methods alone: no set_params, no apply_grads."""

    def __init__(self, inner: Trainer):
        self.inner = inner

    def loss_and_grads(self, x, y):
        return self.inner.loss_and_grads(x, y)

    def train_step(self, x, y):
        return self.inner.train_step(x, y)

    def predict(self, x):
        return self.inner.predict(x)

    def get_params(self):
        return self.inner.get_params()


class NoPartsBackend(LearningRateScaledBackend):
    """The learning-rate bug in a backend that cannot be attributed."""

    name = "no-parts"

    def build(self, spec, params, dtype, device):
        return _WithoutParts(super().build(spec, params, dtype, device))
