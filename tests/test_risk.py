"""Risk: volatility targeting vs a pandas reference, stop/take-profit on hand-made paths, apply == step."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from effnet_trading.errors import SpecError
from effnet_trading.strategies import Risk, simulate


def _frame(opens, closes, freq="1h"):
    o, c = np.asarray(opens, float), np.asarray(closes, float)
    idx = pd.date_range("2024-01-01", periods=len(o), freq=freq, tz="UTC")
    return pd.DataFrame(
        {"open": o, "high": np.maximum(o, c) + 1, "low": np.minimum(o, c) - 1, "close": c, "volume": 1.0}, index=idx
    )


def _steps(risk, frame, targets):
    risk.reset()
    return np.array([risk.step(bar, t) for (_, bar), t in zip(frame.iterrows(), targets)])


def test_vol_targeting_matches_pandas_rolling(random_walk):
    df = random_walk.iloc[:600]
    targets = np.where(np.arange(600) % 50 < 25, 1.0, -0.5)
    risk = Risk(vol_target=0.3, vol_window=48, max_exposure=0.8)
    out = risk.apply(df, targets)
    logret = np.log(df["close"]).diff()
    ann = logret.rolling(48).std() * math.sqrt(365.25 * 288)  # 5m bars
    expect = np.clip(targets * 0.3 / ann.to_numpy(), -0.8, 0.8)
    expect[:48] = 0.0  # flat until 48 returns exist
    np.testing.assert_allclose(out.to_numpy(), expect, rtol=1e-9, atol=1e-12)
    assert (out.abs() <= 0.8).all() and out.iloc[48] != 0.0
    np.testing.assert_allclose(_steps(risk, df, targets), out.to_numpy(), rtol=1e-9, atol=1e-12)


def test_stop_loss_exits_on_close_and_cools_down():
    # entered at the open of bar 1 (100); bar 2 closes at 94 <= 95 -> flat decided at bar 2,
    # filled at bar 3's open; bars 3 and 4 cool down; bar 5 follows the input again.
    df = _frame([100, 100, 99, 95, 96, 97, 98], [100, 99, 94, 96, 97, 98, 99])
    risk = Risk(stop_loss=0.05, cooldown_bars=2)
    out = risk.apply(df, np.ones(7))
    assert out.tolist() == [1, 1, 0, 0, 0, 1, 1]
    assert _steps(risk, df, np.ones(7)).tolist() == out.tolist()
    sim = simulate(df, out, fees=0.0)
    assert sim.trades["exit_time"].iloc[0] == df.index[3]


def test_take_profit_short_and_entry_price_is_fill_open():
    # short from the open of bar 1 (200); take profit 10% -> close <= 180
    df = _frame([210, 200, 190, 185, 182, 181], [205, 195, 185, 179, 181, 182])
    risk = Risk(take_profit=0.10)
    out = risk.apply(df, -np.ones(6))
    assert out.tolist() == [-1, -1, -1, 0, -1, -1]  # re-entry (no cooldown) at bar 4's decision
    assert _steps(risk, df, -np.ones(6)).tolist() == out.tolist()


@pytest.mark.parametrize(
    "kw",
    [
        dict(stop_loss=0.01, take_profit=0.015, cooldown_bars=3),
        dict(vol_target=0.5, vol_window=20, stop_loss=0.008, cooldown_bars=1),
    ],
)
def test_apply_equals_step_on_random_targets(random_walk, kw):
    df = random_walk.iloc[:800]
    rng = np.random.default_rng(5)
    targets = (
        pd.Series(rng.choice([-1.0, 0.0, 1.0, np.nan], 800, p=[0.03, 0.02, 0.03, 0.92]), index=df.index)
        .ffill()
        .fillna(0)
    )
    risk = Risk(**kw)
    out = risk.apply(df, targets)
    np.testing.assert_allclose(_steps(risk, df, targets.to_numpy()), out.to_numpy(), rtol=1e-9, atol=1e-12)
    assert (out == 0).sum() > (targets == 0).sum()  # exits happened


def test_config_round_trip():
    r = Risk(vol_target=0.4, vol_window=30, max_exposure=0.5, stop_loss=0.02, cooldown_bars=3, interval="1h")
    assert Risk.from_dict(r.to_dict()).to_dict() == r.to_dict()
    with pytest.raises(SpecError, match="unknown Risk option"):
        Risk.from_dict({"stoploss": 0.1})


def test_errors():
    with pytest.raises(SpecError, match="max_exposure"):
        Risk(max_exposure=2.0)
    with pytest.raises(SpecError, match="stop_loss"):
        Risk(stop_loss=-0.1)
    with pytest.raises(SpecError, match="vol_window"):
        Risk(vol_window=1)
