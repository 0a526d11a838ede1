"""Backends in environments of their own: BACKEND@VERSION, building, caching, failures.

The real thing: virtual environments built with pip from the package index, in a folder
of this test session (FNN_SUITE_ENVS), and workers that run in them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import suite
from suite import envs, registry
from suite.errors import UserError

SUITE = [sys.executable, "-c", "from suite.cli import main; main()"]


def test_versions_are_checked_and_pinned():
    assert envs.split_version("torch@2.13.0") == ("torch", "2.13.0")
    assert envs.split_version("torch") == ("torch", None)
    with pytest.raises(UserError, match="expected BACKEND@VERSION .* Received: 'torch@latest'"):
        envs.split_version("torch@latest")
    assert registry.environment_of("numpy@1.26").requirements == ("numpy==1.26.*",)
    assert registry.environment_of("torch@2.13.0").requirements == ("torch==2.13.0", "numpy")
    assert registry.environment_of("torch") is None  # the main environment
    with pytest.raises(UserError, match="unknown backend 'pytorch'"):
        registry.environment_of("pytorch@2.0")


def test_the_key_follows_the_requirements(monkeypatch, tmp_path):
    monkeypatch.setenv("FNN_SUITE_ENVS", str(tmp_path))
    a, b = registry.environment_of("numpy@1.26"), registry.environment_of("numpy@1.25")
    assert a.key != b.key and a.path.parent == tmp_path
    assert registry.environment_of("numpy@1.26").path == a.path


def test_pip_failure_names_the_package():
    output = ("ERROR: Could not find a version that satisfies the requirement numpy==9.9.*\n"
              "ERROR: No matching distribution found for numpy==9.9.*\n")
    assert envs.pip_failure(output, ["numpy==9.9.*"]) == \
        "no matching distribution for numpy==9.9.*"


@pytest.fixture(scope="module")
def env_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("envs")
    mp = pytest.MonkeyPatch()
    mp.setenv("FNN_SUITE_ENVS", str(root))
    yield root
    mp.undo()


@pytest.mark.slow
def test_numpy_1_26_runs_beside_numpy_2(env_root, tmp_path):
    """The reference at NumPy 1.26, in its own environment, against the main one's NumPy 2."""
    run = suite.compare("regression-mlp", backends=["numpy", "numpy@1.26"], dtype="float64",
                        epochs=1, timing=False, out=tmp_path / "run")
    versions = {name: b["versions"] for name, b in run.info["backends"].items()}
    assert versions["numpy"]["numpy"] == np.__version__ and np.__version__.startswith("2.")
    assert versions["numpy@1.26"]["numpy"].startswith("1.26.")
    assert set(run.verdicts.loc["numpy@1.26"]) == {"pass"}
    built = envs.installed()
    assert [info.name for info in built] == ["numpy@1.26"]
    assert built[0].requirements == ["numpy==1.26.*"] and built[0].size_mb > 1
    # the worker side only: no pandas there, and the copy is the current code
    python = registry.environment_of("numpy@1.26").python
    probe = subprocess.run([str(python), "-c", "import pandas"], capture_output=True)
    assert probe.returncode != 0


@pytest.mark.slow
def test_a_version_that_does_not_install_is_one_error_row(env_root, tmp_path):
    run = suite.compare("regression-mlp", backends=["numpy@9.9", "torch"], epochs=1,
                        timing=False, out=tmp_path / "run")
    info = run.info["backends"]["numpy@9.9"]
    assert info["status"] == "error"
    assert info["reason"].startswith("building the environment for numpy@9.9 failed: "
                                     "no matching distribution for numpy==9.9.*")
    assert run.info["backends"]["torch"]["status"] == "ok"
    assert not [p for p in env_root.iterdir() if "9.9" in p.name]  # nothing half-built


@pytest.mark.slow
def test_an_environment_changed_behind_the_suites_back(env_root, tmp_path):
    spec = registry.environment_of("numpy@1.26")
    envs.ensure(spec)
    spec.python.rename(spec.python.with_name("python-moved"))
    try:
        run = suite.compare("regression-mlp", backends=["numpy@1.26", "torch"], epochs=1,
                            timing=False, out=tmp_path / "run")
    finally:
        spec.python.with_name("python-moved").rename(spec.python)
    info = run.info["backends"]["numpy@1.26"]
    assert info["status"] == "error" and "has no interpreter" in info["reason"]
    assert "suite env remove numpy@1.26" in info["reason"]
    assert run.info["backends"]["torch"]["status"] == "ok"


@pytest.mark.slow
def test_env_commands(env_root):
    env = {**os.environ, "FNN_SUITE_ENVS": str(env_root)}
    envs.ensure(registry.environment_of("numpy@1.26"))
    listed = subprocess.run([*SUITE, "env", "list"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert listed.returncode == 0 and "numpy@1.26" in listed.stdout
    assert "numpy==1.26.*" in listed.stdout
    main_env = subprocess.run([*SUITE, "env", "create", "torch"], capture_output=True,
                              text=True, env=env, timeout=60)
    assert main_env.returncode == 2
    assert "runs in the main environment" in main_env.stderr
    gone = subprocess.run([*SUITE, "env", "remove", "numpy@1.26"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert gone.returncode == 0 and not envs.installed()
    again = subprocess.run([*SUITE, "env", "remove", "numpy@1.26"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert again.returncode == 2 and "no environment named 'numpy@1.26'" in again.stderr
