"""The harness: one worker process per backend; a backend that raises, crashes, hangs or
returns NaN or wrong names is an error row with its reason, and the others finish."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import suite
from suite.errors import UserError

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def plugins_on_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(PLUGINS))
    monkeypatch.syspath_prepend(str(PLUGINS))


def small_run(tmp_path, backends, dtype="float64", **kwargs):
    return suite.compare("regression-mlp", backends=backends, max_steps=3, epochs=1,
                         dtype=dtype, timing=False, out=tmp_path / "run", **kwargs)


def test_faulty_backends_are_errors_with_reasons_and_the_others_finish(tmp_path,
                                                                       plugins_on_path):
    run = small_run(tmp_path, ["faulty:RaisingBackend", "faulty:CrashingBackend",
                               "faulty:HangingBackend", "faulty:NanBackend",
                               "faulty:WrongNamesBackend", "torch"], timeout_s=15)
    status = {name: (b["status"], b.get("reason") or "")
              for name, b in run.info["backends"].items()}
    assert status["raising"] == ("error", "RuntimeError: deliberate failure in train_step "
                                          "(at step 0)")
    assert status["crashing"][0] == "error" and "exited with code 3" in status["crashing"][1]
    assert status["hanging"] == ("error", "worker timed out after 15 s")
    assert status["nan"][0] == "error" and "non-finite gradient dense_0/kernel at step 0" in (
        status["nan"][1])
    assert status["wrong-names"][0] == "error" and "wrong parameter names" in (
        status["wrong-names"][1])
    assert status["torch"] == ("ok", "")
    verdicts = run.summary.set_index(["backend", "check"]).verdict
    assert verdicts["torch", "gradients"] == "pass"
    for name in ("raising", "crashing", "hanging", "wrong-names"):
        assert verdicts[name, "gradients"] == "error"
    assert verdicts["nan", "gradients"] == "error"  # NaN is the backend's error
    assert run.info["status"] == "complete"
    assert set(run.losses.backend) == {"numpy", "torch", "nan"}
    assert (run.path / "report.html").stat().st_size > 0


def test_unsupported_feature_gives_unsupported_not_fail(tmp_path, plugins_on_path):
    run = small_run(tmp_path, ["faulty:NoFloat64Backend"])
    rows = run.summary[run.summary.backend == "no-float64"]
    assert set(rows.verdict) == {"unsupported"}
    assert "dtype:float64: float64 is not implemented" in rows.reason.iloc[0]


def test_run_directory_layout_and_formats(tmp_path):
    run = small_run(tmp_path, ["torch"], dtype="float32")
    files = {p.relative_to(run.path).as_posix() for p in run.path.rglob("*") if p.is_file()}
    for name in ("run.json", "initial_params.npz", "losses.csv", "comparison.csv",
                 "summary.csv", "timing.csv", "report.md", "report.html",
                 "record/numpy/record.json", "record/torch/record.json",
                 "record/torch/part-00000.npz", "record/torch/outputs.npz",
                 "workers/torch.log"):
        assert name in files
    # nothing half-written, and the workers' scratch (inside the run directory) is gone
    assert not [f for f in files if ".tmp" in f or f.startswith(".")]
    index = json.loads((run.path / "record" / "torch" / "record.json").read_text())
    assert index["complete"] and [s for shard in index["shards"] for s in shard["steps"]] \
        == [0, 1, 2]
    info = json.loads((run.path / "run.json").read_text())
    assert info["spec"]["name"] == "regression-mlp" and info["seed"] == 0
    assert info["backends"]["torch"]["versions"]["torch"]
    assert info["threads"] >= 1 and info["environment"]["numpy"]
    losses = pd.read_csv(run.path / "losses.csv")
    assert list(losses.columns) == ["backend", "epoch", "step", "loss"]
    assert losses[losses.backend == "torch"].step.tolist() == [0, 1, 2]
    grads = run.arrays("grads", "torch")
    assert grads["0/dense_0/kernel"].shape == (8, 32) and grads["2/dense_2/bias"].shape == (1,)


def test_unknown_backend_lists_the_available_ones(tmp_path):
    with pytest.raises(UserError, match=r"unknown backend 'pytorch'; available: numpy"):
        small_run(tmp_path, ["pytorch"])
    assert not (tmp_path / "run").exists()


def test_latest_points_at_the_newest_run(tmp_path):
    first = suite.compare("regression-mlp", backends=["numpy"], max_steps=1, timing=False,
                          root=tmp_path)
    second = suite.compare("regression-mlp", backends=["numpy"], max_steps=1, timing=False,
                           root=tmp_path)
    assert first.path != second.path
    assert (tmp_path / "latest").resolve() == second.path.resolve()
