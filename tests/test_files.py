"""Files written whole or not at all: a write that does not fit is one line (the file, the
bytes it needed, what was left), leaves no temporary file and keeps the file it replaces."""

from __future__ import annotations

import re

import numpy as np
import pytest
from disks import file_size_limit, tmpfs

from suite import files
from suite.errors import DiskFull, UserError


def test_a_write_past_the_file_size_limit_is_one_line_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "run.json"
    files.write_json(path, {"old": 1})
    with file_size_limit(1000), pytest.raises(DiskFull) as caught:
        files.write_json(path, {"new": "x" * 5000})
    message = str(caught.value)
    assert re.fullmatch(r"file too large for the process's file-size limit writing "
                        rf"{re.escape(str(path))} \(needs about 5\.0 kB; the limit is "
                        r"1\.0 kB\)", message), message
    assert isinstance(caught.value, UserError) and "\n" not in message
    assert files.read_json(path) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_an_npz_that_does_not_fit_names_its_bytes_and_leaves_nothing(tmp_path):
    path = tmp_path / "grads.npz"
    files.save_npz(path, {"a": np.zeros(3)})
    with file_size_limit(4096), pytest.raises(DiskFull, match=r"writing .*grads\.npz "
                                                 r"\(needs about 80\.[0-9] kB; the limit "
                                                 r"is 4\.1 kB\)"):
        files.save_npz(path, {"a": np.zeros(10_000)})
    with np.load(path) as kept:
        assert np.array_equal(kept["a"], np.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == ["grads.npz"]


def test_other_write_errors_are_not_a_full_disk(tmp_path):
    with pytest.raises(FileNotFoundError):
        files.atomic_write_text(tmp_path / "missing" / "report.md", "text")
    with pytest.raises(FileNotFoundError):
        files.save_npz(tmp_path / "missing" / "grads.npz", {"a": np.zeros(3)})


def test_no_space_left_on_a_small_tmpfs_says_what_is_free(tmp_path):
    with tmpfs(tmp_path / "disk", "64k") as disk:
        with pytest.raises(DiskFull, match=r"^no space left on the device writing "
                                           rf"{re.escape(str(disk))}/report\.html \(needs "
                                           r"about 100\.0 kB; [0-9.]+ kB free\)$"):
            files.atomic_write_text(disk / "report.html", "x" * 100_000)
        assert list(disk.iterdir()) == []
