"""pytest-benchmark suite: one training step of one backend, timed through ``fast_step``.

One framework per process: TensorFlow and torch in one interpreter disturb each other's
thread pools and timings, so ``make bench`` runs one pytest process per backend, each
with the BLAS/OpenMP thread variables (suite.processes.THREAD_VARIABLES) set before Python
starts::

    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 ... \\
        python -m pytest tests/benchmarks --backend torch --bench-threads 2 \\
        --benchmark-json reports/benchmarks/torch.json

``make test`` does not collect this folder (``--ignore=tests/benchmarks`` in pyproject's
addopts); naming the folder on the command line, as above, does.

The sizes are issue 5's reference cases: relu hidden layers, a softmax output fused into
a sparse categorical cross-entropy, plain SGD with learning rate 0.01, float32.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import pytest

from backends.base import Backend
from suite import registry
from suite.errors import UserError
from suite.processes import THREAD_VARIABLES
from suite.spec import Spec, from_dict

DTYPE = "float32"
LEARNING_RATE = 0.01


@dataclass(frozen=True)
class Case:
    """One network and batch size: ``sizes`` are input, hidden layers..., outputs."""

    alias: str
    sizes: tuple[int, ...]
    batch_size: int

    @property
    def id(self) -> str:
        return "-".join(map(str, self.sizes)) + f"-b{self.batch_size}"

    def spec(self) -> Spec:
        hidden = [{"units": units, "activation": "relu"} for units in self.sizes[1:-1]]
        return from_dict({
            "name": f"bench-{self.id}", "input_dim": self.sizes[0],
            "layers": [*hidden, {"units": self.sizes[-1], "activation": "softmax"}],
            "loss": "sparse_categorical_crossentropy",
            "optimizer": {"name": "sgd", "learning_rate": LEARNING_RATE},
            "training": {"batch_size": self.batch_size, "dtype": DTYPE},
        })


CASES = (
    Case("small", (64, 64, 10), 32),
    Case("medium", (784, 512, 512, 10), 128),
    Case("large", (784, 2048, 2048, 2048, 10), 256),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fnn-suite benchmarks")
    group.addoption("--backend", default="numpy",
                    help="the ONE backend to time in this process (default: numpy); a name "
                         "from `suite backends` or package.module:Class")
    group.addoption("--bench-threads", type=int, default=2, metavar="N",
                    help="intra-op threads: backend.load(N); set OMP_NUM_THREADS and the "
                         "other BLAS thread variables (suite.processes.THREAD_VARIABLES) to N "
                         "as well (default 2)")
    group.addoption("--bench-sizes", default="all", metavar="NAMES",
                    help="comma-separated cases: " + ", ".join(
                        f"{case.alias} ({case.id})" for case in CASES) + "; or all (default)")
    group.addoption("--bench-device", default="cpu", metavar="DEVICE",
                    help="cpu (default) or cuda: a backend that does not run there is "
                         "skipped with its reason")
    group.addoption("--bench-seconds", type=float, default=2.0, metavar="S",
                    help="timed seconds per case: rounds = S / step time, 20 to 1000 "
                         "(default 2)")


def selected_cases(option: str) -> list[Case]:
    """The cases ``--bench-sizes`` names, in CASES order."""
    if option == "all":
        return list(CASES)
    known = {name: case for case in CASES for name in (case.alias, case.id)}
    names = [name.strip() for name in option.split(",") if name.strip()]
    if not names or any(name not in known for name in names):
        choices = ", ".join(f"{case.alias} ({case.id})" for case in CASES)
        raise pytest.UsageError(f"expected --bench-sizes of all, or some of {choices}. "
                                f"Received: {option!r}")
    wanted = {known[name] for name in names}
    return [case for case in CASES if case in wanted]


def pytest_configure(config: pytest.Config) -> None:
    """Bad options end the session at once, with one line."""
    count = config.getoption("--bench-threads")
    if count < 1:
        raise pytest.UsageError(f"expected --bench-threads >= 1. Received: {count}")
    seconds = config.getoption("--bench-seconds")
    if not seconds > 0:
        raise pytest.UsageError(f"expected --bench-seconds > 0. Received: {seconds}")
    selected_cases(config.getoption("--bench-sizes"))
    try:
        registry.resolve(config.getoption("--backend"))
    except UserError as exc:
        raise pytest.UsageError(f"--backend: {exc}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize by backend (the one ``--backend`` names) and case."""
    config = metafunc.config
    if "backend_name" in metafunc.fixturenames:
        name = config.getoption("--backend")
        metafunc.parametrize("backend_name", [name], ids=[registry.name_of(name)],
                             scope="session")
    if "case" in metafunc.fixturenames:
        cases = selected_cases(config.getoption("--bench-sizes"))
        metafunc.parametrize("case", cases, ids=[case.id for case in cases])


@pytest.fixture(scope="session")
def threads(request: pytest.FixtureRequest) -> int:
    return request.config.getoption("--bench-threads")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--bench-device")


@pytest.fixture(scope="session")
def bench_seconds(request: pytest.FixtureRequest) -> float:
    return request.config.getoption("--bench-seconds")


@pytest.fixture(scope="session")
def thread_env(threads: int) -> dict[str, str | None]:
    """The thread variables as this process got them; a warning where one differs (OpenMP
    and the BLAS libraries read them when they load: too late to set them from here)."""
    found = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    wrong = {name: value for name, value in found.items() if value != str(threads)}
    if wrong:
        warnings.warn(f"expected {', '.join(wrong)} = {threads} (--bench-threads) in the "
                      f"environment. Received: {wrong}; BLAS may use other thread counts: "
                      "run `make bench`, which sets them", stacklevel=1)
    return found


@pytest.fixture(scope="session")
def bench_backend(backend_name: str, threads: int) -> Backend:
    """The ``--backend`` backend, loaded once with ``threads``; skips with the reason where
    it cannot run in this process."""
    info = registry.describe(backend_name)
    if not info.available:
        pytest.skip(f"{backend_name} is unavailable: {info.reason}")
    cls = registry.import_target(info.target)
    if getattr(cls, "environment", ()):
        pytest.skip(f"{backend_name} runs in an environment of its own "
                    f"({', '.join(cls.environment)}), not in this one: `suite bench` measures it")
    backend = cls()
    backend.load(threads=threads)
    return backend
