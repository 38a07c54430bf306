"""Calibration: ECE and reliability bins against hand computations, temperature scaling (fit, card,
Predictor, `zoo verify`), and the calibration figures in `train` and `evaluate` outputs."""

import json

import numpy as np
import pytest
from _helpers import edit_card
from click.testing import CliRunner

from effnet_trading.errors import ModelCardError, TrainingError
from effnet_trading.model_zoo.calibration import (
    apply_temperature,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)
from effnet_trading.model_zoo.metrics import classification_report, log_loss
from effnet_trading.plugins.cli import main


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_ece_matches_a_hand_computation():
    # top-class confidences 0.9, 0.8, 0.6, 0.55, 0.35; with 2 bins [0, .5), [.5, 1]:
    proba = np.array(
        [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.55, 0.4, 0.05], [0.33, 0.35, 0.32]],
    )
    y = np.array([0, 0, 2, 1, 1])  # correct, wrong, correct, wrong, correct
    # bin 0: sample 5 only: conf 0.35, acc 1 -> |1 - 0.35| = 0.65, weight 1/5
    # bin 1: samples 1-4: conf mean (0.9+0.8+0.6+0.55)/4 = 0.7125, acc 2/4 -> 0.2125, weight 4/5
    want = 0.2 * 0.65 + 0.8 * 0.2125
    assert expected_calibration_error(y, proba, n_bins=2) == pytest.approx(want)
    bins = reliability_bins(proba.max(1), proba.argmax(1) == y, n_bins=2)
    assert bins["count"] == [1, 4] and bins["accuracy"] == pytest.approx([1.0, 0.5])
    assert bins["confidence"] == pytest.approx([0.35, 0.7125])
    # confidence exactly 1 lands in the last bin; empty bins are NaN and weigh nothing
    edge = reliability_bins(np.array([1.0, 0.05]), np.array([True, False]), n_bins=10)
    assert edge["count"][-1] == 1 and edge["count"][0] == 1 and np.isnan(edge["accuracy"][5])
    assert expected_calibration_error([0], [[1.0, 0.0, 0.0]]) == 0.0


def test_report_carries_ece_reliability_and_class_shares():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    proba = _softmax(rng.normal(size=(300, 3)))
    r = classification_report(y, proba, warn=False)
    assert r["ece"] == pytest.approx(expected_calibration_error(y, proba))
    assert sum(r["reliability"]["count"]) == 300 and len(r["reliability"]["count"]) == 15
    assert r["true_shares"]["buy"] == pytest.approx(np.mean(y == 2))
    cal = calibration_report(y, proba)
    assert cal["pred_shares"] == pytest.approx(r["pred_shares"])


def test_temperature_fit_recovers_overconfidence_and_lowers_nll():
    rng = np.random.default_rng(1)
    z = rng.normal(scale=1.5, size=(4000, 3))
    y = np.array([rng.choice(3, p=p) for p in _softmax(z)])  # labels drawn from softmax(z): calibrated
    over = _softmax(3.0 * z)  # a model three times too confident
    t = fit_temperature(y, over)
    assert t == pytest.approx(3.0, rel=0.1)
    fixed = apply_temperature(over, t)
    assert log_loss(y, fixed) < log_loss(y, over) - 0.05
    assert expected_calibration_error(y, fixed) < expected_calibration_error(y, over) / 2
    np.testing.assert_allclose(apply_temperature(over, 3.0), _softmax(z), atol=1e-9)  # exact inverse
    assert np.array_equal(fixed.argmax(1), over.argmax(1))  # accuracy is unchanged
    with pytest.raises(TrainingError, match="fit_temperature needs"):
        fit_temperature(y[:5], over[:4])


@pytest.fixture(scope="module")
def calibrated_dir(tmp_path_factory, planted):
    """The conftest tiny small_cnn exported with temperature 2.5, plus the torch model to compare with."""
    import torch
    from conftest import TINY_SPEC

    from effnet_trading.imaging import render
    from effnet_trading.model_zoo import create_model
    from effnet_trading.model_zoo.export import export_onnx

    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=3, in_chans=TINY_SPEC.channels).eval()
    out = tmp_path_factory.mktemp("calibrated") / "tiny_t"
    cal = {"method": "temperature", "temperature": 2.5, "ece_before": 0.1, "ece_after": 0.02, "fitted_on": "test"}
    export_onnx(
        model,
        out,
        spec=TINY_SPEC,
        architecture="small_cnn",
        sample_images=render(TINY_SPEC, planted.iloc[:64]),
        calibration=cal,
    )
    return out, model


