"""A worker sees its framework as if it were installed alone: what the harness hides, and
that every way of probing for a hidden package answers "not installed"."""

from __future__ import annotations

import json
import subprocess
import sys

from suite import isolation, processes, registry

PROBE = """
import importlib.util, json, sys
from importlib import metadata
from suite.worker import hide_distributions
hide_distributions()
found = {}
for module, distribution in json.loads(sys.argv[1]):
    try:
        __import__(module)
        imported = True
    except ModuleNotFoundError:
        imported = False
    try:
        metadata.version(distribution)
        listed = True
    except metadata.PackageNotFoundError:
        listed = False
    found[module] = [imported, importlib.util.find_spec(module) is not None, listed]
print(json.dumps(found))
"""


class Undeclared:
    """A plug-in that names no ``requires``."""


def probe(env: dict[str, str], pairs: list[tuple[str, str]]) -> dict[str, list[bool]]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(pairs)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_a_framework_keeps_its_dependency_closure_and_loses_the_rest():
    distributions, modules = isolation.hidden(("keras", "torch"), keep=("suite", "backends"))
    for needed in ("torch", "keras", "numpy", "sympy", "h5py", "optree", "packaging"):
        assert needed not in modules and needed not in distributions
    for other in ("jax", "sklearn", "pandas", "matplotlib", "tensorflow"):
        assert other in modules
    assert "scikit-learn" in distributions and "jax" in distributions
    assert "fnn-suite" not in distributions and "suite" not in modules
    # nothing is hidden from a backend that declares no requirements (a plug-in's choice)
    assert isolation.worker_variables("tests.test_isolation:Undeclared") == {}


def test_a_hidden_package_is_not_importable_not_found_and_not_listed():
    env = processes.worker_env(1)
    env.update(isolation.worker_variables(registry.resolve("torch")))
    found = probe(env, [("pandas", "pandas"), ("sklearn", "scikit-learn"), ("jax", "jax"),
                        ("torch", "torch"), ("numpy", "numpy")])
    assert found["pandas"] == found["sklearn"] == found["jax"] == [False, False, False]
    assert found["torch"] == found["numpy"] == [True, True, True]
    # without the variables (a worker the harness did not start) everything is there
    plain = probe(processes.worker_env(1), [("pandas", "pandas")])
    assert plain["pandas"] == [True, True, True]
