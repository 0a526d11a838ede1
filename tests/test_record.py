"""The lockstep record: which steps it keeps, its shards as the worker writes them, reading
it back one step at a time, in both formats the suite has written, and damage named."""

from __future__ import annotations

import json

import numpy as np
import pytest

import suite
from suite import record, rundir
from suite.compare.plan import Options, plan_record
from suite.errors import UserError
from suite.record_policy import Policy, fit, parse_policy, parse_size
from suite.spec import load

TENSORS = ["dense_0/kernel", "dense_0/bias"]


def step_arrays(step: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(step)
    grads = {"dense_0/kernel": rng.normal(size=(30, 40)), "dense_0/bias": rng.normal(size=40)}
    params = {name: value * 2 for name, value in grads.items()}
    return grads, params


@pytest.mark.parametrize("policy, total, expected", [
    (Policy(), 5, [0, 1, 2, 3, 4]),
    (Policy(3, 4), 14, [0, 1, 2, 3, 7, 11, 13]),
    (Policy(0, 5), 11, [0, 5, 10]),
    (Policy(10, 2), 4, [0, 1, 2, 3]),
])
def test_policy_keeps_the_first_steps_every_kth_and_the_last(policy, total, expected):
    assert policy.steps(total) == expected
    assert [s for s in range(total) if policy.records(s, total)] == expected


def test_policy_text_round_trips_and_bad_text_is_one_line():
    assert parse_policy("all") == Policy() and parse_policy("auto") is None
    assert parse_policy("first=100,every=10") == Policy(100, 10)
    assert parse_policy(" every=7 ") == Policy(0, 7)
    assert parse_policy(Policy(20, 3).to_text()) == Policy(20, 3)
    for bad in ("some", "first=ten", "every=0", "first=3,step=2"):
        with pytest.raises(UserError, match="expected all, auto or first=N,every=K"):
            parse_policy(bad)
    assert parse_size("1GB") == 1 << 30 and parse_size("500MB") == 500 << 20
    assert parse_size("1.5g") == int(1.5 * (1 << 30)) and parse_size(64) == 64 << 20
    with pytest.raises(UserError, match="expected a size such as 500MB"):
        parse_size("lots")


@pytest.mark.parametrize("total, step_bytes, budget", [
    (469, 5 * 5_357_648, 1 << 30),  # 784-512-512-10, float32, five runs
    (10, 1000, 1 << 30), (1000, 1000, 20_000), (100_000, 7_000, 50 << 20)])
def test_fit_records_every_step_that_fits_and_stays_within_the_budget(total, step_bytes,
                                                                     budget):
    policy = fit(total, step_bytes, budget)
    kept = policy.steps(total)
    assert len(kept) * step_bytes <= budget
    assert kept[0] == 0 and kept[-1] == total - 1
    if total * step_bytes <= budget:
        assert policy == Policy()
    else:  # it uses most of the budget, not a sliver of it
        assert len(kept) * step_bytes > budget / 3


def test_plan_refuses_a_record_over_its_budget_and_fits_auto():
    spec = load("digits-mlp")
    with pytest.raises(UserError, match=r"over the budget of 1\.0 MB.*--record-budget"):
        plan_record(spec, 4, 2000, Options(record="all", record_budget="1MB"))
    plan = plan_record(spec, 4, 2000, Options(record_budget="1MB"))
    assert plan.estimate <= 1 << 20 and plan.policy.first is not None
    assert "about" in plan.describe() and "for 4 runs" in plan.describe()


def test_writer_writes_shards_as_it_goes_and_reads_back_step_by_step(tmp_path):
    total = 12
    policy = Policy(2, 3)
    writer = record.Writer(tmp_path / "rec", TENSORS, policy, total, shard_bytes=30_000)
    writer.outputs(np.ones((4, 2)))
    for step in range(total):
        if writer.wants(step):
            writer.add(step, *step_arrays(step))
        # NOTE: the worker holds at most one shard's arrays
        assert writer._bytes < 30_000
    writer.close()
    assert len(list((tmp_path / "rec").glob("part-*.npz"))) >= 3
    stored = record.read(tmp_path / "rec")
    assert stored.complete and stored.steps == policy.steps(total) == [0, 1, 2, 5, 8, 11]
    for step in stored.steps:
        grads, params = step_arrays(step)
        for name in TENSORS:
            np.testing.assert_array_equal(stored.grads[f"{step}/{name}"], grads[name])
            np.testing.assert_array_equal(stored.params[f"{step}/{name}"], params[name])
    assert "3/dense_0/bias" not in stored.grads and len(stored.grads) == 12
    np.testing.assert_array_equal(stored.outputs, np.ones((4, 2)))


def test_a_worker_that_dies_keeps_its_finished_shards(tmp_path):
    writer = record.Writer(tmp_path / "rec", TENSORS, Policy(), 10, shard_bytes=30_000)
    for step in range(7):
        writer.add(step, *step_arrays(step))
    # no close(): the process ended here; what is not in a finished shard is lost
    stored = record.read(tmp_path / "rec")
    assert not stored.complete and stored.steps and stored.steps == list(range(len(
        stored.steps)))
    assert stored.grads[f"{stored.steps[-1]}/dense_0/bias"].shape == (40,)


def test_a_truncated_shard_is_named(tmp_path):
    writer = record.Writer(tmp_path / "rec", TENSORS, Policy(), 4, shard_bytes=1)
    for step in range(4):
        writer.add(step, *step_arrays(step))
    writer.close()
    shard = tmp_path / "rec" / "part-00002.npz"
    shard.write_bytes(shard.read_bytes()[:100])
    stored = record.read(tmp_path / "rec")
    assert stored.grads["1/dense_0/bias"].shape == (40,)
    with pytest.raises(record.DamagedRecord, match=r"part-00002\.npz: cannot read"):
        stored.grads["2/dense_0/bias"]


def test_a_shard_holds_a_few_stacked_arrays_and_format_1_shards_still_read(tmp_path):
    writer = record.Writer(tmp_path / "new", TENSORS, Policy(), 5)
    for step in range(5):
        writer.add(step, *step_arrays(step))
    writer.close()
    with np.load(tmp_path / "new" / "part-00000.npz") as shard:
        assert sorted(shard.files) == sorted(["steps", *(f"{kind}/{t}" for kind in
                                                         ("grads", "params") for t in TENSORS)])
        assert shard["grads/dense_0/kernel"].shape == (5, 30, 40)
    # format 1, as the suite wrote it before: one member a step and tensor
    old = tmp_path / "old"
    old.mkdir()
    arrays = {}
    for step in range(5):
        grads, params = step_arrays(step)
        arrays.update({f"grads/{step}/{t}": grads[t] for t in TENSORS})
        arrays.update({f"params/{step}/{t}": params[t] for t in TENSORS})
    np.savez(old / "part-00000.npz", **arrays)
    (old / record.INDEX).write_text(json.dumps({
        "format": 1, "tensors": TENSORS, "policy": Policy().to_dict(), "steps_planned": 5,
        "complete": True, "shards": [{"file": "part-00000.npz", "steps": list(range(5))}]}))
    new_record, old_record = record.read(tmp_path / "new"), record.read(old)
    for kind in ("grads", "params"):
        a, b = getattr(new_record, kind), getattr(old_record, kind)
        assert list(a) == list(b) and len(a) == 10
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_a_step_the_index_promises_but_its_shard_lacks_is_named(tmp_path):
    writer = record.Writer(tmp_path / "rec", TENSORS, Policy(), 3)
    for step in range(3):
        writer.add(step, *step_arrays(step))
    writer.close()
    index = json.loads((tmp_path / "rec" / record.INDEX).read_text())
    index["shards"][0]["steps"].append(7)
    (tmp_path / "rec" / record.INDEX).write_text(json.dumps(index))
    stored = record.read(tmp_path / "rec")
    with pytest.raises(record.DamagedRecord, match=r"part-00000\.npz: step 7 is not in"):
        stored.grads["7/dense_0/bias"]


def test_the_python_api_reads_both_formats(tmp_path):
    from report_fixture import build_run

    new = suite.Run(build_run(tmp_path / "new"))
    old = suite.Run(build_run(tmp_path / "old", legacy=True))
    assert (old.path / "grads" / "torch.npz").exists() and not (old.path / "record").exists()
    assert (new.path / "record" / "torch" / "record.json").exists()
    for kind in ("grads", "params"):
        a, b = new.arrays(kind, "torch"), old.arrays(kind, "torch")
        assert sorted(a) == sorted(b) and len(a) > 0
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(new.arrays("outputs", "torch")["outputs"],
                                  old.arrays("outputs", "torch")["outputs"])
    assert new.summary.equals(old.summary)


def test_a_damaged_record_is_that_backends_error_and_the_report_is_written(tmp_path):
    from report_fixture import build_run

    from suite.compare import session

    run_dir = build_run(tmp_path)
    shards = sorted((run_dir / "record" / "torch").glob("part-*.npz"))
    shards[1].write_bytes(shards[1].read_bytes()[:64])  # truncated, as by a full disk
    (run_dir / "record" / "keras" / "record.json").unlink()
    session.rerender(run_dir)
    run = suite.Run(run_dir)
    rows = run.summary.set_index(["backend", "check"])
    assert rows.loc[("torch", "trajectory"), "verdict"] == "error"
    assert "record/torch/part-00001.npz: cannot read" in rows.loc[("torch", "trajectory"),
                                                                  "reason"]
    assert set(run.summary[run.summary.backend == "keras"].verdict) == {"error"}
    assert "record/keras/record.json: missing record index" in \
        rows.loc[("keras", "forward"), "reason"]
    assert set(run.summary[run.summary.backend == "myplugin"].verdict) - {"pass"} == {"fail"}
    assert "part-00001.npz" in (run_dir / "report.md").read_text()


def test_a_compare_records_what_its_policy_says_and_the_report_says_which(tmp_path):
    run = suite.compare("regression-mlp", backends=["numpy", "torch"], max_steps=9, epochs=3,
                        timing=False, out=tmp_path / "run", record="first=2,every=3")
    comparison = run.comparison
    assert sorted(comparison[comparison.kind == "grad"].step.unique()) == [0, 1, 2, 5, 8]
    assert sorted(comparison[comparison.kind == "loss"].step.unique()) == list(range(9))
    assert sorted({int(k.split("/")[0]) for k in run.arrays("params", "numpy")}) == \
        [0, 1, 2, 5, 8]
    info = json.loads((run.path / rundir.RUN_JSON).read_text())
    assert info["record"]["text"] == "first=2,every=3"
    assert info["record"]["recorded_steps"] == 5
    report = (run.path / "report.md").read_text()
    assert "steps 0-1, then every 3rd step from step 2, and the last (5 of 9)" in report
    assert set(run.summary.verdict) == {"pass"}
