"""The README's support matrix is what the conformance kit produces now."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from suite import registry
from suite.kit import KitOptions
from suite.kit.pytest_checks import kit_result
from suite.kit.render import current_block, support_matrix_markdown
from suite.kit.runner import merge
from suite.rundir import REFERENCE

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.slow
@pytest.mark.full_battery  # it needs every backend's battery (make conformance)
def test_readme_support_matrix_is_current():
    """Reuses the battery results of tests/test_conformance.py (same options, one process)."""
    infos = [registry.describe(name) for name in registry.builtin_names()]
    available = [i.name for i in infos if i.available and i.name != REFERENCE]
    unavailable = {i.name: i.reason or "" for i in infos if not i.available}
    result = merge([kit_result(name, KitOptions()) for name in available])
    expected = support_matrix_markdown(result, unavailable)
    current = current_block(README.read_text(encoding="utf-8"))
    diff = "\n".join(difflib.unified_diff(current.splitlines(), expected.splitlines(),
                                          "README.md", "the kit now", lineterm=""))
    assert current == expected, f"the README's support matrix is stale: run `make " \
                                f"support-matrix`\n{diff}"
