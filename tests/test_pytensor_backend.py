"""What is pytensor's own in the pytensor backend; the shared contract is test_backend_contract.py.

The update rules are written as symbolic updates (Theano has no optimizer library), so
they are held to the NumPy reference's published formulas over several float64 steps,
with no ledger entry; the graph is pinned to the run's dtype and compiled once.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import batches, rel, train
from specs import make_spec

from backends.pytensor_backend import MODE, PytensorBackend
from backends.reference.backend import NumpyBackend
from suite import ledger
from suite.ledger import pytensor as pytensor_ledger


@pytest.fixture(scope="module")
def backend(load_backend):
    return load_backend("pytensor")


def reference(spec, params):
    return NumpyBackend().build(spec, params, "float64", "cpu")



def test_load_rejects_a_bad_thread_count():
    with pytest.raises(ValueError, match="Received: threads=0"):
        PytensorBackend().load(0)


def test_build_rejects_a_device_it_does_not_run(backend):
    spec = make_spec()
    from suite.initializers import initial_params

    with pytest.raises(ValueError, match="expected device cpu. Received: 'cuda'"):
        backend.build(spec, initial_params(spec), "float64", "cuda")


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_variable_of_the_compiled_step_is_in_the_run_dtype(build, batch, dtype):
    """Adam (step count, bias corrections, moments), L2 and gelu constants: no float of
    the other width anywhere in the compiled graph, the shared state or the results."""
    layers = [{"units": 4, "activation": "gelu", "kernel_regularizer": {"l2": 0.01}},
              {"units": 2}]
    trainer, _ = build(layers=layers, optimizer={"name": "adam", "learning_rate": 0.01,
                                                 "amsgrad": True}, dtype=dtype)
    x, y = (a.astype(dtype) for a in batch())
    trainer.train_step(x, y)
    loss, grads = trainer.loss_and_grads(x, y)
    for key in ("train", "loss_and_grads"):
        graph = trainer._compiled[key].maker.fgraph
        floats = {v.type.dtype for v in graph.variables
                  if str(getattr(v.type, "dtype", "")).startswith("float")}
        assert floats == {dtype}, key
    state = trainer.shared + trainer.optimizer.state
    assert {var.get_value(borrow=True).dtype.name for var in state} == {dtype}
    assert {g.dtype.name for g in grads.values()} == {dtype}
    assert {a.dtype.name for a in trainer.get_params().values()} == {dtype}


# ---------------------------------------------------------------------------- compiled once


def test_the_train_function_is_compiled_once_for_every_batch_size(build, batch):
    """One compiled function, reused by train_step (any batch size) and time_steps."""
    trainer, _ = build()
    x, y = batch()
    trainer.train_step(x, y)
    step = trainer._compiled["train"]
    trainer.train_step(*batch(n=9, seed=1))
    trainer.time_steps([batch(n=5)], 3)
    assert trainer._compiled["train"] is step
    assert step.trust_input is False  # time_steps restores pytensor's input checks
    assert set(trainer._compiled) == {"train"}  # the other functions compile on first use


def test_fast_step_compiles_on_its_first_call_and_trusts_inputs_only_inside_it(build, batch):
    """The first call compiles train_step's function (so the first timing includes it);
    input checks are off only while a step runs, so train_step still checks its inputs."""
    trainer, _ = build(dtype="float32")
    step = trainer.fast_step([batch(), batch(seed=1)])
    assert trainer._compiled == {}
    step()
    train = trainer._compiled["train"]
    assert train.trust_input is False
    step()
    assert trainer._compiled["train"] is train and train.trust_input is False
    x, y = batch()
    with pytest.raises(TypeError, match="loss of precision"):  # float64 into a float32 graph
        train(x, y.astype(np.float32))


def test_functions_are_compiled_by_numba_pytensors_default(backend, build, batch):
    """MODE is PyTensor 3's default linker (numba), the fast one without a linked BLAS;
    runtime_settings says so."""
    from pytensor.link.numba.linker import NumbaLinker

    trainer, _ = build()
    trainer.train_step(*batch())
    assert isinstance(trainer._compiled["train"].maker.linker, NumbaLinker)
    settings = backend.runtime_settings()
    assert settings["pytensor.mode"] == "NUMBA"
    assert settings["pytensor.config.openmp"] is False


def test_time_steps_trains_with_the_same_compiled_step(build, batch):
    """n timed steps leave the parameters where n train_step calls do."""
    data = batches(batch, 2)
    timed, _ = build(optimizer={"name": "adam", "learning_rate": 0.01})
    stepped, _ = build(optimizer={"name": "adam", "learning_rate": 0.01})
    times = timed.time_steps(data, 5)
    assert len(times) == 5 and all(t > 0 for t in times)
    for i in range(5):
        stepped.train_step(*data[i % 2])
    got, want = timed.get_params(), stepped.get_params()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


# ---------------------------------------------------------------------------- update rules


def test_optimizer_follows_the_reference(build, batch, optimizer_case):
    """Every hyperparameter away from its default; parameters after a few float64 steps
    agree with the reference's published formula (no ledger entry: the rule is ours)."""
    name, hp = optimizer_case
    trainer, params = build(optimizer={"name": name, **hp})
    spec = make_spec(optimizer={"name": name, **hp})
    assert ledger.conventions_for(spec, "pytensor") == {}
    want = train(reference(spec, params), batches(batch))
    assert rel(train(trainer, batches(batch)), want) < 1e-13


