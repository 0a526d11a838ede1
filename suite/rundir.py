"""The run directory: where a run's files live, written so none is ever half a file."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from suite.errors import UserError

LATEST = "latest"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) via a temporary file in the same folder: whole or not at all."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


def create(spec_name: str, root: Path, out: Path | None, force: bool) -> Path:
    """A new, empty run directory: ``out`` as given, or ``root/<timestamp>-<name>``."""
    if out is not None:
        if out.exists() and any(out.iterdir()):
            if not force:
                raise UserError(f"output directory {out} already exists and is not empty",
                                hint="choose another --out, or add --force to replace it")
            if not (out / "run.json").exists():
                raise UserError(f"refusing to replace {out}: it is not a run directory "
                                "(no run.json)", hint="choose another --out")
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        return out
    root.mkdir(parents=True, exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(spec_name)}"
    path, n = root / base, 1
    while path.exists():
        n += 1
        path = root / f"{base}-{n}"
    path.mkdir()
    return path


def point_latest(run_dir: Path) -> Path:
    """Make ``<parent>/latest`` point at ``run_dir`` (a relative symlink, swapped atomically)."""
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.tmp"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        # No symlinks here (or `latest` is a real folder): a text pointer instead.
        atomic_write_text(run_dir.parent / f"{LATEST}.txt", run_dir.name + "\n")
    return link


def adopt_worker_files(run_dir: Path, worker_dir: Path, name: str) -> None:
    """Move a finished worker's arrays to their documented places (one rename each)."""
    for kind in ("grads", "params", "outputs"):
        source = worker_dir / f"{kind}.npz"
        if source.exists():
            (run_dir / kind).mkdir(exist_ok=True)
            os.replace(source, run_dir / kind / f"{name}.npz")
