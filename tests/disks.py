"""Full disks for the tests: a file-size limit (works everywhere), a small tmpfs (where
mounting is permitted), and a check that every file left in a folder is whole."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """No file of this process may grow past ``limit`` bytes: writes fail with EFBIG."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the process dies of it
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's spelling: 64k) mounted at ``folder``; skips the test
    where mounting is not permitted (not root, no CAP_SYS_ADMIN, not Linux)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(folder)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def assert_whole(folder: Path) -> list[Path]:
    """Every JSON, CSV and NPZ file under ``folder`` parses, and no temporary file is left;
    returns the files."""
    found = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in found:
        assert not path.name.startswith("."), f"a temporary file is left: {path}"
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".npz":
            with np.load(path) as data:
                for key in data.files:
                    data[key]
    return found
