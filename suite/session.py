"""One output folder's life, shared by ``suite compare`` and ``suite bench``.

In the manner of pytest-benchmark's ``BenchmarkSession``: the folder's run.json says
"running" from the start; whatever happens, the scratch folder goes, the status becomes
"complete" or "interrupted", and the feature's own ``finish`` (its tables and report) runs
on whatever finished, so an interrupted run keeps every backend that ended.

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

from suite.files import write_json
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
        run.json's content; its ``status`` is managed here.
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

    def __enter__(self) -> Session:
        self.record["status"] = "running"
        self.save()
        # NOTE: in the folder itself, so that the workers' files reach their places by a
        # rename on the same file system, wherever the folder is (and its disk is theirs)
        self.scratch = Path(tempfile.mkdtemp(prefix=f".{self.prefix}", dir=self.folder))
        return self

    def save(self) -> None:
        """Write run.json as the record stands (whole or not at all)."""
        write_json(self.folder / RUN_JSON, self.record)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.record["status"] = "complete" if kind is None else "interrupted"
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.finish(self.folder, self.record)
