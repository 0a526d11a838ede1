"""What is Keras-on-JAX's own in the keras-jax backend.

Keras picks its backend once per process and this test process may run Keras on
TensorFlow, so the in-process checks (class ``InProcess``) run in a pytest process of
their own, started by :func:`test_in_process_checks`. The conformance battery runs in
worker processes: every activation, loss and optimizer passes in float32 or differs only
where a Keras ledger entry explains it; float64 is unsupported, because Keras 3.15 on
JAX computes the losses' means and tanh of float64 in float32 (the tests pin that).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import THREADS
from keras_variants import (
    ROOT,
    KerasChecks,
    check_battery,
    is_child,
    run_in_fresh_process,
)

NAME = "keras-jax"
CHILD = is_child(NAME)


def test_in_process_checks():
    """The class InProcess passes in a fresh process running Keras on JAX."""
    run_in_fresh_process(NAME, __file__, InProcess)


@pytest.mark.slow
def test_battery_passes_in_float32_and_float64_is_unsupported():
    """Every activation, loss, optimizer, initializer and L2 in worker processes (the same
    battery as tests/test_conformance.py, shared within one pytest process)."""
    check_battery(NAME)


_POOL = """
import os, sys
from backends.keras_backend import KerasJaxBackend
KerasJaxBackend().load(int(sys.argv[1]))
import jax, jax.numpy as jnp
jax.jit(lambda m: m @ m)(jnp.ones((256, 256))).block_until_ready()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(names.count("tf_XLAEigen"), os.environ.get("NPROC"))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_load_sizes_the_xla_cpu_pool():
    """XLA's CPU intra-op pool follows the request (3 on a 2-core machine shows it), and
    NPROC, set for the moment the client starts, is restored."""
    env = {k: v for k, v in os.environ.items() if k != "NPROC"}
    done = subprocess.run([sys.executable, "-c", _POOL, "3"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["3", "None"], done.stderr[-2000:]


def xla_pool_threads() -> int:
    """Threads of XLA's CPU intra-op pool ("tf_XLAEigen") after a jitted matmul."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((256, 256))
    jax.jit(lambda m: m @ m)(a).block_until_ready()
    names = [Path(f"/proc/self/task/{t}/comm").read_text().strip()
             for t in os.listdir("/proc/self/task")]
    return names.count("tf_XLAEigen")


@pytest.fixture(scope="module")
def backend(load_backend):
    """The loaded backend, for InProcess (only in the process test_in_process_checks starts)."""
    if not CHILD:
        pytest.skip("runs in the process test_in_process_checks starts")
    return load_backend(NAME)


class InProcess(KerasChecks):
    """Checks that need Keras on JAX in this process."""

    optimizer_module = "keras.src.optimizers"
    jit_compile = True

    def test_versions_x64_precision_and_threads(self, backend):
        import jax
        import jaxlib
        import keras

        assert backend.versions() == {"keras": keras.__version__, "jax": jax.__version__,
                                      "jaxlib": jaxlib.__version__}
        assert keras.config.backend() == "jax"
        assert jax.config.jax_enable_x64 is True
        assert jax.config.jax_default_matmul_precision == "highest"
        assert xla_pool_threads() == THREADS

    def test_runtime_settings_report_the_pool_and_precision(self, backend):
        settings = backend.runtime_settings()
        assert settings["keras.backend"] == "jax"
        assert settings["jax.NPROC"] == THREADS
        assert settings["jax.xla_cpu_pool_threads"] == (
            THREADS if os.path.isdir("/proc/self/task") else None)
        assert settings["jax.default_matmul_precision"] == "highest"
        assert settings["jax.enable_x64"] is True
        assert settings["jax.XLA_FLAGS"] == os.environ.get("XLA_FLAGS", "")

    def test_load_refuses_another_keras_backend(self, backend):
        from backends.keras_backend import KerasBackend, KerasTorchBackend

        for other in (KerasBackend(), KerasTorchBackend()):
            with pytest.raises(RuntimeError, match="already imported with the 'jax' backend"):
                other.load(THREADS)

    def test_cuda_is_declared_only_when_available(self, backend):
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        answer = backend.supports("device:cuda")
        assert answer is True if gpus else "no GPU" in answer
        assert backend.supports("device:cpu") is True

    def test_float64_is_unsupported_because_keras_demotes_it(self, backend):
        """Keras's result_type maps float64 to float32 here: the losses' mean and tanh round
        to float32 (when Keras keeps float64, this test fails: enable float64)."""
        import keras

        assert keras.backend.result_type("float64", "float64") == "float32"
        reason = backend.supports("dtype:float64")
        assert "result_type('float64', 'float64') is 'float32'" in reason
        assert backend.supports("dtype:float32") is True
        a = np.array([[1.0 + 2.0 ** -30, 1.0]])
        tensor = keras.ops.convert_to_tensor(a, "float64")
        assert float(keras.ops.mean(tensor)) == 1.0 != a.mean()  # 1 + 2^-31 in float64
        z = np.linspace(-2.0, 2.0, 9)
        tanh = keras.activations.tanh(keras.ops.convert_to_tensor(z, "float64"))
        assert keras.ops.convert_to_numpy(tanh).dtype == np.float32
        # jnp.matmul itself keeps float64 (Keras's jax matmul does not promote)
        product = keras.ops.matmul(tensor, keras.ops.convert_to_tensor(a.T, "float64"))
        assert float(product[0, 0]) == (a @ a.T)[0, 0]

    def test_softplus_is_exact_above_20(self, backend):
        """jax.nn.softplus is logaddexp(z, 0): keras-torch-softplus-threshold is torch's."""
        import keras

        from backends.reference import activations

        z = np.array([-30.0, -3.0, 0.5, 19.0, 20.5, 25.0, 30.0])
        got = keras.ops.convert_to_numpy(
            keras.activations.softplus(keras.ops.convert_to_tensor(z, "float64")))
        np.testing.assert_allclose(got, activations.get("softplus").forward(z), rtol=1e-15,
                                   atol=0)
        assert np.all(got[4:] > z[4:])

    def test_optimizer_state_stays_float32_with_x64_on(self, build, batch):
        trainer, _ = build(dtype="float32")
        trainer.train_step(*batch())
        floats = [v.dtype for v in trainer.model.optimizer.variables if "int" not in v.dtype]
        assert set(floats) == {"float32"}  # x64 is on: nothing drifts to float64
