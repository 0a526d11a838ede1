"""How a run stops, with real processes and real signals: Ctrl-C, SIGTERM and SIGHUP keep
what finished and exit with 128 + the signal (`suite compare`; `suite bench` and the kit
alike); no worker outlives the suite, SIGKILL included; a full disk is one line, and every
file left is whole."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from disks import assert_whole, tmpfs

from suite import spec as specs
from suite.bench import runner
from suite.bench.sizes import grid
from suite.errors import Interrupted
from suite.kit import KitOptions, battery, check_backends

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).parent / "plugins"
# Each signal at its default, as in a terminal (a background shell ignores SIGINT, nohup
# SIGHUP, and a child would inherit that); then, if asked, a file-size limit.
PRELUDE = """import resource, signal, sys
for s in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_DFL)
signal.signal(signal.SIGINT, signal.default_int_handler)
if {limit}:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from suite.cli import main
sys.argv[0] = "suite"
main()
"""
HANGS = "faulty:PidHangingBackend"  # writes "WORKER_PID CHILD_PID", then hangs


def launch(tmp_path: Path, backends: str, *extra: str, limit: int = 0,
           env: dict[str, str] | None = None, run: Path | None = None) -> subprocess.Popen:
    """`suite compare regression-mlp` (3 steps, no timing run) into ``run`` (default
    tmp_path/run); its output goes to tmp_path/stdout and stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS)]),
           "FNN_TEST_PID_FILE": str(tmp_path / "pids"), "COLUMNS": "200", **(env or {})}
    command = [sys.executable, "-c", PRELUDE.format(limit=limit), "compare", "regression-mlp",
               "--backends", backends, "--max-steps", "3", "--epochs", "1", "--no-timing",
               "--out", str(run or tmp_path / "run"), *extra]
    return subprocess.Popen(command, stdout=open(tmp_path / "stdout", "w"),
                            stderr=open(tmp_path / "stderr", "w"), env=env, cwd=tmp_path,
                            start_new_session=True)


def error_line(stderr: str) -> str:
    """The one error line among stderr's notes (the record estimate, the workers' rows),
    after checking there is one and no traceback."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def ended(proc: subprocess.Popen, tmp_path: Path, timeout: float = 60) -> tuple[int, str]:
    code = proc.wait(timeout)
    return code, (tmp_path / "stderr").read_text()


def worker_pids(proc: subprocess.Popen, tmp_path: Path) -> tuple[int, int]:
    """The hanging worker's pid and its child's, once it is running."""
    deadline = time.monotonic() + 60
    while not (tmp_path / "pids").exists():
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        assert time.monotonic() < deadline, "the hanging worker never started"
        time.sleep(0.05)
    worker, child = map(int, (tmp_path / "pids").read_text().split())
    return worker, child


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, waiting for init to reap it, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return "\nState:\tZ" not in status


def gone_within(pids: list[int], seconds: float) -> float | None:
    """Seconds until none of ``pids`` runs; None if some still run after ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not any(alive(pid) for pid in pids):
            return time.monotonic() - start
        time.sleep(0.01)
    return None


