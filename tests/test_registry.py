"""Finding backends: entry points (built-ins register like plug-ins) and module paths."""

from __future__ import annotations

import sys

import pytest

from suite import registry
from suite.errors import UserError


def test_builtins_register_through_the_entry_point_group():
    targets = registry.entry_points()
    assert list(targets)[0] == "numpy"  # the reference first
    assert targets["torch"] == "backends.torch_backend:TorchBackend"
    assert {"numpy", "torch", "keras"} <= set(targets)


def test_listing_backends_imports_no_framework():
    code = ("import sys; from suite import registry; infos = registry.all_backends(); "
            "assert all(i.available for i in infos if i.name in ('numpy','torch','keras')), "
            "infos; assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules")
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_versions_come_from_installed_distributions():
    info = registry.describe("torch")
    assert info.available and info.versions["torch"].startswith("2.")


def test_module_paths_and_unknown_names():
    assert registry.resolve("pkg.mod:Cls") == "pkg.mod:Cls"
    with pytest.raises(UserError, match="unknown backend 'tensorflw'; available: numpy"):
        registry.resolve("tensorflw")
    broken = registry.describe("no_such_module_xyz:Backend")
    assert not broken.available and "cannot import no_such_module_xyz:Backend" in broken.reason
    with pytest.raises(UserError, match="cannot import backend"):
        registry.name_of("no_such_module_xyz:Backend")
