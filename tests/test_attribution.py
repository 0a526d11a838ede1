"""Measured-noise verdicts and attribution on real runs: planted bugs a few parts in a
million in size are caught and placed (tests/plugins/planted.py), a backend that breaks
the parts' contract or lacks them is never called correct by them (faulty.py), and the
reference's own parts are within the noise."""

from __future__ import annotations

import math

import pytest
from plugged import plugins_on_path

import suite
from suite.compare import attribution
from suite.compare.noise import NOISE_FACTOR
from suite.rundir import SummaryRow

PLANTED = ["planted:GradientScaledBackend", "planted:LearningRateScaledBackend",
           "planted:NoPartsBackend", "faulty:DriftBackend"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    with plugins_on_path():
        yield suite.compare("digits-mlp", backends=PLANTED, max_steps=12, timing=False,
                            out=tmp_path_factory.mktemp("planted") / "run")


def checks(run, backend: str):
    return run.summary[run.summary.backend == backend].set_index("check")


def test_a_gradient_off_by_3e_6_fails_at_the_gradients_naming_the_tensor(planted):
    found = checks(planted, "gradient-scaled")
    assert found.loc["forward", "verdict"] == "pass"
    assert found.loc["loss", "verdict"] == "pass"
    gradients = found.loc["gradients"]
    assert gradients.verdict == "fail" and gradients.step == 0
    assert gradients.tensor.startswith("grad dense_")
    assert "the measured noise" in gradients.reason and "tolerance" in gradients.reason
    # 3e-6 against float32 rounding of about 1e-7: far outside, yet under the old 1e-4
    assert NOISE_FACTOR * gradients.noise < gradients.rel_l2_error < 1e-4
    trajectory = found.loc["trajectory"]
    assert trajectory.verdict == "fail"
    assert trajectory.attribution.startswith("backward dense_")
    assert "the backward" in trajectory.reason and "left first, at step 0" in trajectory.reason


def test_a_learning_rate_off_by_1e_5_fails_at_the_update_naming_the_optimizer(planted):
    found = checks(planted, "learning-rate-scaled")
    assert (found.loc[["forward", "loss", "gradients"], "verdict"] == "pass").all()
    update = found.loc["update"]
    assert update.verdict == "fail"
    assert "the update of dense_" in update.reason and "by sgd (learning_rate=" in update.reason
    trajectory = found.loc["trajectory"]
    assert trajectory.verdict == "fail" and trajectory.attribution.startswith("optimizer ")
    assert "the optimizer (" in trajectory.reason


def test_a_plug_in_without_a_framework_part_gets_no_reproducer_and_is_told_why(planted):
    entry = planted.reproducers["gradient-scaled"]
    assert entry["status"] == "none" and "Backend.repro" in entry["reason"]
    assert not (planted.path / "repro").exists()


def test_without_set_params_the_verdict_stays_and_says_why(planted):
    trajectory = checks(planted, "no-parts").loc["trajectory"]
    assert trajectory.verdict == "fail"
    assert "no attribution: " in trajectory.reason and "set_params" in trajectory.reason
    assert planted.backends["no-parts+parts"].status == "unsupported"


def test_a_train_step_that_departs_from_apply_grads_gets_no_attribution(planted):
    """DriftBackend nudges a bias in train_step alone at step 2: the parts, measured
    through apply_grads, would be within the noise; the contract check says they may not
    speak for it."""
    trajectory = checks(planted, "drift").loc["trajectory"]
    assert trajectory.verdict == "fail"
    assert "no attribution: its apply_grads, fed its own gradients, does not make " \
           "train_step's update" in trajectory.reason
    assert "at step 2" in trajectory.reason


def test_parts_rows_are_in_parts_csv(planted):
    parts = planted.parts
    assert set(parts.part) == {"contract", "forward", "backward", "optimizer"}
    scaled = parts[parts.backend == "gradient-scaled"]
    backward = scaled[scaled.part == "backward"]
    assert not backward[backward.step == 0].within.any()
    # NOTE: relative to the largest a gradient has been: as gradients shrink, a bug that
    # scales them shrinks with them, and may come back within the noise
    assert (~backward.within).mean() > 0.9
    assert scaled[scaled.part.isin(["forward", "optimizer", "contract"])].within.all()


@pytest.fixture(scope="module")
def always(tmp_path_factory):
    return suite.compare("digits-mlp", backends=["torch"], max_steps=12, timing=False,
                         attribution="always", out=tmp_path_factory.mktemp("always") / "run")


def test_torch_alone_in_each_part_is_within_the_noise(always):
    """A real framework's parts run: every part within the noise, its contract kept."""
    assert always.info["attribution"] == "always"
    parts = always.parts
    assert set(parts.part) == {"contract", "forward", "backward", "optimizer"}
    assert parts.within.all()
    assert (parts[parts.part == "contract"].rel_l2_error == 0).all()  # bit for bit
    trajectory = checks(always, "torch").loc["trajectory"]
    assert trajectory.verdict == "pass" and trajectory.attribution == "within noise"


def test_auto_runs_no_parts_for_a_backend_within_the_noise(tmp_path):
    run = suite.compare("digits-mlp", backends=["numpy"], max_steps=3, timing=False,
                        out=tmp_path / "run")
    assert not any(name.endswith("+parts") for name in run.backends)
    assert run.parts.empty


def row(verdict: str, **more) -> SummaryRow:
    return SummaryRow("b", "trajectory", verdict, step=7, tensor="param dense_0/bias",
                      rel_l2_error=1e-5, reason="param dense_0/bias differs", **more)


def test_a_fail_whose_parts_are_all_within_the_noise_is_compounding():
    judged = attribution.apply(row("fail"), attribution.Finding(None, 40), None)
    assert judged.verdict == "pass" and judged.attribution == "compounding"
    assert "outside the noise from step 7" in judged.reason
    assert "all 40 steps" in judged.reason


def test_a_known_difference_keeps_its_word_and_gains_the_part():
    first = attribution.judge("b", [[3, "optimizer", "dense_1/kernel", 1e-3, 1e-7, 1e-4,
                                     True]], "float32")[0]
    judged = attribution.apply(row("known difference", ledger="x"),
                               attribution.Finding(first, 10), None)
    assert judged.verdict == "known difference"
    assert judged.attribution == "optimizer dense_1/kernel at step 3"


def test_judged_rows_follow_the_noise_envelope():
    rows = attribution.judge("b", [[0, "backward", "w", 2e-7, 1e-7, 1e-8, True],
                                   [1, "backward", "w", 3e-7, 1e-9, 1e-8, True],
                                   [2, "backward", "w", math.nan, 1e-9, math.nan, False]],
                             "float32")
    assert [r.noise for r in rows] == [1e-7, 1e-7, 1e-7]  # the running maximum
    assert [r.within for r in rows] == [True, True, False]


@pytest.mark.parametrize("mode, expected", [("never", []), ("auto", ["f"]),
                                            ("always", ["p", "f"])])
def test_which_backends_get_a_parts_run(mode, expected):
    summary = [SummaryRow("p", "gradients", "pass"), SummaryRow("f", "update", "fail"),
               SummaryRow("e", "trajectory", "error")]
    assert attribution.wanted(mode, summary) == expected


def test_a_bad_attribution_mode_is_one_line():
    from suite.compare.plan import Options
    from suite.errors import UserError

    with pytest.raises(UserError, match="--attribution"):
        Options(attribution="sometimes")


def test_a_fail_whose_parts_the_variant_explains_is_a_known_difference():
    """Keras's float32 SGD momentum in a float64 run: its optimizer alone is far outside
    the noise of the plain reference and within it of the ledger variant; the rest of
    the trajectory's distance to the variant is compounding (30 epochs of digits-mlp)."""
    optimizer = attribution.judge("b", [[1, "optimizer", "dense_1/bias", 1e-8, 1e-16, 1e-9,
                                         True, 0.0]], "float64")[0]
    assert attribution.variant_explains(optimizer) and not optimizer.within
    judged = attribution.apply(row("fail"), attribution.Finding(None, 40, optimizer), None,
                               ["keras-float32-sgd-momentum"])
    assert judged.verdict == "known difference"
    assert judged.ledger == "keras-float32-sgd-momentum"
    assert judged.attribution == "optimizer dense_1/bias at step 1"
    assert "within it of the ledger variant" in judged.reason
    # without an entry to name, the variant cannot explain: the fail stands
    assert attribution.apply(row("fail"), attribution.Finding(None, 40, optimizer),
                             None).verdict == "fail"
