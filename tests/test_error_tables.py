"""Errors that tell the fix, as tables (pyts' ``test_parameter_check`` style): the parameters, the
exception, and the message fragment a user reads."""

from __future__ import annotations

import json
import re

import pytest

from effnet_trading.errors import ModelCardError, SpecError, TrainingError
from effnet_trading.imaging import ImageSpec, spec_from_options
from effnet_trading.model_zoo.card import load_card
from effnet_trading.model_zoo.train import TrainConfig
from effnet_trading.strategies import Policy, Risk


@pytest.mark.parametrize(
    "params, error, err_msg",
    [
        (dict(threshold=1.5), SpecError, "threshold=1.5 must be a probability in [0, 1]"),
        (dict(hysteresis=-0.1), SpecError, "hysteresis=-0.1 must be >= 0"),
        (dict(sizing="kelly"), SpecError, "sizing='kelly' must be 'fixed' or 'prob'"),
        (dict(on_hold="exit"), SpecError, "on_hold='exit' must be 'keep'"),
        (dict(class_names=("buy",)), SpecError, "needs at least 2 class names"),
        (dict(class_names=("sell", "maybe", "buy")), SpecError, "class name 'maybe' has no trading direction"),
    ],
)
def test_policy_parameter_check(params, error, err_msg):
    with pytest.raises(error, match=re.escape(err_msg)):
        Policy(**params)


def test_policy_from_dict_names_the_unknown_option():
    with pytest.raises(SpecError, match=re.escape("unknown Policy option(s) ['treshold']")):
        Policy.from_dict({"treshold": 0.5})


@pytest.mark.parametrize(
    "params, error, err_msg",
    [
        (dict(vol_target=0.0), SpecError, "vol_target=0.0 must be > 0"),
        (dict(vol_window=1), SpecError, "vol_window=1 must be >= 2 returns"),
        (dict(max_exposure=1.5), SpecError, "max_exposure=1.5 must be in (0, 1]"),
        (dict(stop_loss=-0.05), SpecError, "stop_loss=-0.05 must be a positive fraction"),
        (dict(take_profit=0.0), SpecError, "take_profit=0.0 must be a positive fraction"),
        (dict(cooldown_bars=-1), SpecError, "cooldown_bars=-1 must be >= 0"),
    ],
)
def test_risk_parameter_check(params, error, err_msg):
    with pytest.raises(error, match=re.escape(err_msg)):
        Risk(**params)


@pytest.mark.parametrize(
    "params, error, err_msg",
    [
        (dict(kind="heikin"), SpecError, "ImageSpec kind 'heikin' is unknown; choose one of"),
        (dict(kind="gasf", size=(2, 2)), SpecError, "must be (H, W) with both >= 4 pixels"),
        (dict(kind="gasf", window=1), SpecError, "window 1 must be >= 2 bars"),
        (dict(kind="candles", color="blue"), SpecError, "color 'blue' must be 'rgb' or 'grey'"),
        (dict(kind="gasf", fields=("price",)), SpecError, "must be a non-empty subset of"),
        (dict(kind="candles", ma=-1), SpecError, "ma=-1 must be >= 0"),
        (dict(kind="ohlc_bars", window=20, size=(64, 40)), SpecError, "use size=(H, 60)"),
        (dict(kind="candles", window=40, size=(32, 32)), SpecError, "W >= 40"),
        (dict(kind="gasf", timeframe="7x"), SpecError, "ImageSpec timeframe '7x'"),
    ],
)
def test_image_spec_parameter_check(params, error, err_msg):
    with pytest.raises(error, match=re.escape(err_msg)):
        ImageSpec(**params)


def test_spec_from_options_reads_command_line_sizes():
    assert spec_from_options("candles", window=20, size="64x60").size == (64, 60)
    assert spec_from_options("gadf", window=16, size=16, returns=True) == ImageSpec(
        "gadf", window=16, size=(16, 16), returns=True
    )
    assert spec_from_options("stack", window=16, size=16).channels == 3
    with pytest.raises(SpecError, match=re.escape("size '64y' is not N or HxW pixels")):
        spec_from_options("gasf", window=16, size="64y")


@pytest.mark.parametrize(
    "params, error, err_msg",
    [
        (dict(epochs=0), TrainingError, "TrainConfig epochs=0 must be >= 1"),
        (dict(horizon=0), TrainingError, "TrainConfig horizon=0 must be >= 1"),
        (dict(batch_size=1), TrainingError, "TrainConfig batch_size=1 must be >= 2"),
        (dict(lr=0.0), TrainingError, "TrainConfig lr=0.0 must be > 0"),
        (dict(label_smoothing=1.0), TrainingError, "label_smoothing=1.0 must be in [0, 1)"),
        (dict(class_weights="inverse"), TrainingError, "class_weights='inverse' is unknown; use 'balanced' or None"),
    ],
)
def test_train_config_parameter_check(params, error, err_msg):
    with pytest.raises(error, match=re.escape(err_msg)):
        TrainConfig(**params)


def test_train_config_from_dict_names_the_unknown_key():
    with pytest.raises(TrainingError, match=re.escape("unknown TrainConfig keys ['epoch']")):
        TrainConfig.from_dict({"epoch": 3})


def _card_cases():
    def missing_folder(tmp):
        return tmp / "nope"

    def no_card(tmp):
        (tmp / "m").mkdir()
        return tmp / "m"

    def bad_json(tmp):
        (tmp / "m").mkdir()
        (tmp / "m" / "card.json").write_text("{not json")
        return tmp / "m"

    def not_an_object(tmp):
        (tmp / "m").mkdir()
        (tmp / "m" / "card.json").write_text("[1, 2]")
        return tmp / "m"

    def missing_fields(tmp):
        (tmp / "m").mkdir()
        (tmp / "m" / "card.json").write_text(json.dumps({"name": "x"}))
        return tmp / "m"

    return [
        (missing_folder, ModelCardError, "does not exist; export one with `effnet-trading zoo export`"),
        (no_card, ModelCardError, "card.json' is missing: a model folder holds model.onnx + card.json"),
        (bad_json, ModelCardError, "is not valid JSON"),
        (not_an_object, ModelCardError, "card.json holds a list, expected a JSON object; re-export the model"),
        (missing_fields, ModelCardError, "card.json is missing required field(s)"),
    ]


@pytest.mark.parametrize("make, error, err_msg", _card_cases(), ids=lambda v: getattr(v, "__name__", None))
def test_card_loader_parameter_check(tmp_path, make, error, err_msg):
    with pytest.raises(error, match=re.escape(err_msg)):
        load_card(make(tmp_path))


def test_card_hash_mismatch_says_how_to_fix(tiny_model_dir, tmp_path):
    import shutil

    bad = tmp_path / "tampered"
    shutil.copytree(tiny_model_dir, bad)
    with open(bad / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelCardError, match="sha256"):
        load_card(bad)
