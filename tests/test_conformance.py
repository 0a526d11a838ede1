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


# NOTE: the first check runs every backend's battery (each worker has the kit's own 900 s
# limit); under pytest's 300 s a slow machine would time it out, and each later check would
# start the battery again
@pytest.mark.slow
@pytest.mark.timeout(2400)
@parametrize_with_checks(BUILTINS, workers=2)
def test_builtin_backend_conforms(backend, check):
    info = registry.describe(backend)
    if not info.available:
        pytest.skip(info.reason)
    check(backend)
