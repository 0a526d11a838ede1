"""The reference's fast path: the trainer's invariants and the same numbers as the formulas.

The reference reuses its arrays from step to step (layer workspaces, one flat array of
parameters and one of gradients, in-place activations, a fused softmax cross-entropy).
These tests pin what must not change with that: loss_and_grads, get_params, predict and
forward hand out fresh arrays; float32 stays float32 and float64 float64; fast_step
trains exactly like train_step; every fast form gives the numbers of its pure formula;
and a step allocates nothing the size of the parameters.
"""

from __future__ import annotations

import itertools
import sys
import tracemalloc
from functools import partial

import numpy as np
import pytest
import specs

from backends.reference import activations, losses
from backends.reference.backend import NumpyBackend
from backends.reference.model import FEATURE_MAJOR_ROWS, feature_major

# Input 5 -> 7 relu -> 6 relu -> 3 softmax, sparse cross-entropy, SGD(0.1, momentum 0.9),
# float64 unless told
make_spec = partial(specs.make_spec, sizes=(5, 7, 6, 3), hidden="relu",
                    loss="sparse_categorical_crossentropy",
                    optimizer={"name": "sgd", "learning_rate": 0.1, "momentum": 0.9},
                    name="fast")


def params_of(spec, seed=0):
    rng = np.random.default_rng(seed)
    return {name: value for i, (fan_in, fan_out) in enumerate(zip(spec.sizes[:-1],
                                                                   spec.sizes[1:], strict=True))
            for name, value in ((f"dense_{i}/kernel", rng.standard_normal((fan_in, fan_out))
                                 / np.sqrt(fan_in)),
                                (f"dense_{i}/bias", rng.standard_normal(fan_out) * 0.1))}


def batches_of(spec, n=4, batch=8, seed=1, dtype="float64"):
    rng = np.random.default_rng(seed)
    units = spec.sizes[-1]
    out = []
    for _ in range(n):
        x = rng.standard_normal((batch, spec.input_dim)).astype(dtype)
        y = (rng.integers(0, units, batch) if spec.loss.name.startswith("sparse")
             else rng.standard_normal((batch, units)).astype(dtype))
        out.append((x, y))
    return out


def build(spec, dtype="float64", conventions=None):
    return NumpyBackend(conventions).build(spec, params_of(spec), dtype, "cpu")


def arrays_of(trainer):
    """Every array the trainer's model and optimizer hold (workspaces, caches, state)."""
    found = [trainer.model.flat_params, trainer.model.flat_grads]
    for layer in trainer.model.layers:
        found += [value for value in vars(layer).values() if isinstance(value, np.ndarray)]
    found += [a for slots in trainer.optimizer.state.values() for a in slots.values()]
    return found


def test_loss_and_grads_are_fresh_arrays_that_steps_leave_alone():
    spec = make_spec()
    trainer = build(spec)
    (x0, y0), (x1, y1) = batches_of(spec, 2)
    _, first = trainer.loss_and_grads(x0, y0)
    kept = {name: grad.copy() for name, grad in first.items()}
    trainer.train_step(x0, y0)
    _, second = trainer.loss_and_grads(x1, y1)
    trainer.train_step(x1, y1)
    for name, grad in first.items():
        np.testing.assert_array_equal(grad, kept[name])  # nothing wrote into them
        assert grad.flags.owndata and grad.flags.writeable
        assert not np.shares_memory(grad, second[name])
        assert not any(np.shares_memory(grad, a) for a in arrays_of(trainer)), name
    params = trainer.get_params()
    assert not any(np.shares_memory(p, a) for p in params.values() for a in arrays_of(trainer))


def test_predict_and_forward_are_fresh_arrays():
    """Outputs do not live in the workspaces that the next call overwrites."""
    for output, loss in (("softmax", "sparse_categorical_crossentropy"), ("linear", "mse"),
                         ("tanh", "mse")):
        spec = make_spec(output=output, loss=loss)
        trainer = build(spec)
        (x0, _), (x1, y1) = batches_of(spec, 2)
        first, logits = trainer.predict(x0), trainer.model.forward(x0)
        kept, kept_logits = first.copy(), logits.copy()
        trainer.predict(x1)
        trainer.train_step(x1, y1)
        np.testing.assert_array_equal(first, kept)
        np.testing.assert_array_equal(logits, kept_logits)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid", "gelu"])
