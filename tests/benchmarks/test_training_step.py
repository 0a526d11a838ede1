"""One training step (``Trainer.fast_step``), per backend and size, with pytest-benchmark.

Each round times ONE call of the step function, which returns once the step has
finished; the first call (trace, compile) is timed apart, as ``first_step_s`` in
``extra_info``. The cases and options are in conftest.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import pytest

from suite import registry
from suite.bench.sizes import describe, flops_per_step, synthetic_batches
from suite.initializers import initial_params
from suite.worker import unsupported_features

DISTINCT_BATCHES = 8  # cycled, as in the standalone scripts
MIN_ROUNDS, MAX_ROUNDS = 20, 1000
# After the first call, steps run (untimed by pytest-benchmark) for a quarter of
# --bench-seconds, at least PROBE_STEPS: they warm caches and allocators, and the fastest
# of them sets the rounds (the fastest, so that a busy machine's stalls do not cut the
# rounds short). pedantic's own warmup rounds follow.
PROBE_STEPS = 5


def probe(step: Callable[[], None], seconds: float) -> float:
    """The fastest of the steps run for ``seconds`` (at least PROBE_STEPS of them)."""
    times: list[float] = []
    end = time.perf_counter() + seconds
    while len(times) < PROBE_STEPS or time.perf_counter() < end:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def choose_rounds(step_s: float, seconds: float) -> tuple[int, int]:
    """(rounds, warmup rounds): about ``seconds`` of timed steps, within the limits."""
    rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, math.ceil(seconds / max(step_s, 1e-7))))
    return rounds, min(20, max(3, rounds // 20))


def test_training_step(benchmark, bench_backend, backend_name, case, threads, device,
                       thread_env, bench_seconds):
    spec = case.spec()
    missing = unsupported_features(bench_backend, spec, device)
    if missing:
        pytest.skip(f"{backend_name} does not run {'; '.join(missing)}")
    dtype = spec.training.dtype
    params = {k: v.astype(dtype) for k, v in initial_params(spec).items()}
    before = params["dense_0/kernel"].copy()
    trainer = bench_backend.build(spec, params, dtype, device)
    try:
        step = trainer.fast_step(synthetic_batches(spec, DISTINCT_BATCHES, seed=0))
    except NotImplementedError as exc:
        pytest.skip(f"{backend_name} has no fast_step (one step per call): {exc}")

    start = time.perf_counter()
    step()  # trace or compile: not part of the steady-state figures
    first_step_s = time.perf_counter() - start
    rounds, warmup = choose_rounds(probe(step, bench_seconds / 4), bench_seconds)

    benchmark.group = case.id
    benchmark.extra_info.update({
        "backend": registry.name_of(backend_name), **describe(spec), "dtype": dtype,
        "device": device, "threads": threads, "gflops_per_step": flops_per_step(spec) / 1e9,
        "activation": spec.layers[0].activation.name, "loss": spec.loss.name,
        "optimizer": spec.optimizer.name,
        "learning_rate": spec.optimizer.params["learning_rate"], "first_step_s": first_step_s,
        "versions": bench_backend.versions(),
        "runtime_settings": bench_backend.runtime_settings(),
        "thread_env": thread_env,
    })
    benchmark.pedantic(step, rounds=rounds, warmup_rounds=warmup, iterations=1)

    assert benchmark.stats.stats.median > 0
    # it trained: the steps moved the weights and kept them finite
    after = trainer.get_params()
    assert not np.array_equal(after["dense_0/kernel"], before)
    assert all(np.isfinite(value).all() for value in after.values())
