"""Install a plug-in distribution as a user would, without touching the test environment.

``pip install --target`` puts the package and its dist-info (with the entry point) in a
folder of its own; the ``suite`` command sees it through PYTHONPATH only, in a
subprocess, so the test process's own registry never lists it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SUITE = [sys.executable, "-c", "from suite.cli import main; main()"]


def pip_install(source: Path, work: Path) -> Path:
    """Install the project in ``source`` into ``work/site``; returns that folder.

    pip builds a local project in place (build/, *.egg-info), so it builds a copy.
    """
    copy = work / "src"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    site = work / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--no-cache-dir", "--disable-pip-version-check",
         "--target", str(site), str(copy)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return site


def env_with(site: Path) -> dict[str, str]:
    """The environment of a process that sees the plug-ins installed in ``site``."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "200"}


def suite(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``suite ARGS`` with the plug-ins in ``site`` installed."""
    return subprocess.run([*SUITE, *args], capture_output=True, text=True, cwd=cwd,
                          env=env_with(site), timeout=600)


def backends_row(listing: str, name: str) -> dict[str, str]:
    """The row of backend ``name`` in what ``suite backends`` prints for a program (TSV:
    a header line, then one line a backend, its name first)."""
    header, *lines = listing.splitlines()
    rows = [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]
    found = [row for row in rows if row["backend"] == name]
    assert len(found) == 1, listing
    return found[0]


def matrix(conformance_md: str) -> dict[str, list[str]]:
    """conformance.md's matrix: probe label -> its cells (one per backend and dtype)."""
    found = {}
    for line in conformance_md.split("## Matrix", 1)[1].split("\n## ", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].startswith("`"):
            found[cells[0].strip("`")] = cells[1:]
    return found