def test_predictor_applies_the_card_temperature(calibrated_dir, planted, tiny_model_dir):
    import torch
    from conftest import TINY_SPEC

    from effnet_trading.imaging import render
    from effnet_trading.model_zoo import Predictor, load_card

    out, model = calibrated_dir
    card = load_card(out)
    assert card.calibration["temperature"] == 2.5 and card.temperature == 2.5
    assert "calibration" not in json.loads((tiny_model_dir / "card.json").read_text())  # uncalibrated: no key
    images = render(TINY_SPEC, planted.iloc[:200])[-40:]
    mean = torch.tensor(card.normalization["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(card.normalization["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = model((torch.from_numpy(images) - mean) / std)
        want = torch.softmax(logits / 2.5, 1).numpy()
        raw = torch.softmax(logits, 1).numpy()
    got = Predictor(out, "cpu").predict(images)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got - raw).max() > 1e-3  # the temperature did something
    np.testing.assert_allclose(Predictor(tiny_model_dir, "cpu").predict(images), raw, atol=1e-5)


def test_verify_catches_a_tampered_temperature(calibrated_dir, tmp_path):
    out, _ = calibrated_dir
    runner = CliRunner()
    ok = runner.invoke(main, ["zoo", "verify", str(out), "--n-images", "8"])
    assert ok.exit_code == 0, ok.output
    assert "calibration: temperature 2.5 reproduces the probe" in ok.output
    tampered = edit_card(out, lambda card: card["calibration"].update(temperature=1.7), copy_to=tmp_path / "tampered")
    bad = runner.invoke(main, ["zoo", "verify", str(tampered), "--n-images", "8"])
    assert bad.exit_code != 0
    assert "FAIL calibration: with temperature 1.7 from card.json the probe probabilities differ" in bad.output
    edit_card(tampered, lambda card: card["calibration"].update(temperature=-1))
    from effnet_trading.model_zoo import load_card

    with pytest.raises(ModelCardError, match="temperature -1 must be a finite number > 0"):
        load_card(tampered)


def test_train_calibrates_and_reports(planted, tmp_path):
    """`train --calibrate temperature`: the card holds the record, the run has ECE and calibration.png."""
    csv = tmp_path / "bars.csv"
    planted.iloc[:1200].to_csv(csv, index_label="timestamp")
    out = tmp_path / "run"
    args = ["train", "--data", str(csv), "--model", "small_cnn", "--kind", "gadf", "--returns"]
    args += [
        "--window",
        "16",
        "--size",
        "16",
        "--epochs",
        "1",
        "--max-train-samples",
        "400",
        "--calibrate",
        "temperature",
    ]
    r = CliRunner().invoke(main, [*args, "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "ECE" in r.output and "predicted/true class shares" in r.output and "temperature" in r.output
    png = (out / "calibration.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test"]["ece"] <= 1 and sum(metrics["test"]["reliability"]["count"]) == metrics["test"]["n"]
    card = json.loads((out / "model" / "card.json").read_text())
    cal = card["calibration"]
    assert cal["method"] == "temperature" and cal["temperature"] == metrics["calibration"]["temperature"] > 0
    assert {"ece_before", "ece_after", "fitted_on"} <= set(cal) and cal["fitted_on"].startswith("validation fold")
    assert cal["ece_after"] == pytest.approx(metrics["test"]["ece"])  # the test report is the calibrated one
    verify = CliRunner().invoke(main, ["zoo", "verify", str(out / "model"), "--n-images", "8"])
    assert verify.exit_code == 0, verify.output


def test_calibrate_needs_a_validation_fold():
    from effnet_trading.model_zoo.train import TrainConfig

    with pytest.raises(TrainingError, match="validation fold, but valid=0"):
        TrainConfig(calibrate="temperature", valid=0)
    with pytest.raises(TrainingError, match="calibrate='platt' is unknown"):
        TrainConfig(calibrate="platt")
