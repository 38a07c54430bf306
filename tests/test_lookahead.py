"""Look-ahead by perturbation: change every bar after t -> every decision at <= t is unchanged.

Each test also checks that the perturbation does change something after t, so it can fail.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_signal import ImageStatModel

from effnet_trading.imaging import KINDS, ImageSpec, resample_ohlcv
from effnet_trading.strategies import Policy, Risk, SignalModel, TimeframeEnsemble

T = 300  # decision bar (5m bars from 00:00: bar 300 is 25:00, the 1st bar of an hour)


def _perturb(frame: pd.DataFrame, t: int, seed: int = 0) -> pd.DataFrame:
    """Scale prices of bars > t by random factors (keeping high >= open/close >= low) and volumes."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(frame) - t - 1
    k = np.exp(rng.normal(0, 0.02, (n, 4)))
    vals = out.iloc[t + 1 :, :4].to_numpy() * k
    o, c = vals[:, 0], vals[:, 3]
    vals[:, 1] = np.maximum(vals[:, 1], np.maximum(o, c))
    vals[:, 2] = np.minimum(vals[:, 2], np.minimum(o, c))
    out.iloc[t + 1 :, :4] = vals
    out.iloc[t + 1 :, 4] = out.iloc[t + 1 :, 4].to_numpy() * rng.uniform(0.2, 5.0, n)
    return out


def _spec(kind: str, timeframe=None) -> ImageSpec:
    size = (16, 48) if kind in ("ohlc_bars", "candles") else (16, 16)  # 3 px per bar for bar charts
    return ImageSpec(
        kind, window=16, size=size, timeframe=timeframe, fields=("open", "close"), returns=kind == "recurrence"
    )


@pytest.mark.parametrize("timeframe", [None, "15m"])
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "lob_heatmap"])
def test_signal_model_is_causal(planted, kind, timeframe):
    frame = planted.iloc[: T + 200]
    spec = _spec(kind, timeframe)
    a = SignalModel(ImageStatModel(spec)).predict_proba(frame).to_numpy()
    b = SignalModel(ImageStatModel(spec)).predict_proba(_perturb(frame, T)).to_numpy()
    np.testing.assert_array_equal(a[: T + 1], b[: T + 1])
    assert not np.allclose(a[T + 4 :], b[T + 4 :])


def test_signal_model_tiny_onnx_is_causal(tiny_model_dir, planted):
    frame = planted.iloc[: T + 60]
    sm = SignalModel(tiny_model_dir)
    a, b = sm.predict_proba(frame).to_numpy(), sm.predict_proba(_perturb(frame, T)).to_numpy()
    np.testing.assert_array_equal(a[: T + 1], b[: T + 1])
    assert not np.allclose(a[T + 1 :], b[T + 1 :])


def test_policy_and_risk_are_causal(random_walk):
    frame = random_walk.iloc[: T + 300]
    rng = np.random.default_rng(2)
    probs = pd.DataFrame(rng.dirichlet([1, 1, 1], len(frame)), index=frame.index, columns=["sell", "hold", "buy"])
    probs2 = probs.copy()
    probs2.iloc[T + 1 :] = rng.dirichlet([1, 1, 1], len(frame) - T - 1)
    policy = Policy(threshold=0.45, hysteresis=0.05, sizing="prob")
    a, b = policy.positions(probs), policy.positions(probs2)
    np.testing.assert_array_equal(a.iloc[: T + 1], b.iloc[: T + 1])
    assert not a.iloc[T + 1 :].equals(b.iloc[T + 1 :])
    risk = Risk(vol_target=0.4, vol_window=30, stop_loss=0.003, take_profit=0.004, cooldown_bars=2)
    ra = risk.apply(frame, a)
    rb = risk.apply(_perturb(frame, T), b)
    np.testing.assert_array_equal(ra.iloc[: T + 1], rb.iloc[: T + 1])
    assert not np.allclose(ra.iloc[T + 1 :], rb.iloc[T + 1 :])


def _ensemble():
    spec = _spec("gasf")
    return TimeframeEnsemble({tf: SignalModel(ImageStatModel(spec)) for tf in ("5m", "15m", "1h")}, base_timeframe="5m")


@pytest.mark.parametrize("t", [T - 1, T, T + 5])  # closes an hour / opens one / mid-hour
def test_ensemble_is_causal(planted, t):
    frame = planted.iloc[: 24 * 12 * 3]
    a = _ensemble().predict_proba(frame).to_numpy()
    b = _ensemble().predict_proba(_perturb(frame, t)).to_numpy()
    assert np.isfinite(a[t]).all()
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
    assert not np.allclose(a[t + 13 :], b[t + 13 :])


def test_naive_alignment_with_forming_higher_bar_would_leak(planted):
    """Aligning each 5m bar with the 1h bar that *contains* it (still forming) leaks the future:
    the same perturbation changes its value at t, where the ensemble's alignment does not."""
    t = T + 5  # mid-hour
    frame = planted.iloc[: 24 * 12 * 3]
    spec = _spec("gasf")

    def naive(df):
        hourly = resample_ohlcv(df, "1h").drop(columns="closed")
        hp = SignalModel(ImageStatModel(spec)).predict_proba(hourly)
        return hp.reindex(df.index, method="ffill").to_numpy()

    a, b = naive(frame), naive(_perturb(frame, t))
    assert np.isfinite(a[t]).all() and not np.allclose(a[t], b[t])
    ens = TimeframeEnsemble({"1h": SignalModel(ImageStatModel(spec))})
    np.testing.assert_array_equal(
        ens.predict_proba(frame).to_numpy()[t], ens.predict_proba(_perturb(frame, t)).to_numpy()[t]
    )