def kill_all(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def record(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=lambda signum: signal.Signals(signum).name)
def test_a_stop_signal_keeps_what_finished_and_kills_the_worker(tmp_path, signum):
    suite = launch(tmp_path, f"numpy,{HANGS}")
    worker, child = worker_pids(suite, tmp_path)
    try:
        suite.send_signal(signum)
        code, stderr = ended(suite, tmp_path)
        name = signal.Signals(signum).name
        assert code == 128 + signum, stderr
        assert f"interrupted ({name}): what finished is kept" in stderr
        assert "Traceback" not in stderr
        assert gone_within([worker, child], 5) is not None  # its whole process group
        info = record(tmp_path / "run")
        assert info["status"] == "interrupted" and info["interrupted_by"] == name
        assert info["backends"]["numpy"]["status"] == "ok"
        assert info["backends"]["pid-hanging"]["status"] == "pending"
        files = assert_whole(tmp_path / "run")
        assert tmp_path / "run" / "record" / "numpy" / "record.json" in files
        report = (tmp_path / "run" / "report.md").read_text()
        assert "This run is interrupted" in report
    finally:
        kill_all(suite.pid, worker, child)


def test_a_worker_dies_with_a_suite_killed_by_sigkill(tmp_path):
    suite = launch(tmp_path, f"numpy,{HANGS}")
    worker, child = worker_pids(suite, tmp_path)
    try:
        suite.kill()
        suite.wait(10)
        seconds = gone_within([worker], 5)
        assert seconds is not None, "the worker outlived its suite"
        assert record(tmp_path / "run")["status"] == "running"  # nothing could run in the suite
    finally:
        kill_all(worker, child)  # NOTE: the worker's own child is not its group's leader


def test_a_full_disk_in_the_run_directory_is_one_line_and_stops_the_run(tmp_path):
    # initial_params.npz (7 kB) is the first file past the limit; run.json (3 kB) fits
    code, stderr = ended(launch(tmp_path, "numpy", limit=6000), tmp_path)
    assert code == 2, stderr
    line = error_line(stderr)
    assert re.fullmatch(r"error: file too large for the process's file-size limit writing "
                        r"\S+/run/initial_params\.npz \(needs about [0-9.]+ kB; the limit "
                        r"is 6\.0 kB\)", line), stderr
    info = record(tmp_path / "run")
    assert info["status"] == "interrupted"
    assert info["interrupted_by"] == line.removeprefix("error: ")
    assert_whole(tmp_path / "run")


def test_a_worker_out_of_disk_is_an_error_row_and_the_others_go_on(tmp_path):
    code, stderr = ended(launch(tmp_path, "numpy,faulty:FullDiskBackend,faulty:ViewsBackend"),
                         tmp_path)
    assert code == 2, stderr
    line = error_line(stderr)
    assert re.fullmatch(r"error: file too large for the process's file-size limit writing "
                        r"\S+/run/record/full-disk/part-00000\.npz \(needs about [0-9.]+ kB; "
                        r"the limit is "
                        r"4\.1 kB\)", line), stderr
    info = record(tmp_path / "run")
    assert info["status"] == "complete"
    backends = info["backends"]
    assert backends["full-disk"]["status"] == "error"
    assert backends["full-disk"]["reason"] == line.removeprefix("error: ")
    assert backends["numpy"]["status"] == backends["views"]["status"] == "ok"
    assert_whole(tmp_path / "run")
    assert not list((tmp_path / "run" / "record" / "full-disk").glob("part-*.npz"))
    with np.load(tmp_path / "run" / "record" / "views" / "part-00000.npz") as grads:
        assert len(grads.files) > 0


def test_no_space_left_on_a_small_tmpfs(tmp_path):
    with tmpfs(tmp_path / "disk", "64k") as disk:
        (disk / "tmp").mkdir()
        # the workers' scratch folder on the same small disk as the run directory
        suite = launch(tmp_path, "numpy", env={"TMPDIR": str(disk / "tmp")},
                       run=disk / "run")
        code, stderr = ended(suite, tmp_path)
        assert code == 2, stderr
        assert re.fullmatch(r"error: no space left on the device writing \S+ \(needs about "
                            r"[0-9.]+ kB; [0-9.]+ (kB|bytes) free\)", error_line(stderr)), stderr
        assert_whole(disk / "run")


# ---------------------------------------------------------------------------- bench, kit


@pytest.fixture
def hanging_in_process(tmp_path, monkeypatch):
    """This process runs the feature; SIGTERM comes to it once the hanging worker runs."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(PLUGINS)]))
    monkeypatch.setenv("FNN_TEST_PID_FILE", str(tmp_path / "pids"))
    monkeypatch.syspath_prepend(str(PLUGINS))

    def send() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (tmp_path / "pids").exists():  # never without: SIGTERM would end pytest
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    threading.Thread(target=send, daemon=True).start()
    yield tmp_path / "pids"
    if (tmp_path / "pids").exists():
        kill_all(*map(int, (tmp_path / "pids").read_text().split()))


def test_sigterm_stops_a_bench_sweep_and_keeps_the_finished_rows(tmp_path, monkeypatch,
                                                                 hanging_in_process):
    monkeypatch.setattr(runner, "measure_peak", lambda env, chosen: {
        "gflops": 1.0, "library": "numpy", "by_library": {}, "method": "a test's"})
    spec = specs.builtin("regression-mlp")
    options = runner.BenchOptions(backends=["numpy", HANGS], warmup=1, steps=5, min_steps=3,
                                  budget_s=0.2, threads=1, out=tmp_path / "bench")
    with pytest.raises(Interrupted) as caught:
        runner.run(spec, grid(spec, [8], [1], [8]), options)
    assert caught.value.signum == signal.SIGTERM
    assert gone_within(list(map(int, hanging_in_process.read_text().split())), 5) is not None
    info = record(tmp_path / "bench")
    assert info["status"] == "interrupted" and info["interrupted_by"] == "SIGTERM"
    assert info["backends"]["numpy"]["status"] == "ok"
    assert "numpy" in (tmp_path / "bench" / "bench.csv").read_text()
    assert (tmp_path / "bench" / "report.md").exists()
    assert_whole(tmp_path / "bench")


def test_sigterm_stops_the_kit_and_kills_its_pool_workers(monkeypatch, hanging_in_process):
    probes = battery.probes()[:2]
    monkeypatch.setattr(battery, "probes", lambda: probes)
    started = time.monotonic()
    with pytest.raises(Interrupted):
        check_backends([HANGS], KitOptions(dtypes=("float64",), threads=1, timeout_s=120,
                                           workers=2))
    assert time.monotonic() - started < 60  # not the worker's time limit
    assert gone_within(list(map(int, hanging_in_process.read_text().split())), 5) is not None
