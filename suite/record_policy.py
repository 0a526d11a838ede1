"""Which lockstep steps keep their gradients and parameters, and what that costs: the
record policy of ``--record`` and a spec's ``[record]`` table, its size budget, and the
policy that fits a budget. Standard library only (the spec reads it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from suite.errors import UserError


@dataclass(frozen=True)
class Policy:
    """Which steps keep their gradients and parameters (every step keeps its loss):
    every step below ``first``, then every ``every``-th step, and the last step.
    ``first=None`` records every step."""

    first: int | None = None
    every: int = 1

    def records(self, step: int, total: int) -> bool:
        if self.first is None or step < self.first or step == total - 1:
            return True
        return (step - self.first) % self.every == 0

    def steps(self, total: int) -> list[int]:
        if self.first is None:
            return list(range(total))
        head = list(range(min(self.first, total)))
        tail = list(range(self.first, total, self.every))
        if total - 1 >= self.first and (not tail or tail[-1] != total - 1):
            tail.append(total - 1)
        return head + tail

    def describe(self, total: int) -> str:
        """In words, for the terminal and the report."""
        kept = len(self.steps(total))
        if self.first is None or kept == total:
            return f"every step ({total})"
        head = {0: "", 1: "step 0, then "}.get(self.first, f"steps 0-{self.first - 1}, then ")
        start = f" from step {self.first}" if self.first > 0 else ""
        return (f"{head}every {ordinal(self.every)} step{start}, and the last ({kept} of "
                f"{total})")

    def to_text(self) -> str:
        return "all" if self.first is None else f"first={self.first},every={self.every}"

    def to_dict(self) -> dict[str, Any]:
        return {"first": self.first, "every": self.every}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Policy:
        raw = raw or {}
        return cls(raw.get("first"), int(raw.get("every") or 1))


EVERY_STEP = Policy()


def ordinal(n: int) -> str:
    if n == 1:
        return ""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def parse_policy(text: str, where: str = "--record") -> Policy | None:
    """``all``, ``auto`` (None: fit the budget) or ``first=N,every=K`` (either part may be
    left out: ``every=10`` is ``first=0,every=10``)."""
    text = text.strip().lower()
    if text == "all":
        return Policy()
    if text == "auto":
        return None
    fields: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in ("first", "every") or not value.strip().isdigit():
            raise UserError(f"expected all, auto or first=N,every=K. Received: {text!r}",
                            where=where, hint="for example --record first=100,every=10")
        fields[key] = int(value)
    if not fields or fields.get("every", 1) < 1:
        raise UserError(f"expected all, auto or first=N,every=K with K >= 1. "
                        f"Received: {text!r}", where=where)
    return Policy(fields.get("first", 0), fields.get("every", 1))


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str | float | int, where: str = "--record-budget") -> int:
    """Bytes from ``1GB``, ``500MB``, ``1.5G`` or a plain number of megabytes."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), "m"
    else:
        match = _SIZE.match(str(text))
        if not match:
            raise UserError(f"expected a size such as 500MB or 2GB. Received: {text!r}",
                            where=where)
        value, unit = float(match.group(1)), (match.group(2) or "m").lower()
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"expected a positive size. Received: {text!r}", where=where)
    return int(value * 1024 ** "bkmgt".index(unit))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


#: the share of the budget that ``fit`` gives the record: the rest is for the run's other
#: files (initial parameters, tables, report)
RECORD_SHARE = 0.9


def fit(total: int, step_bytes: int, budget: int, first: int = 50) -> Policy:
    """The policy that records as much as ``budget`` holds: every step if they fit; else
    the first steps (up to ``first``, at most half the budget), then every k-th."""
    slots = int(budget * RECORD_SHARE) // max(1, step_bytes)
    if slots >= total:
        return Policy()
    head = max(1, min(first, total, slots // 2))
    room = max(1, slots - head - 1)  # the last step is kept too
    return Policy(head, max(1, math.ceil((total - head) / room)))
