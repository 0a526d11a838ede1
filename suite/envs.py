"""Isolated virtual environments for backends that cannot live in the main one.

A backend runs in an environment of its own when it declares requirements of its own
(``Backend.environment``, e.g. MXNet with an old NumPy) or when it is asked for at a
version (``numpy@1.26``, ``torch@2.13.0``). The environment is built on first use, cached
under ``$FNN_SUITE_ENVS`` (default ``~/.cache/fnn-suite/envs``) and keyed by its
requirements and Python version; the suite's worker side (the ``suite`` and ``backends``
packages, which need only NumPy) is copied into it before each run. A failed build says
which package failed and why, and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from suite.errors import UserError

# Only the worker side is copied: the harness side (pandas, plotting) never runs there.
WORKER_PACKAGES = ("suite", "backends")
_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*([a-z]+[0-9]*)?")


def root() -> Path:
    return Path(os.environ.get("FNN_SUITE_ENVS") or Path.home() / ".cache" / "fnn-suite"
                / "envs")


@dataclass(frozen=True)
class EnvSpec:
    """What an environment holds: a name for people, and the pip requirements."""

    name: str  # e.g. "numpy@1.26" or "mxnet"
    requirements: tuple[str, ...]

    @property
    def key(self) -> str:
        text = json.dumps([sys.version_info[:2], sorted(self.requirements)])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def path(self) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", self.name)
        return root() / f"{safe}-{self.key}"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def split_version(name: str) -> tuple[str, str | None]:
    """``"torch@2.13.0"`` -> ("torch", "2.13.0"); ``"torch"`` -> ("torch", None)."""
    base, sep, version = name.partition("@")
    if not sep:
        return name, None
    if not _VERSION.fullmatch(version):
        raise UserError(f"expected BACKEND@VERSION with a version such as 1.26 or 2.13.0. "
                        f"Received: {name!r}")
    return base, version


def spec_for(name: str, cls: type) -> EnvSpec | None:
    """The environment backend ``name`` (``mxnet``, ``torch@2.13.0``) of class ``cls``
    needs, or None for the main environment (see ``registry.environment_of``)."""
    base, version = split_version(name)
    own = tuple(getattr(cls, "environment", ()))
    if version is None:
        return EnvSpec(base, own) if own else None
    framework = (getattr(cls, "requires", ()) or (base,))[0]
    pinned = f"{framework}=={version}" if version.count(".") >= 2 else f"{framework}=={version}.*"
    rest = tuple(r for r in own if not _names(r, framework))
    # NumPy is the boundary: every worker needs it, whatever the framework pulls in.
    numpy = () if framework == "numpy" or any(_names(r, "numpy") for r in rest) else ("numpy",)
    return EnvSpec(name, (pinned, *rest, *numpy))


def _names(requirement: str, distribution: str) -> bool:
    head = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    return head.lower().replace("_", "-") == distribution.lower().replace("_", "-")


# ---------------------------------------------------------------------------- building

Progress = Callable[[str], None]


def ensure(env: EnvSpec, progress: Progress | None = None) -> Path:
    """The environment's interpreter, building the environment first if it is missing.

    Raises
    ------
    UserError
        When the build fails (naming the package and pip's reason), or when the
        environment exists but its interpreter is gone (deleted behind the suite's back).
    """
    if env.path.exists():
        if not env.python.exists():
            raise UserError(f"environment {env.name} at {env.path} has no interpreter (it was "
                            f"changed outside the suite)",
                            hint=f"suite env remove {env.name}, then run again")
        return env.python
    build(env, progress or (lambda line: None))
    return env.python


def build(env: EnvSpec, progress: Progress) -> None:
    """Create the venv in a temporary folder, install, and move it into place."""
    env.path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{env.path.name}-", dir=env.path.parent))
    try:
        progress(f"creating a virtual environment for {env.name}")
        _run([sys.executable, "-m", "venv", str(scratch)], progress)
        pip = [str(scratch / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off",
               "--disable-pip-version-check"]
        started = time.perf_counter()
        log = _run([*pip, *env.requirements], progress, check=False)
        if log.returncode != 0:
            raise UserError(f"building the environment for {env.name} failed: "
                            f"{pip_failure(log.stdout, env.requirements)}",
                            hint="check the version exists for this Python "
                                 f"({sys.version_info.major}.{sys.version_info.minor})")
        meta = {"name": env.name, "requirements": list(env.requirements),
                "python": sys.version.split()[0],
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "build_s": round(time.perf_counter() - started, 1),
                "packages": _freeze(scratch / "bin" / "python")}
        (scratch / "fnn-suite-env.json").write_text(json.dumps(meta, indent=2) + "\n",
                                                    encoding="utf-8")
        _fix_shebangs(scratch, env.path)
        scratch.chmod(0o755)  # mkdtemp made it private; a cache may be shared
        os.replace(scratch, env.path)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def _run(command: Sequence[str], progress: Progress,
         check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.strip():
                progress(line.strip())
    except BaseException:  # Ctrl-C, SIGTERM: pip goes too
        proc.kill()
        proc.wait()
        raise
    code = proc.wait()
    done = subprocess.CompletedProcess(command, code, "".join(lines), "")
    if check and code != 0:
        raise UserError(f"{' '.join(command[:3])} failed: {_last_error(done.stdout)}")
    return done


def pip_failure(output: str, requirements: Sequence[str]) -> str:
    """The package pip could not install, and why, in one line."""
    found = re.search(r"No matching distribution found for (\S+)", output)
    if found:
        return f"no matching distribution for {found.group(1)}"
    return _last_error(output) or f"pip exited with an error installing {' '.join(requirements)}"


def _last_error(output: str) -> str:
    errors = [line.strip() for line in output.splitlines() if line.startswith("ERROR")]
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return (errors or lines or [""])[-1].removeprefix("ERROR: ")


def _freeze(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format", "json",
                          "--disable-pip-version-check"], capture_output=True, text=True)
    try:
        return {p["name"]: p["version"] for p in json.loads(out.stdout)}
    except (ValueError, KeyError, TypeError):
        return {}


def _fix_shebangs(scratch: Path, final: Path) -> None:
    """Scripts in bin/ name the temporary folder; the interpreter itself does not care."""
    for script in (scratch / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            try:
                text = script.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if str(scratch) in text:
                script.write_text(text.replace(str(scratch), str(final)), encoding="utf-8")
    cfg = scratch / "pyvenv.cfg"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(str(scratch), str(final)),
                   encoding="utf-8")


# ---------------------------------------------------------------------------- worker side


def worker_path(env: EnvSpec) -> Path:
    """A folder with the current worker side, for the environment's PYTHONPATH."""
    target = env.path / "fnn-suite-worker"
    sources = {name: Path(__import__(name).__file__).parent for name in WORKER_PACKAGES}
    stamp = _stamp(sources.values())
    if (target / "stamp").exists() and (target / "stamp").read_text() == stamp:
        return target
    fresh = Path(tempfile.mkdtemp(prefix=".worker-", dir=env.path))
    for name, source in sources.items():
        shutil.copytree(source, fresh / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (fresh / "stamp").write_text(stamp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(fresh, target)
    return target


def _stamp(folders) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            digest.update(str(path.relative_to(folder.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def versions_in(env: EnvSpec) -> dict[str, str]:
    """Distribution -> version installed in a built environment (empty if not built)."""
    meta = env.path / "fnn-suite-env.json"
    if not meta.exists():
        return {}
    return json.loads(meta.read_text(encoding="utf-8")).get("packages", {})


# ---------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class EnvInfo:
    name: str
    path: Path
    requirements: list[str]
    size_mb: float
    created: str
    build_s: float | None


def installed() -> list[EnvInfo]:
    found = []
    if not root().exists():
        return found
    for folder in sorted(root().iterdir()):
        meta_file = folder / "fnn-suite-env.json"
        if folder.name.startswith(".") or not meta_file.exists():
            continue
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()
                   and not f.is_symlink())
        found.append(EnvInfo(meta["name"], folder, meta["requirements"], size / 2**20,
                             meta["created"], meta.get("build_s")))
    return found


def remove(name: str) -> list[Path]:
    """Delete the environments of ``name`` (a backend name, ``name@version`` or a folder
    name); returns what was deleted."""
    gone = [info.path for info in installed() if name in (info.name, info.path.name)]
    if not gone:
        known = ", ".join(info.name for info in installed()) or "none"
        raise UserError(f"no environment named {name!r}; built: {known}",
                        hint="see suite env list")
    for path in gone:
        shutil.rmtree(path)
    return gone
