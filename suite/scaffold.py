"""``suite new-backend NAME``: a skeleton plug-in distribution for a new framework.

The skeleton installs, registers through the ``fnn_suite.backends`` entry point and is
listed as available at once; every contract method raises
``NotImplementedError("fill in: ...")`` (``fast_step``, which the suite times, included;
``runtime_settings`` is optional and returns ``{}``), so ``suite check-backend NAME``
fails with the first thing to write. The files are Jinja2 templates shipped as package data
(``suite/templates/new_backend/``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from suite import registry
from suite.errors import UserError

TEMPLATES = "templates/new_backend"

# template -> its path in the distribution ({module} is the import package)
FILES: dict[str, str] = {
    "pyproject.toml.j2": "pyproject.toml",
    "README.md.j2": "README.md",
    "__init__.py.j2": "{module}/__init__.py",
    "backend.py.j2": "{module}/backend.py",
    "test_conformance.py.j2": "tests/test_conformance.py",
}

# Lowercase letters and digits in hyphen-separated words, starting with a letter: a valid
# entry-point name, distribution suffix, module suffix (hyphens become underscores) and
# class-name prefix.
NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Names:
    """Every spelling of one backend name, as the templates use them."""

    name: str  # the backend name, e.g. "my-framework"
    distribution: str  # "fnn-suite-my-framework"
    module: str  # "fnn_suite_my_framework"
    cls: str  # "MyFramework": the classes are MyFrameworkBackend, MyFrameworkTrainer

    @classmethod
    def of(cls, name: str) -> Names:
        return cls(name, f"fnn-suite-{name}", "fnn_suite_" + name.replace("-", "_"),
                   "".join(word.capitalize() for word in name.split("-")))


def check_name(name: str) -> Names:
    """The spellings of ``name``, or a :class:`UserError` saying what is wrong with it."""
    if not NAME.fullmatch(name):
        raise UserError(
            "expected a backend name of lowercase letters, digits and single hyphens, "
            f"starting with a letter. Received: {name!r}",
            hint=f"for example {_suggest(name)!r}")
    installed = registry.entry_points()
    if name in installed:
        raise UserError(f"expected a new backend name; a backend {name!r} is already "
                        f"installed ({installed[name]}). Received: {name!r}",
                        hint=f"choose another name, for example '{name}-plugin'")
    return Names.of(name)


def _suggest(name: str) -> str:
    words = re.findall(r"[a-z0-9]+", name.lower())
    suggestion = "-".join(words).lstrip("-0123456789")
    return suggestion if NAME.fullmatch(suggestion) else "my-framework"


def _target(names: Names, directory: Path) -> Path:
    if directory.exists() and not directory.is_dir():
        raise UserError(f"expected a folder to create the plug-in in. Received: --dir "
                        f"{directory} (a file)", hint="give a folder with --dir")
    target = directory / names.distribution
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"expected {target} not to exist, or to be an empty folder. "
                        f"Received: an existing {'folder' if target.is_dir() else 'file'}",
                        hint="remove it, or give another --dir")
    return target


def render(names: Names) -> dict[str, str]:
    """Relative path -> text of every file of the skeleton distribution."""
    env = Environment(loader=PackageLoader("suite", TEMPLATES), autoescape=False,
                      undefined=StrictUndefined, keep_trailing_newline=True)
    values = asdict(names)
    return {path.format(module=names.module): env.get_template(template).render(**values)
            for template, path in FILES.items()}


def create(name: str, directory: Path) -> Path:
    """Create a skeleton backend plug-in, the distribution fnn-suite-NAME, in DIR.

    It registers NAME through the fnn_suite.backends entry point and is listed as
    available as soon as it is installed (pip install -e DIR/fnn-suite-NAME). Each method
    of the backend contract (fast_step included) raises NotImplementedError("fill in:
    ...") and its docstring
    says what crosses the boundary, so `suite check-backend NAME` names the next method
    to write. NAME: lowercase letters, digits and hyphens, starting with a letter, not
    the name of an installed backend. DIR (default: the current folder) gets
    fnn-suite-NAME/, which must not exist or be empty.

    Parameters
    ----------
    name : str
        The backend name, e.g. ``"my-framework"``.
    directory : Path
        The folder that receives ``fnn-suite-<name>/``; created if missing.

    Returns
    -------
    Path
        The new distribution's folder.

    Raises
    ------
    UserError
        For a bad or taken name, or a target folder that is a file or not empty.
    """
    names = check_name(name)
    target = _target(names, Path(directory))
    files = render(names)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written in a sibling temporary folder, then renamed: whole or not at all.
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        for relative, text in files.items():
            path = scratch / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.chmod(scratch, 0o755)  # mkdtemp makes it private
        os.replace(scratch, target)  # replaces an empty folder too
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target
