"""Ledger entries with a twin (suite.ledger.twins): the backend run again with the entry's
environment switches computes the plain formula, and the entry explains a difference
only where that twin is back within the noise. Each twin entry has a real run here that
shows both halves: outside the noise with the switch off, within it with the switch on."""

from __future__ import annotations

import pytest
from specs import make_spec

import suite
from suite import ledger
from suite.compare.noise import NOISE_FACTOR

TWINS = [entry.id for entry in ledger.ENTRIES if entry.twin_env]


def test_every_twin_entry_has_a_run_here():
    assert set(TWINS) == {"mxnet-onednn"}


def test_a_twin_entry_applies_in_its_dtype_only():
    assert ledger.twin_env_for(make_spec(dtype="float32"), "mxnet") == {
        "MXNET_MKLDNN_ENABLED": "0"}
    assert ledger.twin_env_for(make_spec(dtype="float64"), "mxnet") == {}
    assert ledger.twin_env_for(make_spec(dtype="float32"), "torch") == {}
    # a twin is not a variant: the reference has nothing to reproduce
    assert "mxnet-onednn" not in {e.id for e in ledger.applicable(make_spec(dtype="float32"),
                                                                    "mxnet")}


@pytest.mark.slow
def test_mxnet_onednn_is_outside_the_noise_and_its_twin_within(tmp_path):
    """MXNet's CPU build runs float32 log_softmax on oneDNN: its first-step gradients are
    several times the float32 noise from the exact answer; with MXNET_MKLDNN_ENABLED=0
    they are within it. (MXNet runs in its own environment, built on first use.)"""
    run = suite.compare("digits-mlp", backends=["mxnet"], max_steps=4, timing=False,
                        attribution="never", out=tmp_path / "run")
    assert run.backends["mxnet+twin"].status == "ok"
    assert "mxnet+parts" not in run.backends  # --attribution never
    gradients = run.summary.set_index(["backend", "check"]).loc[("mxnet", "gradients")]
    assert gradients.verdict == "known difference" and gradients.ledger == "mxnet-onednn"
    assert gradients.rel_l2_error > NOISE_FACTOR * gradients.noise
    assert "run again with MXNET_MKLDNN_ENABLED=0 it is within the noise" in gradients.reason
    assert [e["id"] for e in run.info["ledger"]] == ["mxnet-onednn"]
