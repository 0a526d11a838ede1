"""NumPy's own BLAS for two Level-1 routines NumPy does not expose: scal and axpy.

An SGD update over millions of parameters is memory-bound. NumPy's ufuncs run it on one
core; torch runs its optimizer on its intra-op threads. The BLAS that ``numpy.matmul``
calls, already loaded with the thread count the harness pinned, runs ``x *= a`` (scal)
and ``y += a * x`` (axpy) on those threads. They are used only where their numbers are
NumPy's exactly: scal rounds a * x once, as NumPy's multiply does, and axpy with a = -1
gives y - x exactly (the product by -1 is exact, fused or not). Where NumPy's BLAS cannot
be found (another build, another system), :func:`level1` returns None and the caller keeps
its NumPy path.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

# (symbol pattern, integer type): NumPy 2's wheels (scipy-openblas, 64-bit integers),
# NumPy 1.2x's wheels (openblas64_), then a plain CBLAS with 32-bit integers
_FLAVOURS = (("scipy_cblas_{}64_", ctypes.c_int64), ("cblas_{}64_", ctypes.c_int64),
             ("cblas_{}", ctypes.c_int32))
_SCALARS = {np.dtype(np.float32): ("s", ctypes.c_float),
            np.dtype(np.float64): ("d", ctypes.c_double)}


class Level1:
    """scal and axpy of one BLAS library, for contiguous float32 and float64 vectors."""

    def __init__(self, library: ctypes.CDLL, pattern: str, integer: type):
        self._limit = np.iinfo(np.int32 if integer is ctypes.c_int32 else np.int64).max
        self._scal, self._axpy = {}, {}
        for dtype, (letter, scalar) in _SCALARS.items():
            scal = getattr(library, pattern.format(f"{letter}scal"))
            scal.argtypes, scal.restype = [integer, scalar, ctypes.c_void_p, integer], None
            axpy = getattr(library, pattern.format(f"{letter}axpy"))
            axpy.argtypes = [integer, scalar, ctypes.c_void_p, integer, ctypes.c_void_p,
                             integer]
            axpy.restype = None
            self._scal[dtype], self._axpy[dtype] = scal, axpy

    def handles(self, *arrays: np.ndarray) -> bool:
        """Whether the arrays are contiguous writable 1-d vectors of one float dtype."""
        first = arrays[0]
        return first.dtype in self._scal and all(
            a.ndim == 1 and a.dtype == first.dtype and a.size == first.size
            and a.flags.c_contiguous and a.flags.writeable for a in arrays
        ) and first.size <= self._limit

    def scale(self, x: np.ndarray, factor: float) -> None:
        """x *= factor, in place: round(factor * x) elementwise, as NumPy computes it."""
        # NOTE: some BLAS write zeros for factor 0 (NumPy: 0 * inf = nan): not used there
        if factor == 0.0 or not np.isfinite(factor):
            raise ValueError(f"scale needs a finite nonzero factor. Received: {factor!r}")
        self._scal[x.dtype](x.size, factor, x.ctypes.data, 1)

    def subtract(self, y: np.ndarray, x: np.ndarray) -> None:
        """y -= x, in place: axpy with a = -1, which is y - x exactly."""
        self._axpy[x.dtype](x.size, -1.0, x.ctypes.data, 1, y.ctypes.data, 1)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The BLAS library NumPy loaded, found in /proc/self/maps (Linux), or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps
                     if "blas" in line.lower() and line.split()[-1][:1] == "/"}
    except OSError:
        return None
    for path in sorted(paths, key=lambda path: ("numpy" not in path, path)):  # NumPy's first
        try:
            found = ctypes.CDLL(path)
        except OSError:
            continue
        if any(hasattr(found, pattern.format("saxpy")) for pattern, _ in _FLAVOURS):
            return found
    return None


@functools.cache
def level1() -> Level1 | None:
    """scal and axpy of the BLAS NumPy loaded, or None."""
    found = library()
    for pattern, integer in _FLAVOURS:
        if found is not None and hasattr(found, pattern.format("saxpy")):
            return Level1(found, pattern, integer)
    return None


def settings() -> dict[str, object]:
    """OpenBLAS's own account of itself (openblas_get_config: the kernel it picked for
    this CPU; openblas_get_num_threads); empty for another BLAS or none found."""
    found, answers = library(), {}
    for key, symbol, restype in (("numpy.blas_config", "get_config", ctypes.c_char_p),
                                 ("numpy.blas_threads", "get_num_threads", ctypes.c_int)):
        for name in (f"scipy_openblas_{symbol}64_", f"openblas_{symbol}64_",
                     f"openblas_{symbol}"):
            function = getattr(found, name, None) if found is not None else None
            if function is not None:
                function.restype, function.argtypes = restype, []
                value = function()
                answers[key] = value.decode() if isinstance(value, bytes) else int(value)
                break
    return answers
