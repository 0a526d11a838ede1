"""What is jax's own in the jax backend; the shared contract is test_backend_contract.py.

optax's optimizers are held to the NumPy reference over several float64 steps, under the
conventions of the jax ledger entries (suite/ledger/jax.py) where optax departs from the
published formula; each entry's difference is shown to be real.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import batches, rel, train
from specs import make_spec

from backends.jax_backend import JaxBackend
from backends.reference.backend import NumpyBackend
from suite import ledger


@pytest.fixture(scope="module")
def backend(load_backend):
    return load_backend("jax")


def reference(spec, params, conventions=None):
    """The NumPy reference trainer under ``conventions``."""
    return NumpyBackend(conventions).build(spec, params, "float64", "cpu")



# ---------------------------------------------------------------------------- load


def test_float64_is_enabled_and_matmuls_are_exact(backend):
    """x64 (float64 arrays stay float64) and the "highest" matmul precision (no TF32)."""
    import jax

    assert jax.config.jax_enable_x64 is True
    assert jax.config.jax_default_matmul_precision == "highest"


def test_load_rejects_a_bad_thread_count():
    with pytest.raises(ValueError, match="Received: threads=0"):
        JaxBackend().load(0)


_POOL = """
import os, sys
import numpy as np
from backends.jax_backend import JaxBackend
backend = JaxBackend()
backend.load(int(sys.argv[1]))
import jax.numpy as jnp
a = jnp.ones((256, 256))
(a @ a).block_until_ready()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(names.count("tf_XLAEigen"), os.environ.get("NPROC"))
print(backend.runtime_settings()["jax.xla_cpu_pool_threads"])
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
@pytest.mark.parametrize("threads", [1, 3])
def test_load_sizes_the_xla_cpu_pool(threads):
    """XLA's CPU intra-op pool has ``threads`` threads (3 > this machine's 2 cores shows it
    follows the request), the NPROC variable used for it is restored afterwards, and
    runtime_settings reports the pool's size."""
    env = {k: v for k, v in os.environ.items() if k != "NPROC"}
    out = subprocess.run([sys.executable, "-c", _POOL, str(threads)], capture_output=True,
                         text=True, env=env, check=True, timeout=120).stdout.split()
    assert out == [str(threads), "None", str(threads)]


def test_runtime_settings_report_nproc_flags_and_precision(backend):
    """Plain JSON values: the NPROC the CPU client read, XLA_FLAGS, "highest" precision."""
    import json

    settings = backend.runtime_settings()
    assert json.loads(json.dumps(settings)) == settings
    assert settings["jax.NPROC"] == 2  # conftest's THREADS
    assert settings["jax.default_matmul_precision"] == "highest"
    assert settings["jax.XLA_FLAGS"] == os.environ.get("XLA_FLAGS", "")
    assert settings["jax.enable_x64"] is True


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameters_state_and_loss_stay_in_the_run_dtype(build, batch, optimizer_case, dtype):
    """Every floating array of the optimizer state, the parameters and the loss."""
    import jax

    name, hp = optimizer_case
    trainer, _ = build(optimizer={"name": name, **hp}, dtype=dtype)
    x, y = (a.astype(dtype) for a in batch())
    trainer.train_step(x, y)
    trainer.train_step(x, y)
    leaves = jax.tree.leaves((trainer.params, trainer.opt_state))
    floats = {str(leaf.dtype) for leaf in leaves if np.issubdtype(leaf.dtype, np.floating)}
    assert floats == {dtype}
    loss, _ = jax.eval_shape(trainer._loss_and_grads, trainer.params, trainer._x(x),
                             trainer._y(y))
    assert loss.dtype == np.dtype(dtype)


# ---------------------------------------------------------------------------- optimizers


def test_optimizer_follows_the_reference_under_its_ledger_entries(build, batch, optimizer_case):
    """Every hyperparameter away from its default; parameters after a few float64 steps."""
    name, hp = optimizer_case
    trainer, params = build(optimizer={"name": name, **hp})
    spec = make_spec(optimizer={"name": name, **hp})
    conventions = ledger.conventions_for(spec, "jax")
    want = train(reference(spec, params, conventions), batches(batch))
    assert rel(train(trainer, batches(batch)), want) < 1e-13


