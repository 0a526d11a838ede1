"""The ledger: where a framework's native formula differs from the reference, and how.

Each entry names the backends and spec features it concerns, both formulas, the source
it was read from, and the reference *conventions* that reproduce the framework's
formula. The harness runs the reference a second time with those conventions (a
"variant"); a deviation counts as a known difference only when the backend agrees with
that variant within tolerance, i.e. only as far as the entry explains it. Entries
without conventions record a convention the suite pins so that no difference arises.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from suite.spec import Spec


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    backends: tuple[str, ...]
    features: tuple[str, ...]  # applies when the spec uses any of these
    reference: str  # the reference's formula
    backend: str  # the framework's formula
    source: str
    conventions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["backends"], data["features"] = list(self.backends), list(self.features)
        return data


ENTRIES: tuple[Entry, ...] = (
    Entry(
        id="keras-adam-epsilon",
        title="Adam/AdamW: epsilon added before bias correction (Keras's epsilon hat)",
        backends=("keras",),
        features=("optimizer:adam", "optimizer:adamw"),
        reference="p -= lr * m_hat / (sqrt(v_hat) + eps)",
        backend="p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)",
        source="keras/src/optimizers/adam.py (update_step)",
        conventions={"adam_epsilon": "keras"},
    ),
    Entry(
        id="keras-rmsprop-epsilon",
        title="RMSprop: epsilon inside the square root",
        backends=("keras",),
        features=("optimizer:rmsprop",),
        reference="p -= lr * g / (sqrt(v) + eps)",
        backend="p -= lr * g / sqrt(v + eps)",
        source="keras/src/optimizers/rmsprop.py (update_step)",
        conventions={"rmsprop_epsilon": "inside_sqrt"},
    ),
    Entry(
        id="keras-adagrad-epsilon",
        title="Adagrad: epsilon inside the square root",
        backends=("keras",),
        features=("optimizer:adagrad",),
        reference="p -= lr * g / (sqrt(acc) + eps)",
        backend="p -= lr * g / sqrt(acc + eps)",
        source="keras/src/optimizers/adagrad.py (update_step)",
        conventions={"adagrad_epsilon": "inside_sqrt"},
    ),
    Entry(
        id="keras-sgd-momentum",
        title="SGD momentum: velocity holds -lr*buf (equal for a constant learning rate)",
        backends=("keras",),
        features=("optimizer:sgd",),
        reference="buf = mu*buf + g; p -= lr*buf",
        backend="v = mu*v - lr*g; p += v",
        source="keras/src/optimizers/sgd.py (update_step)",
        conventions={"sgd_momentum": "keras"},
    ),
    Entry(
        id="torch-softplus-threshold",
        title="Softplus: linear above the threshold 20",
        backends=("torch",),
        features=("activation:softplus",),
        reference="softplus(z) = log(1 + exp(z))",
        backend="softplus(z) = z where z > 20 (gradient 1)",
        source="torch/nn/modules/activation.py (Softplus, threshold=20)",
        conventions={"softplus": "torch_threshold"},
    ),
    Entry(
        id="dense-layout",
        title="Dense layout: torch stores the weight transposed",
        backends=("torch",),
        features=(),
        reference="kernel of shape (fan_in, fan_out)",
        backend="weight of shape (fan_out, fan_in)",
        source="torch/nn/modules/linear.py",
    ),
    Entry(
        id="keras-fit-running-mean",
        title="Keras fit()/train_on_batch() log a running mean of the loss",
        backends=("keras",),
        features=(),
        reference="the batch's own loss",
        backend="mean of the losses since the metrics were last reset",
        source="keras/src/trainers/compile_utils.py (loss tracker)",
    ),
    Entry(
        id="keras-probability-clipping",
        title="Keras cross-entropy on probabilities clips them to [1e-7, 1-1e-7]",
        backends=("keras",),
        features=(),
        reference="cross-entropy from logits (softmax or sigmoid fused)",
        backend="from_logits=False clips the probabilities",
        source="keras/src/backend/tensorflow/nn.py (categorical_crossentropy)",
    ),
)


def by_id(entry_id: str) -> Entry:
    return next(entry for entry in ENTRIES if entry.id == entry_id)


def applicable(spec: Spec, backend: str) -> list[Entry]:
    """Entries with conventions that concern this backend and this spec."""
    used = set(spec.features())
    return [e for e in ENTRIES
            if backend in e.backends and e.conventions and used.intersection(e.features)]


def conventions_for(spec: Spec, backend: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for entry in applicable(spec, backend):
        merged.update(entry.conventions)
    return merged
