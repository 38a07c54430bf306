"""TimeframeEnsemble: closed-higher-bar alignment, batch == live, combination rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_signal import ImageStatModel

from effnet_trading.errors import SpecError
from effnet_trading.imaging import ImageSpec, resample_ohlcv
from effnet_trading.strategies import SignalModel, TimeframeEnsemble, combine_probabilities

SPEC = ImageSpec("gasf", window=6, size=(6, 6), fields=("open", "close"))


def _ensemble(**kw) -> TimeframeEnsemble:
    return TimeframeEnsemble({tf: SignalModel(ImageStatModel(SPEC), name=tf) for tf in ("5m", "15m", "1h")}, **kw)


def test_member_alignment_uses_last_closed_higher_bar(planted):
    frame = planted.iloc[5:605]  # starts mid-hour and mid-15m
    ens = _ensemble()
    aligned = ens.member_proba(frame)["1h"]
    # independent reference: score the 1h bars, then for each 5m bar take the 1h bar whose end <= bar end
    hourly = resample_ohlcv(frame, "1h").drop(columns="closed")
    hp = SignalModel(ImageStatModel(SPEC)).predict_proba(hourly)
    for i in [0, 100, 101, 102, 107, 108, 300, 599]:
        end = frame.index[i] + pd.Timedelta("5min")
        closed = hp[hp.index + pd.Timedelta("1h") <= end]
        expect = closed.iloc[-1].to_numpy() if len(closed) else np.full(3, np.nan)
        np.testing.assert_array_equal(aligned.iloc[i].to_numpy(), expect)


@pytest.mark.parametrize("method", ["mean", "vote"])
def test_update_matches_batch(planted, method):
    frame = planted.iloc[5:505]
    batch = _ensemble(method=method, weights={"1h": 2.0}).predict_proba(frame)
    ens = _ensemble(method=method, weights={"1h": 2.0})
    rows = []
    for _, bar in frame.iterrows():
        out = ens.update(bar)
        rows.append(np.full(4, np.nan) if out is None else out.to_numpy())
    assert np.isfinite(batch.to_numpy()[-1]).all()
    np.testing.assert_array_equal(np.array(rows), batch.to_numpy())
    assert set(ens.last_member_probs) == {"5m", "15m", "1h"}


def test_update_with_gap_matches_batch(planted):
    frame = planted.iloc[:700].drop(planted.index[200:211])  # an 55-minute outage inside an hour
    batch = _ensemble(base_timeframe="5m").predict_proba(frame)
    ens = _ensemble(base_timeframe="5m")
    rows = [ens.update(bar) for _, bar in frame.iterrows()]
    live = np.array([np.full(4, np.nan) if r is None else r.to_numpy() for r in rows])
    np.testing.assert_array_equal(live, batch.to_numpy())


def test_warmup_is_first_scored_bar_on_aligned_data(planted):
    ens = _ensemble(base_timeframe="5m")
    probs = ens.predict_proba(planted.iloc[:300])  # planted starts at 00:00: aligned to 15m and 1h
    assert ens.warmup == 6 * 12 - 1  # six closed 1h bars (window 6) close at the end of 5m bar 71
    assert int(np.flatnonzero(probs.notna().all(axis=1).to_numpy())[0]) == ens.warmup


def test_combine_mean_vote_agreement():
    p = np.array([[[0.2, 0.3, 0.5]], [[0.6, 0.3, 0.1]], [[0.1, 0.1, 0.8]]])
    mean, agree = combine_probabilities(p, np.array([1.0, 1.0, 2.0]), "mean")
    np.testing.assert_allclose(mean[0], [0.25, 0.2, 0.55])
    assert agree[0] == pytest.approx(2 / 3)
    vote, agree = combine_probabilities(p, np.array([1.0, 1.0, 2.0]), "vote")
    np.testing.assert_allclose(vote[0], [0.25, 0.0, 0.75])
    nan = combine_probabilities(np.concatenate([p, np.full((1, 1, 3), np.nan)]), np.ones(4), "mean")
    assert np.isnan(nan[0]).all() and np.isnan(nan[1]).all()


def test_configuration_errors(planted):
    with pytest.raises(SpecError, match="multiple of the base"):
        TimeframeEnsemble({"7m": SignalModel(ImageStatModel(SPEC))}).predict_proba(planted.iloc[:50])
    with pytest.raises(SpecError, match="unknown timeframe"):
        _ensemble(weights={"4h": 1.0})
    with pytest.raises(SpecError, match="share class names"):
        TimeframeEnsemble(
            {
                "5m": SignalModel(ImageStatModel(SPEC)),
                "1h": SignalModel(ImageStatModel(SPEC, class_names=("down", "up"))),
            }
        )
    with pytest.raises(SpecError, match="method"):
        _ensemble(method="median")
