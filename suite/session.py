"""One output folder's life, shared by ``suite compare`` and ``suite bench``.

In the manner of pytest-benchmark's ``BenchmarkSession``: the folder's run.json says
"running" from the start; whatever happens, the scratch folder goes, the status becomes
"complete" or "interrupted", and the feature's own ``finish`` (its tables and report) runs
on whatever finished, so an interrupted run keeps every backend that ended. Ctrl-C,
SIGTERM and SIGHUP all interrupt it the same way (``processes.StopSignals``), and so does
a full disk; run.json's ``interrupted_by`` says which.

    with Session(folder, record, finish, prefix="fnn-suite-") as session:
        ...  # work in session.scratch; session.save() after each backend
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from suite.errors import Interrupted, UserError
from suite.files import write_json
from suite.processes import StopSignals
from suite.rundir import RUN_JSON

#: (folder, record) -> None: write what the folder shows, run.json last
FinishFn = Callable[[Path, dict[str, Any]], None]


class Session:
    """A context manager around one run of a feature in ``folder``.

    Parameters
    ----------
    folder : Path
        The output folder, already created and empty.
    record : dict
        run.json's content; its ``status`` (and ``interrupted_by``) is managed here.
    finish : callable
        Called with (folder, record) on the way out, after a complete or an interrupted
        run; it writes the tables, the report and run.json.
    prefix : str
        The scratch folder's name prefix (the workers' plan and their files).
    """

    def __init__(self, folder: Path, record: dict[str, Any], finish: FinishFn,
                 prefix: str = "fnn-suite-"):
        self.folder = folder
        self.record = record
        self.finish = finish
        self.prefix = prefix
        self.scratch = Path()
        self.signals = StopSignals()

    def __enter__(self) -> Session:
        self.signals.__enter__()
        try:
            self.record["status"] = "running"
            self.save()
            # NOTE: in the folder itself, so that the workers' files reach their places by
            # a rename on the same file system, wherever the folder is (and its disk is theirs)
            self.scratch = Path(tempfile.mkdtemp(prefix=f".{self.prefix}", dir=self.folder))
        except BaseException as exc:
            self.signals.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def save(self) -> None:
        """Write run.json as the record stands (whole or not at all)."""
        write_json(self.folder / RUN_JSON, self.record)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            if error is None:
                self.record["status"] = "complete"
            else:
                self._interrupted(error)
            shutil.rmtree(self.scratch, ignore_errors=True)
            try:
                self.finish(self.folder, self.record)
            except BaseException as late:  # a second Ctrl-C, a full disk while finishing
                self._interrupted(late)
                try:
                    self.save()
                except UserError:
                    pass
                if error is None or not isinstance(late, UserError):
                    raise
                # else the run already stops for ``error``, which goes on
        finally:
            self.signals.__exit__(kind, error, trace)

    def _interrupted(self, error: BaseException) -> None:
        self.record["status"] = "interrupted"
        self.record.setdefault("interrupted_by", stop_reason(error))


def stop_reason(error: BaseException) -> str:
    """What stopped a run, for run.json: a signal's name, or the error's one line."""
    if isinstance(error, Interrupted):
        return str(error)
    if isinstance(error, KeyboardInterrupt):
        return "SIGINT"
    if isinstance(error, UserError):
        return str(error)
    return f"{type(error).__name__}: {error}"
