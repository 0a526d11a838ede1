"""The misbehaving test plug-ins (tests/plugins/) on the path of this process and of the
workers it starts, for a module-scoped fixture (the ``monkeypatch`` fixture is
function-scoped)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"


@contextlib.contextmanager
def plugins_on_path() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    patch.setenv("PYTHONPATH", str(PLUGINS))
    patch.syspath_prepend(str(PLUGINS))
    try:
        yield
    finally:
        patch.undo()
