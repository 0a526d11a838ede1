"""The example plug-in examples/autograd-backend, installed as a user would install it:
a real distribution whose entry point makes ``suite backends`` list it and
``suite check-backend autograd`` pass wherever it claims support."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from plugin_install import backends_row, env_with, matrix, pip_install, suite

from suite.kit.battery import probes

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "autograd-backend"

# What the example declares in AutogradBackend.unsupported: every other probe must pass.
DECLARED_UNSUPPORTED = {"optimizer:adamw", "optimizer:rmsprop", "optimizer:adagrad"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return pip_install(EXAMPLE, tmp_path_factory.mktemp("autograd"))


def test_backends_lists_it_as_available(site):
    done = suite(site, "backends")
    assert done.returncode == 0, done.stderr
    row = backends_row(done.stdout, "autograd")
    assert row["available"] == "true" and "autograd=1." in row["versions"]
    assert row["target"] == "fnn_suite_autograd.backend:AutogradBackend"


def test_check_backend_passes_where_it_claims_support(site, tmp_path):
    out = tmp_path / "check"
    done = suite(site, "check-backend", "autograd", "--dtype", "float64", "--dtype",
                 "float32", "--threads", "1", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = (out / "conformance.md").read_text(encoding="utf-8")
    cells = matrix(report)
    expected = {p.label: ["– unsupported" if p.feature in DECLARED_UNSUPPORTED else "✓ pass"]
                * 2 for p in probes()}
    assert cells == expected
    assert report.count("autograd has no step-wise optimizers") == 2 * sum(
        p.feature in DECLARED_UNSUPPORTED for p in probes())


def test_its_own_tests_pass(site, tmp_path):
    """tests/test_conformance.py: the battery through parametrize_with_checks, and dtypes."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True, text=True, cwd=site.parent / "src", env=env_with(site),
        timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    skipped = 2 * sum(p.feature in DECLARED_UNSUPPORTED for p in probes())
    assert f"{skipped} skipped" in done.stdout.splitlines()[-1]
