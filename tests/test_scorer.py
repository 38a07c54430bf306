"""The Scorer protocol and its one coercion (``as_scorer``): what every adapter accepts, what it
refuses (with the fix in the message), and precomputed scores driving the same Policy."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from _helpers import MomentumRule

from effnet_trading.errors import DataError, ModelCardError, SpecError
from effnet_trading.strategies import (
    Policy,
    PrecomputedScores,
    Scorer,
    SignalModel,
    TimeframeEnsemble,
    as_scorer,
    is_scorer,
)


@pytest.fixture(scope="module")
def bars(planted) -> pd.DataFrame:
    return planted.iloc[:400]


def test_signal_model_and_ensemble_are_scorers():
    sm = SignalModel(MomentumRule())
    ens = TimeframeEnsemble({"5m": SignalModel(MomentumRule())})  # warmup raises until the bar size is known
    assert is_scorer(sm) and isinstance(sm, Scorer)
    assert is_scorer(ens)
    assert as_scorer(sm) is sm and as_scorer(ens) is ens


def test_coercions(tiny_model_dir):
    assert isinstance(as_scorer(tiny_model_dir), SignalModel)
    assert isinstance(as_scorer(str(tiny_model_dir)), SignalModel)
    assert isinstance(as_scorer(MomentumRule()), SignalModel)
    ens = as_scorer({"5m": tiny_model_dir, "1h": MomentumRule()})
    assert isinstance(ens, TimeframeEnsemble) and ens.timeframes == ["5m", "1h"]
    assert as_scorer(tiny_model_dir, load=lambda p: "loaded") == "loaded"


@pytest.mark.parametrize(
    "model, error, fragment",
    [
        (None, SpecError, "needs model=...: a model folder"),
        (42, SpecError, "model of type int is not a Scorer"),
        ({"5m": None}, SpecError, "the adapter ('5m') needs model="),
        ("/no/such/folder", ModelCardError, "model folder '/no/such/folder' does not exist; export one"),
    ],
)
def test_as_scorer_errors(model, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        as_scorer(model)


def test_precomputed_scores_drive_the_same_policy(bars):
    sm = SignalModel(MomentumRule())
    probs = sm.predict_proba(bars)
    pre = PrecomputedScores(probs)
    assert is_scorer(pre) and as_scorer(pre) is pre
    assert pre.class_names == ("sell", "hold", "buy") and pre.warmup == sm.warmup
    pd.testing.assert_frame_equal(pre.predict_proba(bars), probs)
    policy = Policy(0.4)
    live = [policy.step(pre.update({"timestamp": ts, **row})) for ts, row in zip(bars.index, bars.to_dict("records"))]
    np.testing.assert_array_equal(live, Policy(0.4).positions(probs).to_numpy())


def test_precomputed_scores_need_a_time_index():
    with pytest.raises(DataError, match="DatetimeIndex"):
        PrecomputedScores(pd.DataFrame({"sell": [0.2], "hold": [0.5], "buy": [0.3]}))
