"""The battery from pytest, in the manner of scikit-learn's ``parametrize_with_checks``.

::

    from suite.kit import parametrize_with_checks

    @parametrize_with_checks(["mybackend"])
    def test_conformance(backend, check):
        check(backend)

One test per backend, dtype and probe, with ids such as
``mybackend-float64-optimizer:adam``. The battery runs once per backend and process (on
the first check), in worker processes as ``suite check-backend`` runs it. A pass passes;
a known difference is an expected failure naming its ledger entries; an unsupported
feature is skipped with the backend's reason; a fail or an error fails with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from suite import catalogue, registry
from suite.kit.battery import probes
from suite.kit.matrix import ProbeVerdict, probe_verdicts
from suite.kit.runner import KitOptions, KitResult, check_backends

_RESULTS: dict[tuple[str, KitOptions], KitResult] = {}
_VERDICTS: dict[tuple[str, KitOptions], dict[tuple[str, str], ProbeVerdict]] = {}


def kit_result(backend: str, options: KitOptions) -> KitResult:
    """The battery's result for one backend, run once per process and options."""
    key = (backend, options)
    if key not in _RESULTS:
        _RESULTS[key] = check_backends([backend], options)
    return _RESULTS[key]


def kit_verdicts(backend: str, options: KitOptions) -> dict[tuple[str, str], ProbeVerdict]:
    """(probe, dtype) -> its verdict, summarized once per backend and options."""
    key = (backend, options)
    if key not in _VERDICTS:
        _VERDICTS[key] = {(v.probe, v.dtype): v
                          for v in probe_verdicts(kit_result(backend, options))}
    return _VERDICTS[key]


@dataclass(frozen=True)
class Check:
    """One probe in one dtype; calling it with a backend name runs (or reuses) the battery."""

    probe: str
    dtype: str
    options: KitOptions
    group: tuple[str, ...] = ()  # the parametrization's backends, run together on first use

    def __call__(self, backend: str) -> None:
        if (backend, self.options) not in _RESULTS and self.options.workers > 1:
            prefetch(self.group, self.options)
        _conclude(kit_verdicts(backend, self.options)[self.probe, self.dtype])

    def __repr__(self) -> str:
        return f"{self.dtype}-{self.probe}"


def prefetch(backends: Sequence[str], options: KitOptions) -> None:
    """Run the battery of every backend not run yet, ``options.workers`` at once, for
    kit_result."""
    todo = [b for b in backends if (b, options) not in _RESULTS
            and registry.describe(b).available]
    if todo:
        result = check_backends(todo, options)
        for backend in todo:
            _RESULTS[backend, options] = result.only(registry.name_of(backend))


def _conclude(v: ProbeVerdict) -> None:
    if v.verdict == "known difference":
        pytest.xfail(f"known difference ({', '.join(v.ledger)})")
    if v.verdict == "unsupported":
        pytest.skip(f"unsupported: {v.reason}")
    if v.verdict in ("fail", "error"):
        pytest.fail(f"{v.verdict} in {v.check}: {v.reason}", pytrace=False)


def parametrize_with_checks(backends: Sequence[str],
                            dtypes: Sequence[str] = catalogue.DTYPES, device: str = "cpu",
                            threads: int | None = None, timeout_s: float = 900.0,
                            workers: int = 1) -> Callable:
    """A ``pytest.mark.parametrize`` over (backend, check) for every probe and dtype.

    With ``workers`` > 1 the first check runs every backend's battery, that many side by
    side (the kit times nothing); each backend's own battery otherwise runs on its first
    check.
    """
    options = KitOptions(dtypes=tuple(dtypes), device=device, threads=threads,
                         timeout_s=timeout_s, workers=workers)
    group = tuple(backends)
    cases = [(backend, Check(probe.label, dtype, options, group))
             for backend in backends for dtype in dtypes for probe in probes()]
    ids = [f"{registry.name_of(backend) if registry.is_target(backend) else backend}-"
           f"{check!r}" for backend, check in cases]
    return pytest.mark.parametrize(("backend", "check"), cases, ids=ids)
