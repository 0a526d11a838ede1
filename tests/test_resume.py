"""`suite compare --resume DIR`: a run stopped part-way is finished without re-running
what had finished, as a user does it: a real run, a real Ctrl-C, a real resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import suite
from suite.errors import UserError

PLUGINS = Path(__file__).parent / "plugins"
SUITE = [sys.executable, "-c", "from suite.cli import main; main()"]


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def start(run_dir: Path, *args: str, **env: str) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(PLUGINS), **env}
    return subprocess.Popen([*SUITE, "compare", "regression-mlp", "--max-steps", "3",
                             "--no-timing", "--out", str(run_dir), *args],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(predicate, timeout_s: float = 120.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.2)


def test_resume_runs_only_what_did_not_finish_and_writes_the_report(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir, "--backends", "numpy,faulty:HangOnceBackend,faulty:DriftBackend",
                 FNN_SUITE_TEST_HANG="1")
    # numpy finished, hang-once is running (and would hang): stop it as a user does
    wait_for(lambda: (run_dir / "workers" / "numpy.json").exists()
             and (run_dir / "workers" / "hang-once.log").exists())
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    stopped = run_json(run_dir)
    assert stopped["status"] == "interrupted"
    assert {n: b["status"] for n, b in stopped["backends"].items()} == {
        "numpy": "ok", "numpy+float64": "ok", "hang-once": "pending", "drift": "pending"}
    numpy_result = (run_dir / "workers" / "numpy.json").read_bytes()
    numpy_record = (run_dir / "record" / "numpy" / "record.json").stat().st_mtime_ns

    done = subprocess.run([*SUITE, "compare", "--resume", str(run_dir)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(PLUGINS)},
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr and "2 of 4 workers left to run" in done.stderr
    finished = run_json(run_dir)
    assert finished["status"] == "complete"
    # drift fails: the resumed run makes its parts run too (attribution)
    assert {n: b["status"] for n, b in finished["backends"].items()} == {
        "numpy": "ok", "numpy+float64": "ok", "hang-once": "ok", "drift": "ok",
        "drift+parts": "ok"}
    # the reference was not run again: its result and record are the ones of the first run
    assert (run_dir / "workers" / "numpy.json").read_bytes() == numpy_result
    assert (run_dir / "record" / "numpy" / "record.json").stat().st_mtime_ns == numpy_record
    summary = pd.read_csv(run_dir / "summary.csv")
    verdicts = summary.groupby("backend").verdict.apply(set).to_dict()
    assert verdicts == {"hang-once": {"pass"}, "drift": {"pass", "fail"}}
    assert "hang-once" in (run_dir / "report.md").read_text()
    assert not list(run_dir.glob(".fnn-suite-*"))  # no scratch left behind


def test_resume_of_a_complete_run_runs_nothing(tmp_path):
    run = suite.compare("regression-mlp", backends=["numpy"], max_steps=2, timing=False,
                        out=tmp_path / "run")
    before = (run.path / "workers" / "numpy.json").read_bytes()
    events = []
    again = suite.resume(run.path, on_event=lambda name, event: events.append(event))
    assert (again.path / "workers" / "numpy.json").read_bytes() == before
    assert not [e for e in events if e.get("phase") == "start"]
    assert again.info["status"] == "complete"


def test_resume_refuses_what_it_cannot_finish(tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        suite.resume(tmp_path)
    run = suite.compare("regression-mlp", backends=["numpy"], max_steps=2, timing=False,
                        out=tmp_path / "run")
    info = run_json(run.path)
    info["data"]["sha256"] = "0000"
    (run.path / "run.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match="changed since the run started"):
        suite.resume(run.path)
    done = subprocess.run([*SUITE, "compare", "--resume", str(run.path), "--epochs", "2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--resume runs the run's own spec" in done.stderr
