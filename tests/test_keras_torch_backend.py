"""What is Keras-on-torch's own in the keras-torch backend.

Keras picks its backend once per process and this test process may run Keras on
TensorFlow, so the in-process checks (class ``InProcess``) run in a pytest process of
their own, started by :func:`test_in_process_checks`. The conformance battery runs in
worker processes: every activation, loss and optimizer passes in float32 or differs only
where a Keras ledger entry explains it; float64 is unsupported, because Keras 3.15 on
torch computes float64 matrix products and means in float32 (the tests pin that).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import THREADS
from keras_variants import KerasChecks, check_battery, is_child, run_in_fresh_process

NAME = "keras-torch"
CHILD = is_child(NAME)


def test_in_process_checks():
    """The class InProcess passes in a fresh process running Keras on torch."""
    run_in_fresh_process(NAME, __file__, InProcess)


@pytest.mark.slow
def test_battery_passes_in_float32_and_float64_is_unsupported():
    """Every activation, loss, optimizer, initializer and L2 in worker processes (the same
    battery as tests/test_conformance.py, shared within one pytest process)."""
    check_battery(NAME)


@pytest.fixture(scope="module")
def backend(load_backend):
    """The loaded backend, for InProcess (only in the process test_in_process_checks starts)."""
    if not CHILD:
        pytest.skip("runs in the process test_in_process_checks starts")
    return load_backend(NAME)


class InProcess(KerasChecks):
    """Checks that need Keras on torch in this process."""

    optimizer_module = "keras.src.backend.torch.optimizers"
    jit_compile = False

    def test_versions_threads_and_no_tf32(self, backend):
        import keras
        import torch

        assert backend.versions() == {"keras": keras.__version__, "torch": torch.__version__}
        assert keras.config.backend() == "torch"
        assert torch.get_num_threads() == THREADS
        assert torch.backends.cuda.matmul.allow_tf32 is False
        settings = backend.runtime_settings()
        assert settings["keras.backend"] == "torch"
        assert settings["torch.num_threads"] == THREADS
        assert settings["torch.float32_matmul_precision"] == "highest"
        assert settings["torch.backends.cuda.matmul.allow_tf32"] is False
        assert settings["torch.backends.cudnn.allow_tf32"] is False

    def test_load_refuses_another_keras_backend(self, backend):
        from backends.keras_backend import KerasBackend, KerasJaxBackend

        for other in (KerasBackend(), KerasJaxBackend()):
            with pytest.raises(RuntimeError, match="already imported with the 'torch' backend"):
                other.load(THREADS)

    def test_cuda_is_declared_only_when_available(self, backend):
        import torch

        answer = backend.supports("device:cuda")
        assert answer is True if torch.cuda.is_available() else "no CUDA" in answer
        assert backend.supports("device:cpu") is True

    def test_float64_is_unsupported_because_keras_demotes_it(self, backend):
        """Keras's result_type maps float64 to float32 here: Dense's matmul and the losses'
        mean round to float32 (when Keras keeps float64, this test fails: enable float64)."""
        import keras

        assert keras.backend.result_type("float64", "float64") == "float32"
        reason = backend.supports("dtype:float64")
        assert "result_type('float64', 'float64') is 'float32'" in reason
        assert backend.supports("dtype:float32") is True
        a = np.array([[1.0 + 2.0 ** -30, 1.0]])
        b = np.array([[1.0], [2.0 ** -30]])
        tensor = keras.ops.convert_to_tensor
        product = keras.ops.matmul(tensor(a, "float64"), tensor(b, "float64"))
        assert float(product[0, 0]) == 1.0 != (a @ b)[0, 0]  # 1 + 2^-29 in float64
        mean = keras.ops.mean(tensor(a, "float64"))
        assert float(mean) == 1.0 != a.mean()

    def test_softplus_is_torch_thresholded(self, backend):
        """keras-torch-softplus-threshold: Keras calls torch's softplus (threshold 20), which
        the reference's torch_threshold convention reproduces; the exact one differs."""
        import keras

        from backends.reference import activations
        from suite import ledger

        z = np.array([-30.0, -3.0, 0.5, 19.0, 20.5, 25.0, 30.0])
        got = keras.ops.convert_to_numpy(
            keras.activations.softplus(keras.ops.convert_to_tensor(z, "float64")))
        conventions = ledger.by_id("keras-torch-softplus-threshold").conventions
        np.testing.assert_allclose(got, activations.get("softplus", conventions).forward(z),
                                   rtol=1e-15, atol=0)
        np.testing.assert_array_equal(got[4:], z[4:])
        assert np.all(activations.get("softplus").forward(z[4:]) > z[4:])