def test_sgd_nesterov_is_torchs_form(build, batch):
    """buf = mu*buf + g; p -= lr*(g + mu*buf), not the Keras velocity form's step."""
    hp = {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True}
    trainer, params = build(optimizer=hp)
    got = train(trainer, batches(batch, 2))
    spec = make_spec(optimizer=hp)
    assert rel(got, train(reference(spec, params), batches(batch, 2))) < 1e-14


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_without_momentum_keeps_no_state(build, batch, nesterov):
    """momentum 0 is optax.sgd(momentum=None): no trace buffers to rewrite every step (with
    or without nesterov), and the same steps as the reference's plain SGD."""
    import jax

    hp = {"name": "sgd", "learning_rate": 0.1, "momentum": 0.0, "nesterov": nesterov}
    trainer, params = build(optimizer=hp)
    assert jax.tree.leaves(trainer.opt_state) == []
    got = train(trainer, batches(batch, 3))
    assert rel(got, train(reference(make_spec(optimizer=hp), params), batches(batch, 3))) < 1e-15
    with_momentum, _ = build(optimizer={**hp, "momentum": 0.5})
    assert len(jax.tree.leaves(with_momentum.opt_state)) == len(params)


def test_adamw_decay_is_multiplied_by_the_learning_rate(build, batch):
    """One step from zero gradients' moments: p - lr*wd*p - lr*m_hat/(sqrt(v_hat)+eps)."""
    hp = {"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.5, "epsilon": 1e-7}
    trainer, params = build(optimizer=hp)
    x, y = batch()
    _, grads = trainer.loss_and_grads(x, y)
    trainer.train_step(x, y)
    got = trainer.get_params()
    for key, g in grads.items():
        # at t = 1, m_hat = g and v_hat = g^2
        step = 0.01 * g / (np.abs(g) + 1e-7)
        np.testing.assert_allclose(got[key], params[key] - 0.01 * 0.5 * params[key] - step,
                                   rtol=1e-13, atol=1e-16, err_msg=key)


# ---------------------------------------------------------------------------- ledger


def test_adagrad_epsilon_inside_the_square_root_is_real(build, batch):
    """jax-adagrad-epsilon: the first step is -lr g / sqrt(g^2 + eps), not -lr g/(|g| + eps);
    the reference with the entry's conventions follows jax over several steps."""
    hp = {"name": "adagrad", "learning_rate": 0.1, "initial_accumulator_value": 0.0,
          "epsilon": 1e-2}
    spec = make_spec(optimizer=hp)
    trainer, params = build(optimizer=hp)
    x, y = batch()
    _, grads = trainer.loss_and_grads(x, y)
    trainer.train_step(x, y)
    got = trainer.get_params()
    for key, g in grads.items():
        np.testing.assert_allclose(got[key] - params[key], -0.1 * g / np.sqrt(g * g + 1e-2),
                                   rtol=1e-12, atol=1e-16, err_msg=key)
    conventions = ledger.by_id("jax-adagrad-epsilon").conventions
    jax_run = train(build(optimizer=hp)[0], batches(batch))
    assert rel(jax_run, train(reference(spec, params, conventions), batches(batch))) < 1e-13
    assert rel(jax_run, train(reference(spec, params), batches(batch))) > 1e-3


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_amsgrad_takes_the_maximum_of_the_corrected_second_moment(build, batch, name):
    """jax-amsgrad-max: optax's AMSGrad follows the entry's convention, not the reference."""
    hp = {"name": name, "learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999,
          "epsilon": 1e-7, "amsgrad": True}
    spec = make_spec(optimizer=hp)
    trainer, params = build(optimizer=hp)
    got = train(trainer, batches(batch))
    conventions = ledger.by_id("jax-amsgrad-max").conventions
    assert rel(got, train(reference(spec, params, conventions), batches(batch))) < 1e-13
    assert rel(got, train(reference(spec, params), batches(batch))) > 1e-3


# jax ledger entry id -> the test above that shows its difference is real
DEMONSTRATED = {
    "jax-adagrad-epsilon": test_adagrad_epsilon_inside_the_square_root_is_real,
    "jax-amsgrad-max": test_amsgrad_takes_the_maximum_of_the_corrected_second_moment,
}


def test_every_jax_entry_concerns_jax_alone_and_is_demonstrated_here():
    entries = [entry for entry in ledger.ENTRIES if "jax" in entry.backends]
    assert all(entry.backends == ("jax",) for entry in entries)
    assert {entry.id for entry in entries if entry.conventions} == set(DEMONSTRATED)


# ---------------------------------------------------------------------------- trainer


def test_returned_arrays_survive_later_steps(build, batch):
    """The step donates its parameter buffers: what get_params, loss_and_grads and predict
    returned earlier keeps its values (copies, not views of device memory)."""
    trainer, params = build()
    x, y = batch()
    got, (_, grads), out = trainer.get_params(), trainer.loss_and_grads(x, y), trainer.predict(x)
    saved = ({k: v.copy() for k, v in got.items()}, {k: v.copy() for k, v in grads.items()},
             out.copy())
    for _ in range(3):
        trainer.train_step(x, y)
    for name in params:
        np.testing.assert_array_equal(got[name], params[name])
        np.testing.assert_array_equal(grads[name], saved[1][name])
    np.testing.assert_array_equal(out, saved[2])
    assert all(a.flags.writeable and a.flags.owndata for a in got.values())


def test_fast_step_runs_train_steps_jitted_step(build, batch):
    """fast_step reuses train_step's trace (no new compile) and leaves the parameters where
    the same number of train_step calls do."""
    data = batches(batch, 2)
    timed, _ = build()
    stepped, _ = build()
    timed.train_step(*data[0])
    stepped.train_step(*data[0])
    traces = timed._step._cache_size()
    step = timed.fast_step(data)
    for _ in range(3):
        assert step() is None
    assert timed._step._cache_size() == traces
    for i in range(3):
        stepped.train_step(*data[i % 2])
    got, want = timed.get_params(), stepped.get_params()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


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


# ---------------------------------------------------------------------------- end to end

HIDDEN = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "gelu", "gelu_tanh"]


