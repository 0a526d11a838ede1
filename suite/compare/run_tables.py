"""The report's tables of how a run ran, apart from its verdicts: the ledger entries that
applied, where each drift began (attribution), what failed to run, the threads and the
environment. Each takes a loaded :class:`Run`; :mod:`suite.compare.report` assembles them.
"""

from __future__ import annotations

from suite.compare.results import LedgerEntry, Run
from suite.report.format import Table
from suite.rundir import REFERENCE_RUNS, TimingRow, parse_variant, twin_name


def ledger_applied(run: Run) -> list[tuple[LedgerEntry, str]]:
    """Entries that applied to some backend, each with how its variant references ran
    (the reference under the conventions of each backend the entry applied to)."""
    variants = {parse_variant(name)[1]: (name, b) for name, b in run.backends.items()
                if b.role == "variant" and parse_variant(name)}
    found = []
    for entry in run.ledger:
        if not entry.applied_to:
            continue
        if entry.twin_env:  # explained by the backend run again, not by a variant
            twins = [(twin_name(b), run.backends[twin_name(b)]) for b in entry.applied_to
                     if twin_name(b) in run.backends]
            switches = ", ".join(f"{k}={v}" for k, v in entry.twin_env)
            found.append((entry, "; ".join(
                f"twin {name} ({switches}): {b.status}" for name, b in twins) or "no twin run"))
            continue
        mine = [variants[backend] for backend in entry.applied_to if backend in variants]
        notes = [f"variant reference {name}: {b.status}" + (f" ({b.reason})" if b.reason
                                                              else "") for name, b in mine]
        found.append((entry, "; ".join(notes) or "no variant reference run"))
    return found


def attribution(run: Run) -> Table | None:
    """The backends with a parts run: where each one's drift began, and why so."""
    rows = [(c.backend, c.verdict, c.attribution, c.reason or "—") for c in run.checks
            if c.check == "trajectory" and c.attribution]
    return Table(("backend", "trajectory", "attribution", "why"), tuple(rows)) if rows else None


def reproducers(run: Run) -> Table | None:
    """Each backend's reproducer (suite.compare.repro): where it starts and how to run it
    from the run directory, or why it has none."""
    rows = []
    for name, entry in (run.info.get("reproducers") or {}).items():
        where = f"{entry.get('part', '—')} {entry.get('tensor', '')} at step " \
                f"{entry.get('step', '—')}" if "part" in entry else "—"
        if entry.get("status") == "ok":
            rows.append((name, where, f"{entry['command']}",
                         f"{entry['state']} ({entry['bytes'] / 1024:.0f} kB)", _shown(entry)))
        elif entry.get("script"):  # written, but it did not run here
            rows.append((name, where, entry["command"], entry["state"],
                         f"error: {entry.get('reason')}"))
        else:
            rows.append((name, where, f"none: {entry.get('reason') or entry.get('status')}",
                         "—", "—"))
    return Table(("backend", "first outside the noise", "command (in the run directory)",
                  "state", "run here, it shows"), tuple(rows)) if rows else None


def _shown(entry: dict) -> str:
    shown, noise = entry.get("shown"), entry.get("shown_noise")
    if shown is None:
        return "—"
    verdict = "outside the suite's tolerance" if entry.get("reproduces") else \
        "within the suite's tolerance: it does not reproduce here"
    return f"{shown:.3g} (noise {noise:.3g}): {verdict}"


def errors(run: Run) -> Table | None:
    """Backends that did not run, checks that crashed, timing runs that failed."""
    ok = {name: b for name, b in run.backends.items() if b.status == "ok"}
    rows = [(name, "parts run" if b.role == "parts" else "lockstep run", b.status,
             b.reason or "—") for name, b in run.backends.items() if b.status != "ok"]
    rows += [(c.backend, f"check {c.check}", c.verdict, c.reason or "—") for c in run.checks
             if c.verdict == "error" and c.backend in ok]
    timed = {t.backend: t for t in run.timings}
    for name, info in ok.items():
        row = timed.get(name, TimingRow(name))
        status = row.status or info.timing_status
        if status not in (None, "ok", "off"):
            rows.append((name, "timing run", status,
                         row.reason or info.timing_reason or "—"))
    return Table(("backend", "where", "status", "reason"), tuple(rows)) if rows else None


def _thread_rows(run: Run) -> list[tuple[str, str]]:
    """The thread variables the harness set, and each backend's own thread and matmul
    precision settings as it reported them."""
    rows = []
    if run.info.get("thread_environment"):
        rows.append(("thread environment", ", ".join(
            f"{k}={v}" for k, v in run.info["thread_environment"].items())))
    rows += [(f"threads and precision ({name})",
              ", ".join(f"{k}={v}" for k, v in info.runtime.items()))
             for name, info in run.backends.items()
             if info.runtime and info.role not in REFERENCE_RUNS]
    return rows


def environment(run: Run) -> Table:
    env, meta = run.info.get("environment", {}), run.info
    rows = [("Python", env.get("python", "—")), ("NumPy", env.get("numpy", "—"))]
    for name, info in run.backends.items():
        if info.role in REFERENCE_RUNS:
            continue
        for package, version in info.versions.items():
            row = (f"{package} ({name})" if package != name else package, version)
            if row not in rows and not (package == "numpy" and version == env.get("numpy")):
                rows.append(row)
    rows += [
        ("platform", env.get("platform", "—")),
        ("CPU", f"{env.get('cpu', '—')} ({env.get('cpu_count', '?')} cores)"),
        ("threads", str(meta.get("threads", "—"))),
        *_thread_rows(run),
        ("seed", str(meta.get("seed", "—"))),
        ("dtype", run.dtype), ("device", str(meta.get("device", "—"))),
        ("run", f"{meta.get('run', run.path.name)}, created {meta.get('created', '—')}, "
                f"fnn-suite {meta.get('suite_version', '—')}"),
    ]
    return Table(("item", "value"), tuple(rows))
