"""Files written whole or not at all: text, JSON and NPZ through a temporary file and a
rename in the same folder. A write that does not fit (no space left, a quota, a file-size
limit) removes its temporary file and raises ``DiskFull``: one line that names the file,
the bytes it needed and what was left. Worker side: standard library and NumPy only.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from suite.errors import DiskFull

#: errno -> what it means for a write that did not fit
_FULL = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
         errno.EFBIG: "file too large for the process's file-size limit"}


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) via a temporary file in the same folder: whole or not at all."""
    data = text.encode("utf-8")
    temp = None
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException as exc:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        full = disk_full(exc, path, len(data))
        if full is None:
            raise
        raise full from exc


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An NPZ file of ``arrays``, via a temporary file: whole or not at all."""
    tmp = path.with_name(f".{path.name}.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        # the arrays' bytes and, for each, about a header and a zip entry
        need = sum(np.asarray(a).nbytes for a in arrays.values()) + 250 * len(arrays)
        full = disk_full(exc, path, need)
        if full is None:
            raise
        raise full from exc


def disk_full(exc: BaseException, path: Path, need: int) -> DiskFull | None:
    """``DiskFull`` for a write of ``need`` bytes to ``path`` that failed with ``exc``, if it
    failed for want of space; else None. For writers of their own (streamed records):
    ``raise disk_full(exc, path, need) or exc``."""
    if not isinstance(exc, OSError) or exc.errno not in _FULL:
        return None
    if exc.errno == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        left = "" if limit == resource.RLIM_INFINITY else f"; the limit is {_size(limit)}"
    else:
        try:
            left = f"; {_size(shutil.disk_usage(path.parent).free)} free"
        except OSError:
            left = ""
    return DiskFull(f"{_FULL[exc.errno]} writing {path} (needs about {_size(need)}{left})")


def _size(n: float) -> str:
    """``2.6 MB``, ``11.6 kB``, ``812 bytes``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"
