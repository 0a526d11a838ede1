"""The machine's float32 matrix-multiply peak: ``python -m suite.bench.peak [numpy|torch]``.

Times square float32 products of a few sizes with the library's BLAS under the thread
settings the harness gives every backend, and prints one JSON line with the best
GFLOP/s (2 n^3 flops a product). The harness takes the highest library's figure as the
peak that ``peak_share`` divides by. Worker side: standard library, NumPy, and torch
only when asked for.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np

SIZES = (1024, 2048, 4096)
REPEATS = 5


def best_gflops(matmul: Callable[[int], Callable[[], object]]) -> dict[str, float]:
    """Best GFLOP/s of each size: the fastest of REPEATS products after one warm-up."""
    found = {}
    for n in SIZES:
        product = matmul(n)
        product()
        best = min(_clock(product) for _ in range(REPEATS))
        found[str(n)] = 2.0 * n ** 3 / best / 1e9
    return found


def _clock(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def numpy_matmul(n: int) -> Callable[[], object]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    return lambda: np.matmul(a, b, out=out)


def torch_matmul(n: int) -> Callable[[], object]:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    return lambda: torch.matmul(a, b, out=out)


LIBRARIES = {"numpy": numpy_matmul, "torch": torch_matmul}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    library = args[0] if args else "numpy"
    if library not in LIBRARIES:
        print(f"expected one of {', '.join(LIBRARIES)}. Received: {library!r}", file=sys.stderr)
        return 2
    by_size = best_gflops(LIBRARIES[library])
    print(json.dumps({"library": library, "gflops": max(by_size.values()),
                      "by_size": by_size}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
