"""One output folder's life: run.json says running, then complete or interrupted (and by
what), the feature's finish runs on whatever finished, and a full disk while finishing
never hides why the run stopped."""

from __future__ import annotations

import signal

import pytest

from suite.errors import DiskFull, Interrupted
from suite.files import read_json, write_json
from suite.session import Session


def finishing(calls, fails_with=None):
    def finish(folder, record):
        calls.append(dict(record))
        if fails_with is not None:
            raise fails_with
        write_json(folder / "run.json", record)

    return finish


def test_a_complete_run_says_so(tmp_path):
    calls = []
    with Session(tmp_path, {}, finishing(calls)) as session:
        assert read_json(tmp_path / "run.json")["status"] == "running"
        assert session.scratch.is_dir()
    assert calls == [{"status": "complete"}] and not session.scratch.exists()


@pytest.mark.parametrize("error, said", [
    (Interrupted(signal.SIGTERM), "SIGTERM"),
    (KeyboardInterrupt(), "SIGINT"),
    (DiskFull("no space left on the device writing x (needs about 2.0 kB; 0 bytes free)"),
     "no space left on the device writing x (needs about 2.0 kB; 0 bytes free)"),
])
def test_an_interrupted_run_says_by_what_and_finishes(tmp_path, error, said):
    calls = []
    with pytest.raises(type(error)), Session(tmp_path, {}, finishing(calls)):
        raise error
    assert calls == [{"status": "interrupted", "interrupted_by": said}]
    assert read_json(tmp_path / "run.json")["status"] == "interrupted"


def test_a_full_disk_while_finishing_does_not_hide_the_signal(tmp_path):
    full = DiskFull("no space left on the device writing report.html")
    with pytest.raises(Interrupted), Session(tmp_path, {}, finishing([], full)):
        raise Interrupted(signal.SIGHUP)
    assert read_json(tmp_path / "run.json")["interrupted_by"] == "SIGHUP"


def test_a_complete_run_whose_finish_fails_is_interrupted(tmp_path):
    full = DiskFull("no space left on the device writing report.html")
    with pytest.raises(DiskFull), Session(tmp_path, {}, finishing([], full)):
        pass
    record = read_json(tmp_path / "run.json")
    assert record["status"] == "interrupted" and record["interrupted_by"] == str(full)
