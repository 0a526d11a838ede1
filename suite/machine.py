"""What a run records of the machine it ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np


def environment() -> dict[str, Any]:
    """Python, platform, CPU model and cores, and the harness's NumPy."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def threads_or_all(threads: int | None) -> int:
    """The intra-op thread count of a run: ``threads``, or every core."""
    return threads or os.cpu_count() or 1
