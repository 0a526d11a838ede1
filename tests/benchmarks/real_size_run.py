"""A real-size comparison, measured: ``python tests/benchmarks/real_size_run.py``.

The user's first real question, "my 784-512-512-10 net on MNIST, one epoch, in torch and
Keras": 60,000 rows of 784 features from an NPZ file (random numbers of MNIST's shape),
relu, softmax cross-entropy, SGD with momentum, float32, batch 128 (469 steps). It runs
``suite compare`` as a user does, in a subprocess, and reports what a user pays: the
whole process tree's peak memory (sampled every 0.1 s with psutil), the run directory's
size, the time of each phase (the plan, each worker, the tables and report) and the
record policy the suite chose. Not part of ``make test``: ``make bench-real-size``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

SUITE = [sys.executable, "-c", "from suite.cli import main; main()"]
SPEC = """name = "mnist-mlp"
input_dim = 784

[[layers]]
units = 512
activation = "relu"

[[layers]]
units = 512
activation = "relu"

[[layers]]
units = 10
activation = "softmax"

[loss]
name = "sparse_categorical_crossentropy"

[optimizer]
name = "sgd"
learning_rate = 0.01
momentum = 0.9
nesterov = false

[training]
batch_size = 128
epochs = 1
seed = 0
dtype = "float32"
shuffle = true
"""


def tree_rss(root: psutil.Process) -> int:
    """Resident memory of ``root`` and every process below it, in bytes."""
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:  # it ended between the listing and the reading
            pass
    return total


class PeakSampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 0.1):
        super().__init__(daemon=True)
        self.root, self.every_s, self.peak = psutil.Process(pid), every_s, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, tree_rss(self.root))
            except psutil.Error:
                return
            time.sleep(self.every_s)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/real-size"))
    parser.add_argument("--backends", default="numpy,torch,keras,jax")
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--record", default=None, help="passed on as --record")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    spec, data, run_dir = args.out / "mnist-mlp.toml", args.out / "mnist.npz", args.out / "run"
    spec.write_text(SPEC, encoding="utf-8")
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.random((args.rows, 784), dtype=np.float32),
             y=rng.integers(0, 10, args.rows))
    command = [*SUITE, "compare", str(spec), "--data", str(data),
               "--backends", args.backends, "--out", str(run_dir), "--force"]
    command += ["--record", args.record] if args.record else []
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    sampler = PeakSampler(proc.pid)
    sampler.start()
    output, _ = proc.communicate()
    wall_s = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    rerender_started = time.perf_counter()
    subprocess.run([*SUITE, "report", str(run_dir)], check=True,
                   capture_output=True)
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    workers = {name: {k: entry.get(k) for k in ("status", "wall_s", "lockstep_s",
                                                 "lockstep_export_s")}
               for name, entry in info["backends"].items()}
    result = {
        "exit_code": proc.returncode, "wall_s": wall_s,
        "workers_s": sum(w["wall_s"] or 0 for w in workers.values()),
        "tables_and_report_s": time.perf_counter() - rerender_started,
        "peak_rss_bytes": sampler.peak, "run_dir_bytes": folder_bytes(run_dir),
        "record": info.get("record"), "steps": info.get("steps"), "workers": workers,
        "summary": (run_dir / "summary.csv").read_text(encoding="utf-8"),
        "output_tail": output[-2000:],
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n",
                                          encoding="utf-8")
    print(output[-1500:])
    print(f"exit {proc.returncode}; {wall_s:.1f} s in all, workers {result['workers_s']:.1f} s,"
          f" tables and report {result['tables_and_report_s']:.1f} s (suite report)")
    for name, w in workers.items():
        print(f"  {name:<14} {w['status']:<8} worker {w['wall_s'] or 0:7.1f} s, lockstep "
              f"{w['lockstep_s'] or 0:7.1f} s (export {w['lockstep_export_s'] or 0:.1f} s)")
    print(f"peak memory of the process tree: {sampler.peak / 2**20:,.0f} MiB; run directory: "
          f"{result['run_dir_bytes'] / 2**20:,.0f} MiB; {info['record']['description']}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
