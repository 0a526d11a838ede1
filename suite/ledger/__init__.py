"""The ledger: where a framework's native formula differs from the reference, and how.

Each entry names the backends and spec features it concerns, both formulas, the source
it was read from, and the reference *conventions* that reproduce the framework's
formula. The harness runs the reference a second time with those conventions (a
"variant"); a deviation counts as a known difference only when the backend agrees with
that variant within tolerance, i.e. only as far as the entry explains it. Entries
without conventions record a convention the suite pins so that no difference arises.
An entry whose framework part no convention reproduces (a kernel library's arithmetic)
names the environment switches that turn it off instead: the backend's *twin* runs with
them, and the entry explains a difference only where the twin is back within the noise.

The entries are data, one module per framework family; every entry has a test in
tests/test_ledger.py that shows its difference is real.
"""

from __future__ import annotations

from suite.ledger import jax, keras, mxnet, pytensor, tensorflow, theano, torch
from suite.ledger.entry import Entry
from suite.spec import Spec

ENTRIES: tuple[Entry, ...] = (keras.ENTRIES + torch.ENTRIES + tensorflow.ENTRIES + jax.ENTRIES
                              + mxnet.ENTRIES + pytensor.ENTRIES + theano.ENTRIES)

__all__ = ["ENTRIES", "Entry", "applicable", "by_id", "conventions_for", "twin_env_for", "twins"]


def by_id(entry_id: str) -> Entry:
    return next(entry for entry in ENTRIES if entry.id == entry_id)


def applicable(spec: Spec, backend: str) -> list[Entry]:
    """Entries with conventions that concern this backend and this spec (a ledger variant
    reproduces them)."""
    return [entry for entry in ENTRIES if entry.applies(spec, backend) and entry.conventions]


def twins(spec: Spec, backend: str) -> list[Entry]:
    """Entries with a twin that concern this backend and this spec (the backend run again
    with their environment switches reproduces the plain formula)."""
    return [entry for entry in ENTRIES if entry.applies(spec, backend) and entry.twin_env]


def conventions_for(spec: Spec, backend: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for entry in applicable(spec, backend):
        merged.update(entry.conventions)
    return merged


def twin_env_for(spec: Spec, backend: str) -> dict[str, str]:
    """The environment of ``backend``'s twin in a run of ``spec``; empty: it has none."""
    merged: dict[str, str] = {}
    for entry in twins(spec, backend):
        merged.update(entry.twin_env)
    return merged
