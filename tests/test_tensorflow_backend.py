"""What is TensorFlow's own in the tensorflow backend; the shared contract is
test_backend_contract.py.

The optimizers are TensorFlow's native training kernels (tf.raw_ops.ResourceApply*):
each is checked against the NumPy reference over several float64 steps, under the
conventions the ledger gives this backend, and every ledger entry of suite/ledger/
tensorflow.py is shown real here: the backend matches the entry's variant of the
reference to rounding and departs from the published formula.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import OPTIMIZER_SPECS, THREADS, make_batch
from specs import make_spec

from backends.reference.backend import NumpyBackend
from suite import ledger
from suite.initializers import initial_params
from suite.ledger import tensorflow as tensorflow_ledger


@pytest.fixture(scope="module")
def backend(load_backend):
    return load_backend("tensorflow")


def _f32(value: float) -> float:
    return float(np.float32(value))


def _flat(tensors) -> np.ndarray:
    if isinstance(tensors, dict):
        return np.concatenate([tensors[k].ravel() for k in sorted(tensors)])
    return np.ravel(tensors)


def rel(a, b) -> float:
    """Relative L2 difference of two arrays or two dicts of arrays (all at once)."""
    a, b = _flat(a), _flat(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def run(trainer, steps: int = 3):
    """Outputs and gradients on the first batch, then the parameters after ``steps``."""
    x, y = make_batch(seed=0)
    outputs, (_, grads) = trainer.predict(x), trainer.loss_and_grads(x, y)
    losses = [trainer.train_step(*make_batch(seed=s)) for s in range(steps)]
    return outputs, grads, trainer.get_params(), np.array(losses)


def against_reference(backend, spec, conventions, steps: int = 3, reference_spec=None
                      ) -> list[float]:
    """Relative differences (outputs, grads, params, losses) to the reference under
    ``conventions`` (running ``reference_spec`` if given), from the same parameters."""
    params = initial_params(spec)
    got = run(backend.build(spec, params, "float64", "cpu"), steps)
    reference = NumpyBackend(conventions).build(reference_spec or spec, params, "float64", "cpu")
    want = run(reference, steps)
    return [rel(a, b) for a, b in zip(got, want, strict=True)]


# ---------------------------------------------------------------------------- no Keras


def test_runs_where_keras_cannot_be_imported():
    """Load, build, train, predict and time in a process where ``import keras`` fails.

    NOTE: ``import tensorflow`` itself imports the keras package when it is installed (its
    lazy tf.keras loader and an eager import of keras.src.optimizers, both in
    tensorflow/__init__.py, which tolerates an ImportError there); so this blocks keras
    and tf_keras first: any use of Keras by the backend would fail here.
    """
    code = textwrap.dedent(f"""
        import sys
        sys.modules["keras"] = sys.modules["tf_keras"] = None  # import keras raises
        import numpy as np
        from backends.tensorflow_backend import TensorflowBackend
        from suite.initializers import initial_params
        from suite.spec import from_dict
        assert "tensorflow" not in sys.modules  # listing backends imports no framework
        backend = TensorflowBackend()
        backend.load({THREADS})
        spec = from_dict({{"name": "t", "input_dim": 3, "layers": [{{"units": 2}}],
                          "loss": "mse", "optimizer": "adam"}})
        trainer = backend.build(spec, initial_params(spec), "float32", "cpu")
        batch = np.ones((4, 3)), np.zeros((4, 2))
        trainer.train_step(*batch)
        trainer.time_steps([batch], 2)
        print(trainer.predict(batch[0]).dtype, sys.modules["keras"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["float32", "None"]


# ---------------------------------------------------------------------------- optimizers


def test_optimizers_match_the_reference_under_the_ledger(backend, optimizer_case):
    """Each native kernel, hyperparameters off their defaults, equals the reference with the
    ledger's conventions for this backend over three float64 steps."""
    name, hp = optimizer_case
    spec = make_spec(optimizer={"name": name, **hp})
    errors = against_reference(backend, spec, ledger.conventions_for(spec, "tensorflow"))
    assert max(errors) < 1e-14, errors


@pytest.mark.parametrize("name, changes", [
    ("sgd", {"nesterov": False}), ("sgd", {"momentum": 0.0}), ("adam", {"amsgrad": False}),
    ("adamw", {"amsgrad": True}), ("rmsprop", {"centered": False}),
    ("rmsprop", {"centered": False, "momentum": 0.0})])
def test_optimizer_variants_match_the_reference(backend, name, changes):
    """The other kernels of each optimizer (plain SGD, Adam without amsgrad, ...)."""
    spec = make_spec(optimizer={"name": name, **OPTIMIZER_SPECS[name], **changes})
    errors = against_reference(backend, spec, ledger.conventions_for(spec, "tensorflow"))
    assert max(errors) < 1e-14, errors


def test_hyperparameters_are_tensors_of_the_run_dtype(backend, optimizer_case):
    """Every hyperparameter reaches the kernels as the spec's value in the run's dtype."""
    name, hp = optimizer_case
    spec = make_spec(optimizer={"name": name, **hp})
    trainer = backend.build(spec, initial_params(spec), "float64", "cpu")
    opt = trainer.optimizer
    for key, value in hp.items():
        if isinstance(value, bool):
            continue
        if key == "weight_decay":
            tensor, value = opt.lr_wd, hp["learning_rate"] * value
        elif key == "initial_accumulator_value":
            tensor = opt.accums[0].value()
        else:
            tensor = getattr(opt, {"learning_rate": "lr"}.get(key, key))
        assert tensor.dtype == "float64", key
        np.testing.assert_array_equal(tensor.numpy(), value, err_msg=key)


@pytest.mark.parametrize("name, hyper, rounded", [
    ("sgd", {"learning_rate": 0.1, "momentum": 0.9}, "momentum"),
    ("adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.1, "epsilon": 1e-7},
     "initial_accumulator_value"),
    ("adamw", {"learning_rate": 0.01, "weight_decay": 0.01, "beta_1": 0.5, "beta_2": 0.75,
               "epsilon": 1e-7, "amsgrad": False}, "weight_decay"),
])
def test_no_optimizer_constant_is_rounded_to_float32(backend, name, hyper, rounded):
    """Unlike Keras on TensorFlow, the kernels get exact float64 hyperparameters: the
    backend matches the reference with the exact value, not with its float32 rounding."""
    spec = make_spec(layers=[{"units": 2}], optimizer={"name": name, **hyper})
    conventions = ledger.conventions_for(spec, "tensorflow")
    exact = against_reference(backend, spec, conventions)[2]  # the parameters after 3 steps
    spec32 = make_spec(layers=[{"units": 2}], optimizer={"name": name, **hyper,
                                                         rounded: _f32(hyper[rounded])})
    rounded = against_reference(backend, spec, conventions, reference_spec=spec32)[2]
    assert exact < 1e-15 and rounded > 100 * exact, (exact, rounded)


def test_step_is_traced_once(backend, batch):
    """One compiled tf.function per trainer: train_step and time_steps reuse its trace."""
    spec = make_spec(optimizer={"name": "adam"})
    trainer = backend.build(spec, initial_params(spec), "float64", "cpu")
    trainer.train_step(*batch(seed=1))
    trainer.time_steps([batch(seed=2), batch(n=9, seed=3)], 4)
    trainer.train_step(*batch(n=5, seed=4))
    assert trainer._step.experimental_get_tracing_count() == 1


def test_fast_step_trains_like_train_step(backend, batch):
    """fast_step calls train_step's own trace (its concrete function), cycling through its
    batches: the parameters match train_step's on the same sequence, Adam state included,
    with train_step calls in between."""
    spec = make_spec(optimizer={"name": "adam"})
    params = initial_params(spec)
    fast = backend.build(spec, params, "float64", "cpu")
    stepped = backend.build(spec, params, "float64", "cpu")
    data = [batch(seed=1), batch(n=9, seed=2)]
    step = fast.fast_step(data)
    for _ in range(3):
        assert step() is None
    for i in range(3):
        stepped.train_step(*data[i % 2])
    assert fast.train_step(*data[0]) == pytest.approx(stepped.train_step(*data[0]), rel=1e-15)
    step()  # data[1]: the cycle goes on
    stepped.train_step(*data[1])
    for name, value in stepped.get_params().items():
        np.testing.assert_allclose(fast.get_params()[name], value, rtol=1e-15, err_msg=name)
    assert fast._step.experimental_get_tracing_count() == 1
    with pytest.raises(ValueError, match="Received: none"):
        fast.fast_step([])


def test_graph_ops_are_placed_on_the_trainer_device(backend):
    """Each compiled function pins its ops to the trainer's device when traced, so a call
    (fast_step's, outside any device scope) cannot run them elsewhere."""
    spec = make_spec()
    trainer = backend.build(spec, initial_params(spec), "float64", "cpu")
    graph = trainer._step.get_concrete_function().graph
    math_ops = [op for op in graph.get_operations() if op.type in ("MatMul", "Tanh")]
    assert math_ops and {op.device for op in math_ops} == {"/device:CPU:0"}


def test_runtime_settings_report_threads_and_no_tf32(backend):
    """After load(2): TensorFlow's pools as it reports them, TF32 off. (Both pools are
    pinned only where TensorFlow's runtime had not started yet in this process, and a load
    that finds it started refuses unless the intra-op pool already agrees: so both hold
    THREADS.)"""
    settings = backend.runtime_settings()
    assert settings["tensorflow.intra_op_parallelism_threads"] == THREADS
    assert settings["tensorflow.inter_op_parallelism_threads"] == THREADS
    assert settings["tensorflow.tensor_float_32_execution"] is False


def test_bad_parameter_shape_is_named(backend):
    spec = make_spec()
    params = initial_params(spec)
    params["dense_1/bias"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"dense_1: expected kernel \(4, 2\) and bias "
                                         r"\(2,\)\. Received: \(4, 2\) and \(3,\)"):
        backend.build(spec, params, "float64", "cpu")


# ---------------------------------------------------------------------------- the ledger
# entry id -> a float64 spec where it applies (large epsilons make the optimizer
# differences large; each float32-constant entry uses its activation on the hidden layer).
ENTRY_SPECS = {
    "tensorflow-adam-epsilon": make_spec(optimizer={
        "name": "adam", "learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.9, "epsilon": 1e-3,
        "amsgrad": True}),
    "tensorflow-rmsprop-epsilon": make_spec(optimizer={
        "name": "rmsprop", "learning_rate": 0.01, "rho": 0.8, "momentum": 0.5, "epsilon": 1e-3,
        "centered": True}),
    "tensorflow-float32-leaky-relu": make_spec(
        layers=[{"units": 4, "activation": {"name": "leaky_relu", "negative_slope": 0.3}},
                {"units": 2}]),
    "tensorflow-float32-gelu": make_spec(
        layers=[{"units": 4, "activation": "gelu"}, {"units": 2}]),
    "tensorflow-float32-gelu-tanh": make_spec(
        layers=[{"units": 4, "activation": "gelu_tanh"}, {"units": 2}]),
}

WITH_CONVENTIONS = [entry.id for entry in tensorflow_ledger.ENTRIES if entry.conventions]


def test_every_entry_has_a_case():
    assert set(ENTRY_SPECS) == set(WITH_CONVENTIONS)
    assert all(entry.backends == ("tensorflow",) for entry in tensorflow_ledger.ENTRIES)


@pytest.mark.parametrize("entry_id", WITH_CONVENTIONS)
def test_entry_is_real_in_the_backend(backend, entry_id):
    """The backend equals the entry's variant of the reference to rounding (outputs, step-0
    gradients, parameters and losses over three steps), and not the published formula."""
    entry, spec = ledger.by_id(entry_id), ENTRY_SPECS[entry_id]
    assert entry.applies(spec, "tensorflow")
    variant = against_reference(backend, spec, entry.conventions)
    published = against_reference(backend, spec, {})
    assert max(variant) < 1e-14, variant
    assert max(published) > 1e-11, published


def test_entries_apply_in_float64_only_where_they_round():
    """gelu with Adam: the tf.nn rounding joins the variant in float64 runs only."""
    adam = {"name": "adam"}
    wide = make_spec(layers=[{"units": 4, "activation": "gelu"}, {"units": 2}], optimizer=adam)
    narrow = make_spec(layers=[{"units": 4, "activation": "gelu"}, {"units": 2}],
                       optimizer=adam, dtype="float32")
    assert ledger.conventions_for(wide, "tensorflow") == {
        "adam_epsilon": "keras", "float32_activation_constants": "tensorflow"}
    assert ledger.conventions_for(narrow, "tensorflow") == {"adam_epsilon": "keras"}
    sgd = make_spec(optimizer={"name": "sgd", "momentum": 0.9})
    assert ledger.conventions_for(sgd, "tensorflow") == {}  # torch's momentum form


INV_SQRT2 = 1.0 / math.sqrt(2.0)

# NOTE: in float64, tf.nn rounds a constant of these to float32: leaky_relu's alpha is a
# float32 op attribute; gelu casts 1/sqrt(2) (exact form) and 0.044715 (tanh form) from
# Python floats, which tf.cast makes float32 first (tensorflow/python/ops/nn_ops.py).
ROUNDED_ACTIVATIONS = {
    "leaky_relu": ({"negative_slope": 0.3}, lambda z, r: np.where(z > 0, z, r(0.3) * z)),
    "gelu": ({}, lambda z, r: 0.5 * z * np.vectorize(math.erfc)(-z * r(INV_SQRT2))),
    "gelu_tanh": ({}, lambda z, r: 0.5 * z * (1.0 + np.tanh(
        math.sqrt(2.0 / math.pi) * (z + r(0.044715) * z ** 3)))),
}


@pytest.mark.parametrize("name", sorted(ROUNDED_ACTIVATIONS))
def test_activation_uses_a_float32_constant_in_float64(build, batch, name):
    extra, formula = ROUNDED_ACTIVATIONS[name]
    trainer, params = build([{"units": 4, "activation": {"name": name, **extra}}])
    x, _ = batch()
    out = trainer.predict(x)
    z = x @ params["dense_0/kernel"] + params["dense_0/bias"]
    np.testing.assert_allclose(out, formula(z, _f32), rtol=1e-13, atol=1e-16)
    assert not np.allclose(out, formula(z, float), rtol=1e-12, atol=0)


def test_elu_with_alpha_is_exact_in_float64(build, batch):
    """alpha * expm1(z) below zero, alpha a float64 tensor (tf.nn.elu has no alpha)."""
    trainer, params = build([{"units": 4, "activation": {"name": "elu", "alpha": 0.3}}])
    x, _ = batch()
    z = x @ params["dense_0/kernel"] + params["dense_0/bias"]
    np.testing.assert_allclose(trainer.predict(x), np.where(z > 0, z, 0.3 * np.expm1(z)),
                               rtol=1e-14, atol=1e-17)
