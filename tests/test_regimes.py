"""Regime labels on constructed series, the causal HMM filter, and the regime gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from effnet_trading.applications.regimes import (
    REGIMES,
    RegimeHMM,
    RegimeRules,
    forward_filter,
    regime_labels,
)
from effnet_trading.errors import DataError, SpecError
from effnet_trading.strategies import Policy, RegimeGate

RULES = RegimeRules(window=24, base=200)


def _ohlcv(close: np.ndarray, volume: np.ndarray | None = None) -> pd.DataFrame:
    close = np.asarray(close, float)
    opn = np.r_[close[0], close[:-1]]
    idx = pd.date_range("2024-01-01", periods=len(close), freq="1h", tz="UTC")
    vol = np.full(len(close), 100.0) if volume is None else volume
    return pd.DataFrame(
        {
            "open": opn,
            "high": np.maximum(opn, close) * 1.0005,
            "low": np.minimum(opn, close) * 0.9995,
            "close": close,
            "volume": vol,
        },
        index=idx,
    )


def _names(codes: pd.Series) -> pd.Series:
    return codes[codes >= 0].map(dict(enumerate(REGIMES)))


def test_straight_trends_are_trending():
    up = _names(regime_labels(_ohlcv(100 * np.exp(0.002 * np.arange(400))), RULES))
    down = _names(regime_labels(_ohlcv(100 * np.exp(-0.002 * np.arange(400))), RULES))
    assert len(up) == 400 - (2 * RULES.window - 1) and (up == "trend_up").all()
    assert (down == "trend_down").all()


def test_sine_is_ranging():
    t = np.arange(600)
    lab = _names(regime_labels(_ohlcv(100 * (1 + 0.02 * np.sin(2 * np.pi * t / 24))), RULES))
    assert (lab == "ranging").mean() > 0.95


def test_order_book_liquidity_flags_on_their_own_clock():
    """Flags from order-book snapshots (every minute here) apply to the hourly bars at or after them;
    a later flag never reaches an earlier bar, and flags that miss the bars are refused."""
    t = np.arange(600)
    bars = _ohlcv(100 * (1 + 0.02 * np.sin(2 * np.pi * t / 24)))
    minutes = pd.date_range(bars.index[0], bars.index[-1], freq="1min")
    flags = pd.Series(minutes >= bars.index[400], index=minutes)  # illiquid from bar 400 on
    lab = regime_labels(bars, RULES, liquidity=flags)
    names = lab.map(dict(enumerate(REGIMES)))
    assert (names.iloc[400:] == "low_liquidity").all() and not (names.iloc[:400] == "low_liquidity").any()
    with pytest.raises(DataError, match="cover"):
        regime_labels(bars, RULES, liquidity=flags.iloc[-60:])


def test_volatility_burst_and_thin_volume():
    rng = np.random.default_rng(0)
    r = rng.normal(0, 0.001, 800)
    r[500:560] *= 8  # burst
    vol = np.full(800, 100.0)
    vol[300:360] = 5.0  # thin trading, normal volatility
    lab = regime_labels(_ohlcv(100 * np.exp(np.cumsum(r)), vol), RULES)
    names = lab.map(lambda c: REGIMES[c] if c >= 0 else "warmup")
    assert (names.iloc[510:560] == "high_vol").mean() > 0.9
    assert (names.iloc[340:360] == "low_liquidity").all()
    calm = names.iloc[250:290]
    assert not calm.isin(["high_vol", "low_liquidity"]).any()
    # causal: the labels up to bar t do not change when bars after t change
    r2 = r.copy()
    r2[450:] = rng.normal(0, 0.01, 350)
    lab2 = regime_labels(_ohlcv(100 * np.exp(np.cumsum(r2)), vol), RULES)
    assert (lab2.iloc[:450] == lab.iloc[:450]).all() and not (lab2.iloc[450:] == lab.iloc[450:]).all()


def test_ahead_shifts_target_and_rejects_negative():
    close = _ohlcv(100 * np.exp(0.002 * np.arange(300)))
    now, later = regime_labels(close, RULES), regime_labels(close, RULES, ahead=5)
    assert (later.iloc[:-5].to_numpy() == now.iloc[5:].to_numpy()).all() and (later.iloc[-5:] == -1).all()
    with pytest.raises(SpecError, match="ahead"):
        regime_labels(close, RULES, ahead=-1)


def _sticky_sequence(n=600, seed=0):
    rng = np.random.default_rng(seed)
    k = len(REGIMES)
    a = np.full((k, k), 0.02 / (k - 1)) + np.eye(k) * (0.98 - 0.02 / (k - 1))
    states = [0]
    for _ in range(n - 1):
        states.append(rng.choice(k, p=a[states[-1]]))
    states = np.array(states)
    noisy = np.where(rng.random(n) < 0.25, rng.integers(0, k, n), states)
    return states, noisy


def test_hmm_filter_is_causal_and_matches_hmmlearn_at_the_last_bar():
    from hmmlearn.hmm import CategoricalHMM

    states, obs = _sticky_sequence()
    hmm = RegimeHMM.fit(obs, states, n_iter=5)
    assert np.allclose(hmm.transmat.sum(1), 1) and np.diag(hmm.transmat).min() > 0.8
    p = hmm.filter(obs)
    # independent reference: at the last bar of a sequence, the smoothed posterior equals the filtered one
    ref = CategoricalHMM(n_components=len(REGIMES), n_features=len(REGIMES), init_params="", params="")
    ref.startprob_, ref.transmat_, ref.emissionprob_ = hmm.startprob, hmm.transmat, hmm.emission
    for t in (0, 17, 250, 599):
        assert np.allclose(p[t], ref.predict_proba(obs[: t + 1].reshape(-1, 1))[-1], atol=1e-10)
    # perturbation: changing every observation after t leaves rows 0..t bit-identical
    rng = np.random.default_rng(1)
    for t in (50, 300, 598):
        pert = obs.copy()
        pert[t + 1 :] = rng.integers(0, len(REGIMES), len(obs) - t - 1)
        q = hmm.filter(pert)
        assert np.array_equal(q[: t + 1], p[: t + 1]) and not np.allclose(q[t + 1 :], p[t + 1 :])
    # smoothing would differ: filtering is not hmmlearn's whole-sequence posterior
    assert not np.allclose(p[:-1], ref.predict_proba(obs.reshape(-1, 1))[:-1])
    # the filter beats the raw noisy observations at recovering the states
    assert (p.argmax(1) == states).mean() > (obs == states).mean() + 0.05


def test_forward_filter_missing_rows_predict_only():
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    ll = np.log(np.array([[0.9, 0.1], [np.nan, np.nan], [0.5, 0.5]]))
    p = forward_filter(np.array([0.5, 0.5]), a, ll)
    assert np.allclose(p[0], [0.9, 0.1]) and np.allclose(p[1], p[0] @ a) and np.allclose(p[2], p[1] @ a)


def test_regime_frame_has_switch_probability():
    states, obs = _sticky_sequence(200)
    hmm = RegimeHMM.fit(obs, states, n_iter=0)
    obs[:5] = -1
    f = hmm.frame(obs, pd.date_range("2024", periods=200, freq="1h", tz="UTC"))
    assert f.iloc[:5][list(REGIMES)].isna().all().all() and f["regime"].iloc[:5].isna().all()
    assert ((f["p_switch"].iloc[5:] > 0) & (f["p_switch"].iloc[5:] < 0.2)).all()
    assert RegimeHMM.from_dict(hmm.to_dict()).to_dict() == hmm.to_dict()


def test_regime_gate_scales_policy_by_regime():
    idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    probs = pd.DataFrame({"sell": 0.1, "hold": 0.1, "buy": 0.8}, index=idx)
    reg = pd.DataFrame(0.0, index=idx, columns=list(REGIMES))
    for i, name in enumerate(["trend_up", "ranging", "high_vol", "trend_down", "low_liquidity", "trend_up"]):
        reg.loc[idx[i], name] = 1.0
    reg.iloc[2] = np.nan  # no regime yet -> default (flat)
    gate = RegimeGate(Policy(0.5), reg, {"trend_up": 1.0, "trend_down": 0.5, "ranging": 0.25})
    got = gate.positions(probs).to_numpy()
    assert got.tolist() == [1.0, 0.25, 0.0, 0.5, 0.0, 1.0]
    g2 = gate.replace(class_names=("sell", "hold", "buy"))
    assert [g2.step(probs.iloc[i]) for i in range(6)] == got.tolist()
    exp = RegimeGate(Policy(0.5), reg.fillna(0.2), {"trend_up": 1.0}, mode="expected")
    assert exp.positions(probs).iloc[2] == pytest.approx(0.2)
    with pytest.raises(SpecError, match="not in the regimes"):
        RegimeGate(Policy(), reg, {"bull": 1.0})
    with pytest.raises(DataError, match="DatetimeIndex"):
        RegimeGate(Policy(), reg.reset_index(drop=True))
    # a regimes.csv from `regimes scan` also has the argmax label and p_switch: not regimes
    csv = reg.assign(regime="trend_up", p_switch=0.9)
    assert RegimeGate(Policy(0.5), csv, {"trend_up": 1.0}).positions(probs).tolist() == [1.0, 0, 0, 0, 0, 1.0]
    with pytest.warns(UserWarning, match="regime row"):  # regimes on another clock: said, not silent
        RegimeGate(Policy(0.5), reg.shift(30, freq="min")).positions(probs)


@pytest.mark.parametrize("engine", ["vectorbt", "backtrader"])
def test_regime_gate_drives_both_backtest_engines(engine, sample_dir):
    from effnet_trading.imaging import load_ohlcv
    from effnet_trading.plugins.backtest import run_backtest
    from effnet_trading.strategies import TREND_ONLY, PrecomputedScores

    frame = load_ohlcv(sample_dir / "btcusdt_1h.csv").iloc[:800]
    probs = pd.DataFrame(
        np.random.default_rng(0).dirichlet([1, 1, 1], len(frame)), index=frame.index, columns=["sell", "hold", "buy"]
    )
    codes = regime_labels(frame, RULES).to_numpy()
    onehot = np.full((len(frame), len(REGIMES)), np.nan)
    onehot[codes >= 0] = np.eye(len(REGIMES))[codes[codes >= 0]]
    gate = RegimeGate(Policy(0.5), pd.DataFrame(onehot, index=frame.index, columns=list(REGIMES)), TREND_ONLY)
    out = run_backtest(frame, PrecomputedScores(probs), engine=engine, policy=gate)
    want = gate.replace().positions(probs)
    assert np.allclose(out.target.to_numpy(), want.to_numpy())
    trending = np.isin(codes, [0, 1])
    assert (want[~trending] == 0).all() and (want[trending] != 0).any()