def test_adamw_decay_is_multiplied_by_the_learning_rate(build, batch):
    """One step: p - lr*wd*p - lr*m_hat/(sqrt(v_hat)+eps), with m_hat = g, v_hat = g^2."""
    hp = {"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.5, "epsilon": 1e-7}
    trainer, params = build(optimizer=hp)
    x, y = batch()
    _, grads = trainer.loss_and_grads(x, y)
    trainer.train_step(x, y)
    got = trainer.get_params()
    for key, g in grads.items():
        step = 0.01 * g / (np.abs(g) + 1e-7)
        np.testing.assert_allclose(got[key], params[key] - 0.01 * 0.5 * params[key] - step,
                                   rtol=1e-13, atol=1e-16, err_msg=key)


# ---------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("name, slope", [("relu", 0.0), ("leaky_relu", 0.3)])
def test_derivative_at_an_exact_zero_is_the_references(backend, batch, name, slope):
    """Zero first-layer weights make every hidden pre-activation exactly 0: relu'(0) = 0
    and leaky_relu'(0) = negative_slope, as the reference takes them (the switch on z > 0;
    pt.maximum(z, 0) would pass the gradient through at 0)."""
    act = {"name": name, "negative_slope": slope} if slope else name
    spec = make_spec(layers=[{"units": 4, "activation": act}, {"units": 2}])
    from suite.initializers import initial_params

    params = initial_params(spec)
    params["dense_0/kernel"][:] = 0.0
    params["dense_0/bias"][:] = 0.0
    x, y = batch()
    _, got = backend.build(spec, params, "float64", "cpu").loss_and_grads(x, y)
    _, want = reference(spec, params).loss_and_grads(x, y)
    assert rel(got, want) < 1e-14
    assert (np.abs(got["dense_0/kernel"]).max() > 0) == (slope > 0)


def test_maximum_passes_the_gradient_through_at_a_tie(backend):
    """Why relu is a switch: pytensor's Maximum sends the gradient to x where x == y."""
    import pytensor
    import pytensor.tensor as pt

    z = pt.vector("z", dtype="float64")
    grad = pytensor.function([z], pytensor.grad(pt.maximum(z, 0.0).sum(), z), mode=MODE)
    np.testing.assert_array_equal(grad(np.array([-1.0, 0.0, 1.0])), [0.0, 1.0, 1.0])


def test_softplus_is_log1p_exp_to_rounding(build):
    """pytensor's piecewise Softplus (thresholds -37, 18, 33.3) against log(1 + exp(z))."""
    import pytensor
    import pytensor.tensor as pt

    z = np.concatenate([np.linspace(-60, 60, 2401), [-37.0, 18.0, 33.3]])
    v = pt.vector("z", dtype="float64")
    got = pytensor.function([v], pt.softplus(v), mode=MODE)(z)
    want = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=0)


def test_the_pytensor_ledger_is_empty_and_nothing_applies():
    """No native formula departs from the reference (see suite/ledger/pytensor.py)."""
    assert pytensor_ledger.ENTRIES == ()
    assert not any("pytensor" in entry.backends for entry in ledger.ENTRIES)


# ---------------------------------------------------------------------------- copies


def test_returned_arrays_are_copies(build, batch):
    """get_params, loss_and_grads and predict return arrays no later step changes."""
    trainer, params = build()
    x, y = batch()
    got, (_, grads), out = trainer.get_params(), trainer.loss_and_grads(x, y), trainer.predict(x)
    saved = {k: v.copy() for k, v in grads.items()}, out.copy()
    for _ in range(3):
        trainer.train_step(x, y)
        trainer.loss_and_grads(*batch(seed=1))
        trainer.predict(batch(seed=2)[0])
    for name in params:
        np.testing.assert_array_equal(got[name], params[name])
        np.testing.assert_array_equal(grads[name], saved[0][name])
    np.testing.assert_array_equal(out, saved[1])
