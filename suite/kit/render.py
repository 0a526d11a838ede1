"""The kit's reports: conformance.md and conformance.html, and the README support matrix.

Data first (:class:`Page`), then templates shipped as package data; files are written
atomically, so a failure never leaves half a report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import suite
from suite.compare import noise
from suite.files import atomic_write_text
from suite.kit.matrix import (
    SHORT_DTYPE,
    SYMBOLS,
    ProbeVerdict,
    by_probe,
    counts,
    probe_verdicts,
    support_matrix,
    unsupported_reasons,
)
from suite.kit.runner import KitResult
from suite.report import html, markdown
from suite.report.format import VERDICT_CSS
from suite.rundir import CHECKS

LEGEND = {"pass": "every check within tolerance",
          "known difference": "outside tolerance, and explained by a ledger entry",
          "unsupported": "the backend declares it cannot run this feature",
          "fail": "outside tolerance, and no ledger entry explains it",
          "error": "a crash, an exception, a timeout, non-finite values or a wrong result"}


@dataclass
class MatrixCell:
    verdict: str
    css: str
    symbol: str
    title: str  # what a reader hovers or reads under the matrix


@dataclass
class Page:
    title: str
    created: str
    facts: list[tuple[str, str]]
    columns: list[tuple[str, str]]  # (backend, dtype)
    rows: list[tuple[str, list[MatrixCell]]]  # probe label -> a cell per column
    details: list[ProbeVerdict]
    totals: dict[str, dict[str, int]]  # backend -> verdict -> probes
    ledger: list[dict] = field(default_factory=list)
    legend: dict[str, str] = field(default_factory=lambda: dict(LEGEND))
    symbols: dict[str, str] = field(default_factory=lambda: dict(SYMBOLS))
    css: dict[str, str] = field(default_factory=lambda: dict(VERDICT_CSS))


def _cell(v: ProbeVerdict | None) -> MatrixCell:
    if v is None:
        return MatrixCell("", "missing", "", "not run")
    title = v.verdict
    if v.verdict == "known difference":
        title += ": " + ", ".join(v.ledger)
    elif v.reason:
        title += f" ({v.check}): {v.reason}"
    return MatrixCell(v.verdict, VERDICT_CSS.get(v.verdict, "error"), SYMBOLS[v.verdict], title)


def _fmt_error(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.2e}"


def page(result: KitResult) -> Page:
    verdicts = probe_verdicts(result)
    backends = result.backends()
    columns = [(b, d) for b in backends for d in result.options.dtypes]
    table = by_probe(verdicts)
    rows = [(probe, [_cell(cells.get(column)) for column in columns])
            for probe, cells in table.items()]
    fixed = noise.FIXED_TOLERANCES
    tol = ", ".join(f"{d}: one step {fixed[d]['step']:g}, later steps "
                    f"{fixed[d]['trajectory']:g}" for d in result.options.dtypes)
    versions = "; ".join(f"{b}: " + (", ".join(f"{k} {v}" for k, v in result.versions[b].items())
                                     or "unknown") for b in backends)
    facts = [("backends", ", ".join(backends)), ("versions", versions),
             ("dtypes", ", ".join(result.options.dtypes)), ("device", result.options.device),
             ("threads", str(result.threads)),
             ("battery", f"{len(result.probes)} probes x {len(result.options.dtypes)} dtypes, "
                         f"checks: {', '.join(CHECKS)}"),
             ("tolerances", f"relative L2 error, fixed (suite compare measures each "
                            f"run's noise; the probes do not yet); {tol}"),
             ("verdicts", "pass: within the tolerance; known difference: outside it (or "
                          "closer to the ledger variant), and the entry's variant or twin "
                          "brings it back within; fail: neither"),
             ("fnn-suite", suite.__version__)]
    details = [v for v in verdicts if v.verdict != "pass"]
    return Page(title=f"Conformance: {', '.join(backends)}",
                created=datetime.now(UTC).isoformat(timespec="seconds"), facts=facts,
                columns=columns, rows=rows, details=details,
                totals={b: counts([v for v in verdicts if v.backend == b]) for b in backends},
                ledger=result.ledger)


def write_report(result: KitResult, out: Path) -> list[Path]:
    """conformance.md, conformance.html and conformance.csv (every check) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    data = page(result)
    written = []
    for name, env in (("conformance.md", markdown.environment()),
                      ("conformance.html", html.environment())):
        env.filters["error"] = _fmt_error
        env.globals["short"] = SHORT_DTYPE
        template = env.get_template(f"kit.{name.split('.')[1]}.j2")
        atomic_write_text(out / name, template.render(p=data))
        written.append(out / name)
    atomic_write_text(out / "conformance.csv", result.cells.to_csv(index=False))
    written.append(out / "conformance.csv")
    return written


MATRIX_START = "<!-- support-matrix:start (generated by `make support-matrix`; do not edit) -->"
MATRIX_END = "<!-- support-matrix:end -->"


def support_matrix_markdown(result: KitResult, unavailable: dict[str, str] | None = None) -> str:
    """The README's support matrix: a row per probe, a column per backend, and a legend."""
    header, rows = support_matrix(result, unavailable)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(row)) + " |"
              for row in rows]
    legend = ", ".join(f"{symbol} {verdict}" for verdict, symbol in SYMBOLS.items())
    notes = [f"{legend}; where dtypes differ, the cell names each "
             f"({', '.join(f'{k} = {v}' for v, k in SHORT_DTYPE.items())})."]
    notes += [f"– {backend}: {reason}" for backend, reasons in unsupported_reasons(result).items()
              for reason in reasons]
    notes += [f"n/a {name}: {reason}" for name, reason in (unavailable or {}).items()]
    return "\n".join(lines) + "\n\n" + "\n".join(f"{n}  " for n in notes).rstrip() + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the support-matrix markers replaced by ``block``."""
    if MATRIX_START not in text or MATRIX_END not in text:
        raise ValueError(f"no support-matrix markers in the README; expected {MATRIX_START!r} "
                         f"and {MATRIX_END!r}")
    head, rest = text.split(MATRIX_START, 1)
    _, tail = rest.split(MATRIX_END, 1)
    return f"{head}{MATRIX_START}\n{block}{MATRIX_END}{tail}"


def current_block(text: str) -> str:
    """The README's support matrix as it stands (without the markers)."""
    return text.split(MATRIX_START, 1)[1].split(MATRIX_END, 1)[0].lstrip("\n")