@pytest.mark.slow
def test_worker_run_passes_or_is_explained(tmp_path):
    """Every hidden activation, adagrad (a ledger entry), float64, in a worker process:
    every check passes or is the entry's known difference, and the step-0 gradients
    agree with the reference to 1e-13."""
    import suite

    spec = suite.load_spec(suite.spec_from_dict({
        "name": "jax-e2e", "input_dim": 4,
        "layers": [{"units": 6, "activation": a} for a in HIDDEN] + [{"units": 2}],
        "loss": "mse", "optimizer": {"name": "adagrad", "learning_rate": 0.1},
        "training": {"batch_size": 16, "epochs": 1, "max_steps": 5, "dtype": "float64"},
        "data": {"name": "regression", "standardize": True}}))
    run = suite.compare(spec, backends=["numpy", "jax"], timing=False, out=tmp_path / "run")
    rows = run.summary[run.summary.backend == "jax"].set_index("check")
    # the trajectory too: closer to the entry's variant than to the reference by more than
    # the noise, so the entry is named there as well (and the optimizer blamed)
    assert rows.verdict.to_dict() == {"forward": "pass", "loss": "pass", "gradients": "pass",
                                      "update": "known difference",
                                      "trajectory": "known difference"}
    assert rows.ledger["update"] == rows.ledger["trajectory"] == "jax-adagrad-epsilon"
    assert rows.attribution["trajectory"].startswith("optimizer ")
    cmp = run.comparison[run.comparison.backend == "jax"]
    grads = cmp[(cmp.kind == "grad") & (cmp.step == 0)]
    assert len(grads) == 2 * (len(HIDDEN) + 1)
    assert grads.rel_l2_error.max() <= 1e-13
    params = cmp[cmp.kind == "param"]
    assert params.variant_rel_l2_error.max() <= 1e-13
