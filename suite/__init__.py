"""fnn-suite: one feed-forward network spec, trained by several frameworks, compared.

Importing ``suite`` stays light (standard library and NumPy) because worker processes,
which may run in another environment, import it too; the harness side (pandas, plots)
loads on first use of ``suite.compare``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Sequential": "suite.api",
    "Dense": "suite.api",
    "optimizers": "suite.api",
    "regularizers": "suite.api",
    "Run": "suite.compare.results",
    "load_spec": "suite.api",
    "spec_from_dict": "suite.api",
    "resume": "suite.api",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "compare":  # the feature's package, which called is suite.api.compare
        return importlib.import_module("suite.compare")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'suite' has no attribute {name!r}")


__all__ = ["__version__", "compare", *_LAZY]
