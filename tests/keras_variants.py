"""Shared by the keras-torch and keras-jax tests: a fresh process for in-process checks,
and the conformance battery's expectations for a Keras backend other than TensorFlow."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from suite.kit import KitOptions

ROOT = Path(__file__).resolve().parent.parent
CHILD_VARIABLE = "FNN_SUITE_KERAS_CHILD"

# Probes of the battery whose float32 difference a Keras ledger entry explains.
# (Adam's epsilon placement shows in its first update, checked on its own: parameters
# after it minus before)
KNOWN = {
    "optimizer:adam": "keras-adam-epsilon",
    "optimizer:adam (amsgrad)": "keras-adam-epsilon",
    "optimizer:adamw (amsgrad)": "keras-adam-epsilon",
    "optimizer:rmsprop": "keras-rmsprop-epsilon",
    "optimizer:rmsprop (centered, momentum)": "keras-rmsprop-epsilon",
    "optimizer:adagrad": "keras-adagrad-epsilon",
}


def is_child(name: str) -> bool:
    """Whether this process is the fresh one started for backend ``name``."""
    return os.environ.get(CHILD_VARIABLE) == name


def run_in_fresh_process(name: str, test_file: str, in_process: type) -> None:
    """Run ``in_process``'s tests in a new pytest process (Keras picks its backend once
    per process; pytest collects the class only there: its name does not start with
    "Test"), and assert that every one of them passed."""
    env = {**os.environ, CHILD_VARIABLE: name}
    done = subprocess.run([sys.executable, "-m", "pytest", f"{test_file}::InProcess", "-q",
                           "-o", "python_classes=InProcess", "-p", "no:cacheprovider",
                           "-W", "ignore::DeprecationWarning"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    tests = [test for test in vars(in_process) if test.startswith("test_")]
    assert passed and int(passed.group(1)) >= len(tests), done.stdout[-2000:]


def check_battery(name: str) -> None:
    """float32: every probe passes or is one of KNOWN; float64: unsupported, saying why."""
    from suite.kit.pytest_checks import kit_result

    cells = kit_result(name, KitOptions()).cells
    f32 = cells[cells.dtype == "float32"]
    bad = f32[~f32.verdict.isin(["pass", "known difference"])]
    assert bad.empty, bad[["probe", "check", "verdict", "reason"]].to_string()
    known = f32[f32.verdict == "known difference"]
    assert dict(zip(known.probe, known.ledger, strict=True)) == KNOWN
    # NOTE: first-step gradients within a few float32 roundings. initializer:ones makes
    # every hidden unit the same, so each gradient is a sum of equal terms whose rounding
    # depends on the order XLA picks for this CPU: 1.1e-5 for keras-jax on one of this
    # project's machines (2026-12), under 1e-5 on the CI's; every other probe under 1.2e-6.
    grads = f32[f32.check == "gradients"]
    symmetric = grads.probe == "initializer:ones"
    assert grads[~symmetric].rel_l2_error.max() < 1e-5
    assert grads[symmetric].rel_l2_error.max() < 5e-5
    f64 = cells[cells.dtype == "float64"]
    assert set(f64.verdict) == {"unsupported"}
    assert f64.reason.str.contains("result_type").all()


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative L2 difference."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


class KerasChecks:
    """In-process checks both Keras variants share; a module's ``InProcess`` class adds
    its own and sets what differs (its optimizers' module, whether Keras jit-compiles)."""

    optimizer_module = "keras.src.optimizers"
    jit_compile: bool | str = False

    def test_optimizer_receives_every_hyperparameter(self, build, optimizer_case):
        name, hp = optimizer_case
        trainer, _ = build(optimizer={"name": name, **hp}, dtype="float32")
        opt = trainer.model.optimizer
        assert type(opt).__name__.lower() == name
        assert type(opt).__module__.startswith(self.optimizer_module)
        for key, value in hp.items():
            got = getattr(opt, key)
            got = float(got.numpy()) if key == "learning_rate" else got
            assert got == pytest.approx(value, rel=1e-7), key
        assert opt.weight_decay == (hp["weight_decay"] if name == "adamw" else None)
        assert (opt.clipnorm, opt.clipvalue, opt.global_clipnorm, opt.use_ema) == (
            None, None, None, False)
        assert trainer.model.jit_compile is self.jit_compile

    def test_float32_contract(self, build, batch):
        """get_params round trip, no update in loss_and_grads, the batch's own loss before
        the update, float32 everywhere, and time_steps trains as train_step does."""
        trainer, params = build(dtype="float32")
        x, y = batch(seed=1)
        x2, y2 = batch(seed=2)
        for name, value in trainer.get_params().items():
            np.testing.assert_array_equal(value, params[name].astype(np.float32))
        probe, grads = trainer.loss_and_grads(x, y)
        assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
        assert trainer.get_params().keys() == params.keys()
        first = trainer.train_step(x, y)
        assert first == pytest.approx(probe, rel=1e-6)
        probe2, _ = trainer.loss_and_grads(x2, y2 * 10)
        assert trainer.train_step(x2, y2 * 10) == pytest.approx(probe2, rel=1e-6)
        assert {p.dtype for p in trainer.get_params().values()} == {np.dtype(np.float32)}
        assert trainer.predict(x).dtype == np.float32
        timed, _ = build(dtype="float32")
        stepped, _ = build(dtype="float32")
        times = timed.time_steps([(x, y), (x2, y2)], 3)
        assert len(times) == 3 and all(t > 0 for t in times)
        for xb, yb in ((x, y), (x2, y2), (x, y)):
            stepped.train_step(xb, yb)
        for name, value in stepped.get_params().items():
            np.testing.assert_array_equal(timed.get_params()[name], value)

    def test_fast_step_trains_like_train_step_between_other_calls(self, build, batch):
        """fast_step steps Keras's own train function (Adam: its state advances too),
        cycling through its batches; predict, train_step and get_params between steps see
        and continue the same training as train_step alone (on JAX: the state the train
        function threads is written back to the model's variables first)."""
        adam = {"name": "adam", "learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.99,
                "epsilon": 1e-7, "amsgrad": False}
        fast, _ = build(optimizer=adam, dtype="float32")
        stepped, _ = build(optimizer=adam, dtype="float32")
        data = [batch(seed=1), batch(n=4, seed=2)]
        data = [(x.astype(np.float32), y.astype(np.float32)) for x, y in data]
        step = fast.fast_step(data)
        for _ in range(3):
            assert step() is None
        for i in range(3):
            stepped.train_step(*data[i % 2])
        np.testing.assert_array_equal(fast.predict(data[0][0]), stepped.predict(data[0][0]))
        step()  # data[1]
        stepped.train_step(*data[1])
        assert fast.train_step(*data[0]) == stepped.train_step(*data[0])
        step()  # data[0]: the cycle goes on
        stepped.train_step(*data[0])
        fresh = fast.fast_step(data[1:])
        fresh()
        stepped.train_step(*data[1])
        for name, value in stepped.get_params().items():
            np.testing.assert_array_equal(fast.get_params()[name], value, err_msg=name)
        with pytest.raises(ValueError, match="Received: none"):
            fast.fast_step([])

    def test_sgd_step_matches_numpy_in_float32(self, build, batch):
        """One Dense layer, mse: the gradient 2/(nm) x.T r and p - lr g, float32-close."""
        trainer, params = build([{"units": 2}], dtype="float32")
        x, y = batch()
        residual = x @ params["dense_0/kernel"] + params["dense_0/bias"] - y
        loss, grads = trainer.loss_and_grads(x, y)
        assert loss == pytest.approx(np.mean(residual ** 2), rel=1e-6)
        kernel_grad = 2.0 / residual.size * x.T @ residual
        np.testing.assert_allclose(grads["dense_0/kernel"], kernel_grad, rtol=1e-5, atol=1e-6)
        trainer.train_step(x, y)
        np.testing.assert_allclose(trainer.get_params()["dense_0/kernel"],
                                   params["dense_0/kernel"] - 0.1 * kernel_grad, rtol=1e-5,
                                   atol=1e-6)

    def test_python_float_constants_stay_float64(self, backend):
        """Unlike Keras on TensorFlow (the keras-float32-* entries), ops.cast of a Python
        float, the L2 factor, leaky_relu's slope and gelu's constants are exact here: each
        matches its formula with the exact constant, not with the float32-rounded one."""
        import keras

        z = np.linspace(-4.0, 4.0, 41)
        t = keras.ops.convert_to_tensor(z, "float64")
        assert float(keras.ops.cast(0.1, "float64")) == 0.1 != float(np.float32(0.1))
        assert float(keras.regularizers.L2(0.01)(t)) == pytest.approx(
            0.01 * np.sum(z * z), rel=1e-15)
        erfc = np.vectorize(math.erfc)
        formulas = {  # activation -> (keras call, formula of its constant c, c)
            "leaky_relu": (lambda: keras.activations.leaky_relu(t, negative_slope=0.1),
                           lambda c: np.where(z > 0, z, c * z), 0.1),
            "gelu": (lambda: keras.activations.gelu(t, approximate=False),
                     lambda c: 0.5 * z * erfc(-z * c), 1 / math.sqrt(2.0)),
            "gelu_tanh": (lambda: keras.activations.gelu(t, approximate=True),
                          lambda c: 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (
                              z + c * z ** 3))), 0.044715),
        }
        for name, (call, formula, c) in formulas.items():
            got = keras.ops.convert_to_numpy(call())
            assert rel(got, formula(c)) < 1e-15, name
            assert rel(got, formula(float(np.float32(c)))) > 1e-10, name

    def test_sgd_momentum_keeps_keras_velocity_with_exact_momentum(self, backend):
        """keras-sgd-momentum on this Keras backend: v = mu v - lr g, p += v, with mu
        exact in float64 (no keras-float32-sgd-momentum)."""
        import keras

        keras.config.set_floatx("float64")  # the learning rate's variable: exact 0.1
        try:
            opt = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=False)
            p = keras.Variable(np.array([1.0, -2.0]), dtype="float64")
            v, want = np.zeros(2), np.array([1.0, -2.0])
            for g in (np.array([0.3, 0.7]), np.array([-0.2, 0.5])):
                opt.apply([keras.ops.convert_to_tensor(g, "float64")], [p])
                v = 0.9 * v - 0.1 * g
                want = want + v
        finally:
            keras.config.set_floatx("float32")
        got = keras.ops.convert_to_numpy(p.value)
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(opt.momentums[0].value), v,
                                   rtol=1e-14, atol=0)
        mu32 = float(np.float32(0.9))  # what keras-float32-sgd-momentum would give
        assert rel(got, want + 0.1 * (0.9 - mu32) * np.array([0.3, 0.7])) > 1e-12
