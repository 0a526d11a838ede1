"""What every worker process shares: a full disk is its one-line reason, and a worker
whose suite is gone ends itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from suite import worker
from suite.errors import DiskFull
from suite.files import read_json

ROOT = Path(__file__).resolve().parent.parent  # this checkout's suite, not an installed one


def test_a_full_disk_in_a_worker_is_its_one_line_reason(tmp_path):
    message = "no space left on the device writing grads.npz (needs about 2.6 MB; 0.4 MB free)"

    def run(plan_dir, out):
        raise DiskFull(message)

    assert worker.serve(run, "m", [str(tmp_path), str(tmp_path / "out")]) == 0
    assert read_json(tmp_path / "out" / "result.json") == {
        "status": "error", "reason": message, "disk_full": True}


def test_a_worker_whose_suite_is_already_gone_ends_at_once():
    # The suite that the environment names died before the worker could tie itself to it.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    env = {**os.environ, "PYTHONPATH": str(ROOT), worker.PARENT_VARIABLE: str(gone.pid)}
    done = subprocess.run([sys.executable, "-c", "from suite.worker import die_with_parent; "
                           "die_with_parent(); print('still here')"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1 and "still here" not in done.stdout


def test_a_worker_started_by_its_suite_runs_on():
    env = {**os.environ, "PYTHONPATH": str(ROOT), worker.PARENT_VARIABLE: str(os.getpid())}
    done = subprocess.run([sys.executable, "-c", "from suite.worker import die_with_parent; "
                           "die_with_parent(); print('still here')"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and "still here" in done.stdout
