"""The run directory: fresh names, --out and --force, the latest pointer, atomic files."""

from __future__ import annotations

import numpy as np
import pytest

from suite import files, rundir
from suite.errors import UserError


def test_new_runs_get_distinct_timestamped_names(tmp_path):
    first = rundir.create("digits mlp", tmp_path, None, False)
    second = rundir.create("digits mlp", tmp_path, None, False)
    assert first != second and first.name.endswith("-digits-mlp")


def test_out_must_be_empty_unless_forced_and_a_run(tmp_path):
    out = tmp_path / "mine"
    assert rundir.create("x", tmp_path, out, False) == out
    (out / "run.json").write_text("{}")
    with pytest.raises(UserError, match="already exists"):
        rundir.create("x", tmp_path, out, False)
    assert rundir.create("x", tmp_path, out, True) == out and not (out / "run.json").exists()
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("...")
    with pytest.raises(UserError, match="not a run directory"):
        rundir.create("x", tmp_path, other, True)
    assert (other / "thesis.tex").exists()


def test_latest_is_a_relative_link_that_moves(tmp_path):
    a, b = (rundir.create("x", tmp_path, tmp_path / n, False) for n in ("a", "b"))
    rundir.point_latest(a)
    rundir.point_latest(b)
    link = tmp_path / "latest"
    assert link.is_symlink() and link.resolve() == b.resolve()
    assert not link.readlink().is_absolute()


def test_writes_leave_no_temporary_files(tmp_path):
    files.write_json(tmp_path / "run.json", {"a": 1})
    files.save_npz(tmp_path / "x.npz", {"dense_0/kernel": np.ones((2, 3))})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "x.npz"]
    with np.load(tmp_path / "x.npz") as data:
        assert data["dense_0/kernel"].shape == (2, 3)
