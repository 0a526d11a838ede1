"""The MXNet reproducer (backends/repro/mxnet.py): run in MXNet's own environment (built on
first use under $FNN_SUITE_ENVS), it computes what the mxnet backend computes, bit for
bit, and shows the real float32 difference the suite finds there: oneDNN's log_softmax
(ledger mxnet-onednn), gone with MXNET_MKLDNN_ENABLED=0."""

from __future__ import annotations

import json

import pytest
from repro_support import (
    assert_same,
    backend_values,
    make_state,
    python_of,
    run_script,
    saved,
    script_json,
)

from suite import spec as specs
from suite.errors import UserError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def mxnet_environment():
    try:
        python_of("mxnet")
    except UserError as exc:
        pytest.skip(f"no MXNet environment: {exc}")


def test_backward_shows_onednn_log_softmax(tmp_path, monkeypatch):
    spec = specs.builtin("digits-mlp").with_training(dtype="float32")
    folder = tmp_path / "repro"
    state = make_state(spec, "mxnet", "backward", "dense_1/kernel", 0, folder,
                       ledger=["mxnet-onednn"])
    printed = script_json("mxnet", folder)
    assert (printed["part"], printed["tensor"], printed["step"]) == \
        ("backward", "dense_1/kernel", 0)
    assert_same(saved(folder), backend_values("mxnet", state))
    target = printed["target"]
    assert printed["versions"]["oneDNN"] == "on"
    assert target["error"] > 4 * target["noise"] > 0  # 1.0e-6 against 1.3e-7
    # the twin without oneDNN is within the noise
    monkeypatch.setenv("MXNET_MKLDNN_ENABLED", "0")
    done = run_script("mxnet", folder, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    twin = json.loads(done.stdout.strip().splitlines()[-1])
    assert twin["versions"]["oneDNN"] == "off"
    assert twin["target"]["error"] <= 2 * twin["target"]["noise"]


def test_optimizer_momentum_in_float64(tmp_path):
    spec = specs.builtin("digits-mlp").with_training(dtype="float64")  # sgd, momentum 0.9
    folder = tmp_path / "repro"
    state = make_state(spec, "mxnet", "optimizer", "dense_1/bias", 2, folder)
    printed = script_json("mxnet", folder)
    assert (printed["part"], printed["tensor"], printed["step"]) == \
        ("optimizer", "dense_1/bias", 2)
    assert_same(saved(folder), backend_values("mxnet", state))
