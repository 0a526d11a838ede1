"""suite.scaffold: the skeleton plug-in ``suite new-backend NAME`` writes.

It installs, is listed as available, and fails the conformance kit with "fill in" until
its methods are written; bad names and folders are one-line user errors.
"""

from __future__ import annotations

import importlib.util
import inspect
import tomllib
from pathlib import Path

import pytest
from plugin_install import backends_row, matrix, pip_install, suite

from backends.base import Backend, Trainer
from suite.errors import UserError
from suite.scaffold import create

# What a backend must write: the abstract methods, and fast_step (not abstract, so that a
# backend that can only override time_steps still loads, but what every backend is timed by)
CONTRACT = {Backend: sorted(Backend.__abstractmethods__),
            Trainer: sorted([*Trainer.__abstractmethods__, "fast_step"])}


def _import(path: Path):
    spec = importlib.util.spec_from_file_location("generated_backend", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_create_writes_the_distribution(tmp_path):
    folder = create("my-fw", tmp_path)
    assert folder == tmp_path / "fnn-suite-my-fw"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == ["README.md", "fnn_suite_my_fw/__init__.py", "fnn_suite_my_fw/backend.py",
                     "pyproject.toml", "tests/test_conformance.py"]
    project = tomllib.loads((folder / "pyproject.toml").read_text())
    assert project["project"]["name"] == "fnn-suite-my-fw"
    assert project["project"]["entry-points"]["fnn_suite.backends"] == {
        "my-fw": "fnn_suite_my_fw.backend:MyFwBackend"}
    assert '@parametrize_with_checks(["my-fw"])' in (
        folder / "tests/test_conformance.py").read_text()
    assert "suite check-backend my-fw" in (folder / "README.md").read_text()


def test_every_contract_method_raises_fill_in(tmp_path):
    module = _import(create("my-fw", tmp_path) / "fnn_suite_my_fw/backend.py")
    backend_cls, trainer_cls = module.MyFwBackend, module.MyFwTrainer
    assert (backend_cls.name, backend_cls.requires) == ("my-fw", ())
    for base, cls in ((Backend, backend_cls), (Trainer, trainer_cls)):
        assert not cls.__abstractmethods__  # it defines every method of the contract
        instance = cls()
        for name in CONTRACT[base]:
            method = getattr(instance, name)
            args = [None] * len(inspect.signature(method).parameters)
            with pytest.raises(NotImplementedError, match=f"^fill in: {name}"):
                method(*args)
            assert len(inspect.getdoc(method).splitlines()) > 2, name  # says what crosses


def test_time_steps_comes_from_the_contract_and_asks_for_fast_step(tmp_path):
    module = _import(create("my-fw", tmp_path) / "fnn_suite_my_fw/backend.py")
    assert "time_steps" not in vars(module.MyFwTrainer)
    with pytest.raises(NotImplementedError, match="^fill in: fast_step"):
        module.MyFwTrainer().time_steps([(None, None)], 1)
    # optional: the default answer, documented
    assert module.MyFwBackend().runtime_settings() == {}
    assert "run.json" in inspect.getdoc(module.MyFwBackend.runtime_settings)


def test_an_empty_target_folder_is_fine(tmp_path):
    (tmp_path / "fnn-suite-abc2").mkdir()
    assert (create("abc2", tmp_path) / "fnn_suite_abc2/backend.py").exists()


@pytest.mark.parametrize(("name", "message"), [
    ("My_FW", "expected a backend name of lowercase letters, digits and single hyphens, "
              "starting with a letter. Received: 'My_FW' (for example 'my-fw')"),
    ("2fast", "Received: '2fast'"),
    ("a--b", "Received: 'a--b'"),
    ("trailing-", "Received: 'trailing-'"),
    ("", "Received: ''"),
    ("numpy", "a backend 'numpy' is already installed (backends.reference.backend:"
              "NumpyBackend). Received: 'numpy' (choose another name"),
])
def test_bad_names(tmp_path, name, message):
    with pytest.raises(UserError) as error:
        create(name, tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_target_is_refused(tmp_path):
    create("my-fw", tmp_path)
    with pytest.raises(UserError, match="not to exist, or to be an empty folder. "
                                        "Received: an existing folder"):
        create("my-fw", tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="a file"):
        create("my-fw", tmp_path / "file")


@pytest.mark.slow
def test_installed_skeleton_is_listed_and_fails_the_kit_with_fill_in(tmp_path):
    site = pip_install(create("skel", tmp_path / "made"), tmp_path)
    listing = suite(site, "backends")
    assert listing.returncode == 0, listing.stderr
    row = backends_row(listing.stdout, "skel")
    assert row["available"] == "true" and row["target"] == "fnn_suite_skel.backend:SkelBackend"

    out = tmp_path / "check"
    done = suite(site, "check-backend", "skel", "--dtype", "float64", "--threads", "1",
                 "--out", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "fill in: load(threads)" in done.stdout
    report = (out / "conformance.md").read_text(encoding="utf-8")
    assert set(map(tuple, matrix(report).values())) == {("! error",)}
    assert report.count("NotImplementedError: fill in: load(threads)") == len(matrix(report))
