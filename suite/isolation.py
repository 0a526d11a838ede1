"""What a backend's worker may import: its framework as if it were installed alone.

The suite's own environment holds every framework and the harness's libraries (pandas,
matplotlib, scikit-learn, ...). Frameworks import some of these when they find them:
TensorFlow imports JAX (tf.lite), Keras imports scikit-learn, pandas and matplotlib,
Keras on torch imports JAX. Seen from a worker that is seconds of import time
(docs/performance.md, section "Workers see their framework alone") that no user of
that framework alone pays, and a framework's timing that depends on what else is
installed. So each worker of the main interpreter hides every installed distribution
that is not in the dependency closure of its backend's ``requires``: an import of one
raises ModuleNotFoundError, as it would where that package is not installed.

Harness side: this module computes the names; suite.worker hides them (stdlib only).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from functools import lru_cache
from importlib import metadata

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement

from suite import registry
from suite.worker import HIDDEN_DISTRIBUTIONS, HIDDEN_MODULES, canonical_name

#: never hidden: the worker side itself
SUITE_PACKAGES = ("suite", "backends")
SUITE_DISTRIBUTION = "fnn-suite"
#: never hidden: what every environment with setuptools holds (setuptools imports the
#: top-level ``packaging``, though it does not declare it)
BASE_DISTRIBUTIONS = ("pip", "setuptools", "wheel", "packaging")


def worker_variables(target: str) -> dict[str, str]:
    """The environment variables that make a worker of ``target`` (``module:Class``) hide
    what its framework does not need; empty for a backend that declares no ``requires``."""
    requires = getattr(registry.import_target(target), "requires", ())
    if not requires:
        return {}
    distributions, modules = hidden(requires, keep=(*SUITE_PACKAGES, target.partition(".")[0]))
    return {HIDDEN_DISTRIBUTIONS: ",".join(distributions), HIDDEN_MODULES: ",".join(modules)}


def dependency_closure(roots: Iterable[str]) -> set[str]:
    """The installed distributions ``roots`` need, with everything they need in turn
    (extras left out: a framework's own imports, not its optional ones)."""
    seen: set[str] = set()
    todo = [canonical_name(name) for name in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            requirements = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # not installed: nothing of it to keep
        seen.add(name)
        todo.extend(_needed(requirements))
    return seen


def _needed(requirements: list[str]) -> list[str]:
    names = []
    for line in requirements:
        try:
            requirement = Requirement(line)
            wanted = requirement.marker is None or requirement.marker.evaluate({"extra": ""})
        except (InvalidRequirement, UndefinedEnvironmentName):
            continue
        if wanted:
            names.append(canonical_name(requirement.name))
    return names


@lru_cache(maxsize=1)
def _installed() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """Every installed distribution, and each top-level module's providers."""
    providers = {module: frozenset(canonical_name(d) for d in dists)
                 for module, dists in metadata.packages_distributions().items()}
    installed = frozenset(canonical_name(d.metadata["Name"] or "")
                          for d in metadata.distributions())
    return installed, providers


def hidden(requires: Iterable[str], keep: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """The distributions, and the top-level modules, that a worker of a backend that
    ``requires`` these distributions hides: those outside their dependency closure.
    ``keep``: module names never hidden (the suite's own packages and the backend's)."""
    allowed = dependency_closure(["numpy", *BASE_DISTRIBUTIONS, *requires])
    installed, providers = _installed()
    kept = set(keep) | set(sys.stdlib_module_names)
    modules = sorted(module for module, dists in providers.items()
                     if module not in kept and module.isidentifier() and not dists & allowed)
    own = {SUITE_DISTRIBUTION, *(d for module in keep for d in providers.get(module, ()))}
    return sorted(installed - allowed - own), modules