def test_a_step_keeps_the_dtype_everywhere(dtype, hidden):
    """No silent upcast (or downcast) in any array the model or optimizer holds."""
    spec = make_spec(hidden=hidden, dtype=dtype, l2=0.01,
                     optimizer={"name": "adam", "learning_rate": 0.01})
    trainer = build(spec, dtype)
    for x, y in batches_of(spec, 2, dtype=dtype):
        loss = trainer.train_step(x, y)
        assert isinstance(loss, float)
    floats = [a for a in arrays_of(trainer) if a.dtype.kind == "f"]
    assert {a.dtype for a in floats} == {np.dtype(dtype)}
    assert {g.dtype for g in trainer.loss_and_grads(x, y)[1].values()} == {np.dtype(dtype)}


@pytest.mark.parametrize("optimizer", [{"name": "sgd", "learning_rate": 0.1, "momentum": 0.9},
                                       {"name": "adam", "learning_rate": 0.01}])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_step_trains_exactly_like_train_step(optimizer, dtype):
    """The same updates, bit for bit, taking the batches in turn and cycling."""
    spec = make_spec(optimizer=optimizer, dtype=dtype)
    batches = batches_of(spec, 3, dtype=dtype) + [batches_of(spec, 1, batch=5, seed=9)[0]]
    slow, fast = build(spec, dtype), build(spec, dtype)
    step = fast.fast_step(batches)
    for i in range(2 * len(batches) + 1):
        slow.train_step(*batches[i % len(batches)])
        step()
    for name, value in slow.get_params().items():
        np.testing.assert_array_equal(fast.get_params()[name], value, err_msg=name)
    assert len(fast.time_steps(batches, 3)) == 3


def test_fast_step_needs_a_batch():
    trainer = build(make_spec())
    with pytest.raises(ValueError, match="fast_step needs at least one batch"):
        trainer.fast_step([])
    with pytest.raises(ValueError, match="at least one batch"):
        trainer.time_steps([], 3)


IN_PLACE = [name for name, fn in activations.ACTIVATIONS.items()
            if fn.backward_in_place is not None]


def test_in_place_forms_are_where_they_should_be():
    assert set(IN_PLACE) == {"linear", "relu", "sigmoid", "tanh"}
    assert all(activations.ACTIVATIONS[name].forward_in_place is not None
               for name in ("linear", "relu", "tanh"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", IN_PLACE)
def test_in_place_activation_is_the_formula(name, dtype):
    """forward_in_place and backward_in_place give the pure formulas' numbers, kinks,
    zeros and non-finite inputs included (relu: a dead unit's -0.0 equals 0.0)."""
    fn = activations.ACTIVATIONS[name]
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, 9)).astype(dtype) * 4
    z[0, :5] = [0.0, -0.0, np.inf, -np.inf, np.nan]
    delta = rng.standard_normal(z.shape).astype(dtype)
    out = fn.forward(z.copy())
    want = fn.backward(z.copy(), out.copy(), delta.copy())
    if fn.forward_in_place is not None:
        buffer = z.copy()
        got_out = fn.forward_in_place(buffer)
        assert got_out is buffer or name == "linear"
        np.testing.assert_array_equal(got_out, out)
    buffer = delta.copy()
    got = fn.backward_in_place(out.copy(), buffer)
    assert got is buffer and got.dtype == dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sparse_categorical_crossentropy",
                                  "categorical_crossentropy"])
