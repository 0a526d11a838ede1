"""Finding backends, and whether each can run here: the ``fnn_suite.backends`` entry-point
group, or ``package.module:Class``.

Built-in backends register through the same entry points as third-party plug-ins.
Listing backends never imports a framework: availability is read from installed
distributions (or, for a backend with an environment of its own, from that environment).
:func:`describe` is the one place that decides whether a backend can run, and
:func:`select` which backends a run takes. Worker side: standard library only.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import importlib.util
from dataclasses import dataclass, field

from suite import envs
from suite.errors import UserError
from suite.rundir import REFERENCE

GROUP = "fnn_suite.backends"


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and why not."""

    name: str
    target: str  # "package.module:Class"
    available: bool  # runs when asked for by name
    reason: str | None  # why it is unavailable
    versions: dict[str, str] = field(default_factory=dict)
    #: its own environment is not built yet: building takes minutes, so a run takes it
    #: only when asked for by name (or once built)
    needs_build: bool = False

    @property
    def ready(self) -> bool:
        """Whether a run that names no backends takes it."""
        return self.available and not self.needs_build


def entry_points() -> dict[str, str]:
    """Registered backend name -> ``module:Class`` target."""
    found = {ep.name: ep.value for ep in metadata.entry_points(group=GROUP)}
    # The reference comes first; the rest in name order.
    return dict(sorted(found.items(), key=lambda item: (item[0] != REFERENCE, item[0])))


def builtin_names() -> list[str]:
    """The backends fnn-suite itself registers (third-party plug-ins excluded)."""
    own = {ep.name for ep in metadata.entry_points(group=GROUP)
           if ep.dist is not None and ep.dist.name == "fnn-suite"}
    return [name for name in entry_points() if name in own]


def import_target(target: str) -> type:
    module_name, _, attr = target.partition(":")
    if not attr:
        raise UserError(f"expected a backend as package.module:Class. Received: {target!r}")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def is_target(name: str) -> bool:
    return ":" in name


def resolve(name: str) -> str:
    """The ``module:Class`` target of a backend name (``torch``, ``torch@2.12.0``) or module
    path."""
    if is_target(name):
        return name
    name = name.partition("@")[0]
    targets = entry_points()
    if name not in targets:
        known = ", ".join(targets) or "none"
        raise UserError(f"unknown backend {name!r}; available: {known}",
                        hint="or give a plug-in as package.module:Class")
    return targets[name]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def name_of(backend: str) -> str:
    """The display name of a backend: its own, or a plug-in class's ``name`` attribute."""
    if not is_target(backend):
        return backend
    try:
        return getattr(import_target(backend), "name", "") or backend
    except Exception as exc:
        raise UserError(f"cannot import backend {backend!r}: {exc}",
                        hint="check the module path and that the package is installed") from None


def environment_of(name: str) -> envs.EnvSpec | None:
    """The environment a backend (``mxnet``, ``torch@2.12.0``) runs in: None for the main
    one (and for a ``module:Class`` plug-in, which runs where it is installed)."""
    if is_target(name):
        return None
    base, version = envs.split_version(name)
    return envs.spec_for(name, import_target(resolve(base)))


def describe(name: str) -> Availability:
    """Whether a backend can run here, without importing its framework."""
    target = resolve(name)
    try:
        cls = import_target(target)
    except Exception as exc:  # a broken plug-in must not stop the suite
        return Availability(name, target, False, f"cannot import {target}: {exc}")
    broken = _broken(cls)
    if broken:
        return Availability(name, target, False, f"{target} {broken}")
    if getattr(cls, "unavailable", ""):  # a framework with no installable build
        return Availability(name, target, False, cls.unavailable)
    if getattr(cls, "environment", ()):
        return _own_environment(name, target, cls)
    versions: dict[str, str] = {}
    missing = []
    for distribution in getattr(cls, "requires", ()):
        version = _version(distribution)
        if version is None:
            missing.append(distribution)
        else:
            versions[distribution] = version
    if missing:
        extra = getattr(cls, "extra", "")
        fix = (f"pip install 'fnn-suite[{extra}]' -c constraints.txt" if extra
               else f"pip install {' '.join(missing)}")
        reason = f"not installed: {', '.join(missing)} ({fix})"
        return Availability(name, target, False, reason, versions)
    return Availability(name, target, True, None, versions)


def _broken(cls: object) -> str | None:
    """Why ``cls`` cannot serve as a backend, or None."""
    from backends.base import Backend

    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        return "is not a subclass of backends.base.Backend"
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        return f"does not implement {', '.join(missing)}"
    return None


def _own_environment(name: str, target: str, cls: type) -> Availability:
    """A backend with an environment of its own runs once that can be built: its versions
    are those of the built environment, if any."""
    spec = envs.spec_for(name, cls)
    versions = envs.versions_in(spec)
    wanted = {d: versions[d] for d in getattr(cls, "requires", ()) if d in versions}
    return Availability(name, target, True, None,
                        wanted or {"environment": "built on first use"},
                        needs_build=not spec.path.exists())


def all_backends() -> list[Availability]:
    return [describe(name) for name in entry_points()]


@dataclass(frozen=True)
class Selected:
    """A backend a run takes: its display name, class target and environment."""

    name: str
    target: str
    env: envs.EnvSpec | None  # None: the main environment


def select(requested: list[str] | None) -> tuple[list[Selected], dict[str, str]]:
    """The backends of a run, the reference first, and those left out with the reason.

    ``requested`` None means every backend that is ready here; names asked for run
    whatever their state (a failure is their own error row), but an unknown name is the
    user's mistake and raises :class:`UserError`.
    """
    skipped: dict[str, str] = {}
    if requested is None:
        names = []
        for found in all_backends():
            if found.ready:
                names.append(found.name)
            elif found.available:
                skipped[found.name] = (f"its environment is not built yet (suite env create "
                                       f"{found.name}, or name it in --backends)")
            else:
                skipped[found.name] = found.reason or "unavailable"
    else:
        for name in requested:
            resolve(name)
        names = list(dict.fromkeys(requested))
    chosen = [Selected(REFERENCE, resolve(REFERENCE), None)]
    chosen += [Selected(name_of(n), resolve(n), environment_of(n))
               for n in names if n != REFERENCE]
    return chosen, skipped
