"""One ledger entry: a difference between a framework's native formula and the reference."""

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
    dtypes: tuple[str, ...] = ()  # and only in runs of these dtypes (empty: any dtype)
    #: where no reference convention reproduces the framework's part (a kernel library's
    #: own arithmetic), the environment variables that switch it off: the backend's *twin*,
    #: run with them, computes the plain formula, and the entry explains a difference only
    #: where the twin is back within the noise
    twin_env: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("backends", "features", "dtypes"):
            data[key] = list(getattr(self, key))
        return data

    def applies(self, spec: Spec, backend: str) -> bool:
        """True when this entry has conventions or a twin and concerns this backend and
        spec.

        ``backend`` may carry a version (``torch@2.12.0``): the entry concerns it too.
        """
        return (backend.partition("@")[0] in self.backends
                and bool(self.conventions or self.twin_env)
                and bool(set(spec.features()).intersection(self.features))
                and (not self.dtypes or spec.training.dtype in self.dtypes))


def float32_constants(group: str) -> dict[str, str]:
    """The reference convention for TensorFlow's float32-rounded constants of a group:
    "optimizer", "l2" or "activation" (see backends/reference CONVENTIONS)."""
    key = {"optimizer": "float32_optimizer_constants", "l2": "float32_l2",
           "activation": "float32_activation_constants"}[group]
    return {key: "tensorflow"}
