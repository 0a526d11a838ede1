"""Every built-in backend against the conformance battery, as a plug-in author runs it.

Each backend must pass every probe in float32 and float64, or differ only where a ledger
entry explains it (an expected failure naming the entry). A test per backend, dtype and
probe; the battery runs once per backend, in worker processes, two backends side by side
(nothing is timed; PyTensor's and Theano's cold compiles are single-threaded).
"""

from __future__ import annotations

import pytest

from suite import registry
from suite.kit import parametrize_with_checks
from suite.rundir import REFERENCE

# cntk and caffe have no installable build (tests/test_registry.py checks their reasons).
BUILTINS = [name for name in registry.builtin_names() if name != REFERENCE
            and not getattr(registry.import_target(registry.resolve(name)), "unavailable", "")]
# PyTensor compiles each probe's whole graph with numba: on a fresh machine its battery took
# 441 s (68 s with a warm cache), longer than the rest of `make test`'s conformance
# together. `make conformance` runs it (and the README's support matrix, which needs it);
# `make test` leaves it out (-m "not full_battery"). Its backend tests and the cross-
# backend comparisons of tests/test_backends.py still run it in `make test`.
WHOLE_GRAPH_COMPILE = ["pytensor"]


def _conforms(backend, check):
    info = registry.describe(backend)
    if not info.available:
        pytest.skip(info.reason)
    check(backend)


# NOTE: the first check runs every backend's battery (each worker has the kit's own 900 s
# limit); under pytest's 300 s a slow machine would time it out, and each later check would
# start the battery again
@pytest.mark.slow
@pytest.mark.timeout(2400)
@parametrize_with_checks([b for b in BUILTINS if b not in WHOLE_GRAPH_COMPILE], workers=2)
def test_builtin_backend_conforms(backend, check):
    _conforms(backend, check)


@pytest.mark.slow
@pytest.mark.full_battery
@pytest.mark.timeout(2400)
@parametrize_with_checks([b for b in BUILTINS if b in WHOLE_GRAPH_COMPILE], workers=1)
def test_whole_graph_compiling_backend_conforms(backend, check):
    _conforms(backend, check)
