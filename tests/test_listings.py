"""The rows of the listing commands (suite.listings): every backend, spec and environment
once, its name first, and fields the columns name."""

from __future__ import annotations

import json

from suite import listings, registry
from suite import spec as spec_module


def test_backends_are_every_registered_one_name_first():
    found = listings.backends()
    assert [r["backend"] for r in found] == list(registry.entry_points())
    assert all(list(r)[0] == "backend" for r in found)
    keys = [c.key for c in listings.BACKEND_COLUMNS]
    assert all(set(r) == set(keys) for r in found)
    cntk = next(r for r in found if r["backend"] == "cntk")
    assert cntk["available"] is False and "CNTK" in cntk["reason"]
    numpy = next(r for r in found if r["backend"] == "numpy")
    assert numpy["available"] is True and "numpy" in numpy["versions"]


def test_specs_are_the_builtin_ones_with_their_network():
    found = listings.specs()
    assert [r["name"] for r in found] == spec_module.builtin_names()
    digits = next(r for r in found if r["name"] == "digits-mlp")
    assert digits["network"] == "64 → 64 relu → 10 softmax" and digits["data"] == "digits"
    assert set(listings.vocabulary()) == {"datasets", "activations", "losses", "optimizers",
                                          "initializers"}


def test_environments_are_the_built_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("FNN_SUITE_ENVS", str(tmp_path))
    assert listings.environments() == []
    folder = tmp_path / "mxnet-abc"
    folder.mkdir()
    (folder / "fnn-suite-env.json").write_text(json.dumps({
        "name": "mxnet", "requirements": ["mxnet==1.9.1", "numpy<1.24"],
        "created": "2026-12-03T15:47:19+00:00", "build_s": 12.4}))
    (found,) = listings.environments()
    assert found["name"] == "mxnet" and found["requirements"] == ["mxnet==1.9.1", "numpy<1.24"]
    assert found["build_s"] == 12.4 and found["path"] == str(folder)
    assert set(found) == {c.key for c in listings.ENV_COLUMNS}