def test_value_and_grad_is_value_and_grad(name, dtype):
    """The fused softmax cross-entropy gives exactly value() and grad(), over many batch
    sizes (the mean's division included), few and many classes, and large logits."""
    loss = losses.get(name)
    rng = np.random.default_rng(3)
    for batch, units in itertools.product((1, 3, 7, 32, 100, 129), (2, 10, 100)):
        z = (rng.standard_normal((batch, units)) * 30).astype(dtype)
        z[0] = -np.abs(z[0])
        z[0, :2] = [-0.0, 0.0]  # a row whose maximum is a tie of two zeros
        y = (rng.integers(0, units, batch) if name.startswith("sparse")
             else rng.dirichlet(np.ones(units), batch).astype(dtype))
        value, grad = loss.value_and_grad(z.copy(), y)
        assert value == loss.value(z.copy(), y) and isinstance(value, float)
        np.testing.assert_array_equal(grad, loss.grad(z.copy(), y))
        assert grad.dtype == dtype


def test_a_step_allocates_nothing_the_size_of_a_kernel():
    """After the first step, a training step allocates only small temporaries (relu's
    mask, the loss's rows): no gradient, no product lr * g, no fresh layer output."""
    spec = make_spec(sizes=(64, 256, 256, 10), dtype="float32",
                     optimizer={"name": "sgd", "learning_rate": 0.01, "momentum": 0.9})
    trainer = build(spec, "float32")
    step = trainer.fast_step(batches_of(spec, 2, batch=16, dtype="float32"))
    step()
    tracemalloc.start()
    try:
        step()
        step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    kernel = 64 * 256 * 4  # the first (and smallest hidden) kernel's bytes
    assert peak < kernel / 2, f"a step allocated {peak} bytes at its peak"


@pytest.mark.parametrize("batch", [16, 128, 129])
def test_wide_hidden_layers_are_feature_major_up_to_128_rows_with_the_same_numbers(batch):
    """Batches of up to FEATURE_MAJOR_ROWS rows get Fortran-order workspaces in wide hidden
    layers (the logits stay row-major); a row-major model gives the same loss and
    gradients to rounding."""
    spec = make_spec(sizes=(20, 256, 256, 5), dtype="float32")
    trainer, row_major = build(spec, "float32"), build(spec, "float32")
    for dense in row_major.model.dense:
        dense.feature_major_rows = 0
    x, y = batches_of(spec, 1, batch=batch, dtype="float32")[0]
    loss, grads = trainer.loss_and_grads(x, y)
    want_loss, want = row_major.loss_and_grads(x, y)
    *hidden, logits = trainer.model.dense
    assert all(dense._z.flags.f_contiguous == (batch <= FEATURE_MAJOR_ROWS) for dense in hidden)
    assert logits._z.flags.c_contiguous
    assert all(dense._z.flags.c_contiguous for dense in row_major.model.dense)
    assert loss == pytest.approx(want_loss, rel=1e-6)
    for name, value in want.items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(("fan_in", "fan_out", "feeds_hidden", "expected"), [
    (784, 512, False, True), (64, 256, True, True), (64, 256, False, False),
    (256, 64, True, False), (64, 64, True, False),
])
def test_feature_major_only_for_wide_layers(fan_in, fan_out, feeds_hidden, expected):
    assert feature_major(fan_in, fan_out, feeds_hidden) is expected
    sizes = (fan_in, fan_out, fan_out, 3) if feeds_hidden else (fan_in, fan_out, 3)
    model = build(make_spec(sizes=sizes, dtype="float32"), "float32").model
    assert (model.dense[0].feature_major_rows > 0) is expected


def test_runtime_settings_name_the_blas():
    backend = NumpyBackend()
    backend.load(2)
    settings = backend.runtime_settings()
    assert isinstance(settings["numpy.blas"], str) and settings["numpy.blas"]
    if not (sys.platform.startswith("linux") and "openblas" in settings["numpy.blas"]):
        pytest.skip("OpenBLAS's own account is read from NumPy's OpenBLAS, on Linux")
    assert isinstance(settings["numpy.blas_config"], str) and settings["numpy.blas_config"]
    assert isinstance(settings["numpy.blas_threads"], int) and settings["numpy.blas_threads"] >= 1
