"""Worker processes and the signals that stop a run: SIGTERM and SIGHUP raise as Ctrl-C
does, every live worker (any thread's) is killed, and the previous handlers come back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from suite import processes
from suite.errors import Interrupted

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _alive(pid: int) -> bool:
    try:
        status = open(f"/proc/{pid}/status", encoding="utf-8").read()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_raises_interrupted_and_the_handler_comes_back(signum):
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as caught, processes.StopSignals():
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises in here
    assert caught.value.signum == signum and isinstance(caught.value, KeyboardInterrupt)
    assert signal.getsignal(signum) is before


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with processes.StopSignals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_an_interruption_kills_the_workers_of_every_thread(tmp_path):
    ended = {}

    def watch() -> None:
        ended["worker"] = processes.watch(SLEEPER, tmp_path / "log", dict(os.environ), 60,
                                          lambda event: None)

    thread = threading.Thread(target=watch)
    with pytest.raises(KeyboardInterrupt), processes.StopSignals():
        thread.start()
        deadline = time.monotonic() + 10
        while not processes._live and time.monotonic() < deadline:
            time.sleep(0.01)
        (proc,) = processes._live
        raise KeyboardInterrupt
    thread.join(5)
    assert not thread.is_alive() and ended["worker"].code == -signal.SIGKILL
    assert not _alive(proc.pid) and not processes._live and processes._stopping is None


def test_no_worker_starts_once_a_run_stops(tmp_path):
    with pytest.raises(KeyboardInterrupt), processes.StopSignals():
        processes.stop_all(signal.SIGTERM)
        with pytest.raises(Interrupted):
            processes.watch(SLEEPER, tmp_path / "log", dict(os.environ), 60, print)
        raise KeyboardInterrupt
    assert processes.watch([sys.executable, "-c", "pass"], tmp_path / "log",
                           dict(os.environ), 60, print).code == 0


def test_a_signal_while_a_worker_starts_waits_until_it_can_be_killed(tmp_path, monkeypatch):
    started = []
    real_popen = subprocess.Popen

    def signalled_popen(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of starting it
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", signalled_popen)
    with pytest.raises(Interrupted) as caught, processes.StopSignals():
        processes.watch(SLEEPER, tmp_path / "log", dict(os.environ), 60, print)
    assert caught.value.signum == signal.SIGTERM
    assert started[0].returncode == -signal.SIGKILL and not processes._live


def test_workers_never_import_a_module_of_the_users_folder_named_like_a_framework(
        tmp_path, monkeypatch):
    """`python -m` puts the current folder first on sys.path: a numpy.py there (or a
    reproducer's torch.py) would be the framework the worker imports."""
    import suite

    (tmp_path / "numpy.py").write_text("raise ImportError('the folder\\'s numpy.py')\n")
    monkeypatch.chdir(tmp_path)
    run = suite.compare("regression-mlp", backends=["numpy"], max_steps=2, timing=False,
                        out=tmp_path / "run")
    assert {name: b.status for name, b in run.backends.items()} == {
        "numpy": "ok", "numpy+float64": "ok"}
