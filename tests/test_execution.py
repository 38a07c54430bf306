"""The reference simulator: a hand-computed example and a slow per-bar loop written independently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _helpers import wild_ohlcv

from effnet_trading.errors import DataError, SpecError
from effnet_trading.strategies import performance_summary, simulate


def _frame(opens, closes, freq="1h"):
    o, c = np.asarray(opens, float), np.asarray(closes, float)
    idx = pd.date_range("2024-01-01", periods=len(o), freq=freq, tz="UTC")
    return pd.DataFrame(
        {"open": o, "high": np.maximum(o, c) + 1, "low": np.minimum(o, c) - 1, "close": c, "volume": 1.0}, index=idx
    )


def _slow_loop(df, target, fees, slippage, cash):
    """Per-bar reference: at each open apply the previous bar's decision if it changed; mark at close."""
    units, last_target, equity = 0.0, 0.0, []
    for t in range(len(df)):
        if t > 0:
            decided = 0.0 if np.isnan(target[t - 1]) else target[t - 1]
            if decided != last_target:
                px = df["open"].iloc[t]
                want = decided * (cash + units * px) / px
                trade = want - units
                fill = px * (1 + slippage) if trade > 0 else px * (1 - slippage)
                if trade > 0 and trade * fill * (1 + fees) > cash:  # buys are capped by the cash on hand
                    trade = max(cash, 0.0) / (fill * (1 + fees))
                    want = units + trade
                cash = cash - trade * fill - fees * abs(trade) * fill
                units, last_target = want, decided
        equity.append(cash + units * df["close"].iloc[t])
    return np.array(equity)


def test_hand_computed_example():
    df = _frame([100, 101, 102, 104, 103, 105], [101, 102, 104, 103, 105, 106])
    res = simulate(df, pd.Series([1, 1, 0, -1, -1, 0.0], index=df.index), fees=0.001, init_cash=1000.0)
    u = 1000.0 / (101 * 1.001)  # long 100% at the open of bar 1: the buy plus its fee use all the cash
    cash1 = 0.0
    assert res.equity.iloc[0] == 1000.0
    np.testing.assert_allclose(res.equity.iloc[1], cash1 + u * 102)
    np.testing.assert_allclose(res.equity.iloc[2], cash1 + u * 104)
    cash3 = cash1 + u * 104 * (1 - 0.001)  # flat at the open of bar 3 (decided at bar 2's close)
    np.testing.assert_allclose(res.equity.iloc[3], cash3)
    short = cash3 / 103  # short 100% at the open of bar 4
    cash4 = cash3 + short * 103 * (1 - 0.001)
    np.testing.assert_allclose(res.equity.iloc[5], cash4 - short * 106)
    assert res.position.tolist() == [0, 1, 1, 0, -1, -1]
    assert res.orders["side"].tolist() == ["buy", "sell", "sell"]
    assert res.orders["time"].tolist() == list(df.index[[1, 3, 4]])
    tr = res.trades
    assert tr["direction"].tolist() == ["long", "short"] and tr["status"].tolist() == ["closed", "open"]
    np.testing.assert_allclose(tr["entry_price"], [101, 103])
    np.testing.assert_allclose(tr["exit_price"], [104, 106])
    np.testing.assert_allclose(tr["pnl"].iloc[0], u * (104 - 101) - u * 101 * 0.001 - u * 104 * 0.001)
    np.testing.assert_allclose(tr["pnl"].sum(), res.final_equity - 1000.0)


@pytest.mark.parametrize("fees,slippage", [(0.0, 0.0), (0.001, 0.0), (0.00075, 0.0005)])
def test_matches_slow_loop_on_random_targets(random_walk, fees, slippage):
    df = random_walk.iloc[:1500]
    rng = np.random.default_rng(1)
    raw = rng.choice([-1.0, -0.5, 0.0, 0.3, 1.0, np.nan], size=len(df), p=[0.1, 0.05, 0.1, 0.05, 0.1, 0.6])
    target = pd.Series(raw, index=df.index).ffill()
    target.iloc[:5] = np.nan  # warm-up -> flat
    res = simulate(df, target, fees=fees, slippage=slippage, init_cash=5000.0)
    ref = _slow_loop(df, target.to_numpy(), fees, slippage, 5000.0)
    np.testing.assert_allclose(res.equity.to_numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(res.trades["pnl"].sum(), res.final_equity - 5000.0, rtol=1e-9)
    np.testing.assert_allclose(res.orders["fee"].sum(), res.trades["fees"].sum(), rtol=1e-9)
    np.testing.assert_allclose((1 + res.returns).prod() * 5000.0, res.final_equity, rtol=1e-9)


def test_buy_is_capped_by_cash_but_short_cover_is_not():
    df = _frame([100, 100, 100, 100], [100, 100, 100, 100])
    res = simulate(df, [1, 1, 1, 1], fees=0.01, init_cash=1010.0)
    np.testing.assert_allclose(res.orders["size"].iloc[0], 10.0)  # 10 * 100 * 1.01 = 1010
    assert res.cash.iloc[-1] == pytest.approx(0.0, abs=1e-9)
    res = simulate(df, [0.5, 0.5, 0.5, 0.5], fees=0.01, init_cash=1000.0)
    np.testing.assert_allclose(res.orders["size"].iloc[0], 5.0)  # half the equity: no cap needed


def test_slippage_moves_fill_against_trade():
    df = _frame([100, 100, 100, 100], [100, 100, 100, 100])
    res = simulate(df, [1, 0, -1, -1], fees=0.0, slippage=0.01, init_cash=1000.0)
    assert res.orders["price"].tolist() == [101.0, 99.0, 99.0]
    assert res.final_equity < 1000.0


def test_last_target_never_fills_and_position_lags_one_bar():
    df = _frame([10, 11, 12], [11, 12, 13])
    res = simulate(df, [0, 0, 1], fees=0.0)
    assert res.orders.empty and res.trades.empty and res.final_equity == 10_000.0
    res = simulate(df, [1, 0, 0], fees=0.0)
    assert res.position.tolist() == [0, 1, 0]
    np.testing.assert_allclose(res.final_equity, 10_000.0 / 11 * 12)  # bought at open 11, sold at open 12


def test_flip_splits_into_two_trades():
    df = _frame([100, 100, 110, 120], [100, 105, 115, 125])
    res = simulate(df, [1, -1, -1, -1], fees=0.001)
    assert res.trades["direction"].tolist() == ["long", "short"]
    assert len(res.orders) == 2  # one order flips
    np.testing.assert_allclose(res.trades["fees"].sum(), res.orders["fee"].sum())
    np.testing.assert_allclose(res.trades["pnl"].sum(), res.final_equity - 10_000.0)


def test_target_validation_messages():
    df = _frame([10, 20, 30], [20, 30, 40])
    with pytest.raises(DataError, match=r"in \[-1, 1\]"):
        simulate(df, [0, 2.0, 0])
    with pytest.raises(DataError, match="one target per bar"):
        simulate(df, [0, 1])
    with pytest.raises(DataError, match="shares no timestamps"):
        simulate(df, pd.Series([1.0, 1.0, 1.0], index=df.index.tz_localize(None)))
    with pytest.raises(SpecError, match="fees=-0.1 must be a fraction"):
        simulate(df, [0, 1, 0], fees=-0.1)


def test_live_pipeline_equals_batch_pipeline(tiny_model_dir, planted):
    """SignalModel -> Policy -> Risk: bar-by-bar (update/step) gives the backtest's targets."""
    from effnet_trading.model_zoo.runtime import Predictor
    from effnet_trading.strategies import Policy, Risk, SignalModel, performance_summary

    class Relabelled:  # the untrained tiny model always favours its 2nd class: call that one "sell"
        def __init__(self, inner):
            self.inner, self.spec, self.input_shape = inner, inner.spec, inner.input_shape
            self.class_names = ("buy", "sell", "hold")

        def predict(self, images, closes=None):
            return self.inner.predict(images, closes)

    frame = planted.iloc[2000:2400]
    sm = SignalModel(Relabelled(Predictor(tiny_model_dir)))
    policy = Policy(threshold=0.34, sizing="prob", class_names=sm.class_names)
    risk = Risk(vol_target=0.8, vol_window=24, stop_loss=0.004, cooldown_bars=2)
    batch = risk.apply(frame, policy.positions(sm.predict_proba(frame)))
    policy.reset()
    live = [risk.step(bar, policy.step(sm.update(bar))) for _, bar in frame.iterrows()]
    np.testing.assert_allclose(live, batch.to_numpy(), rtol=1e-6, atol=1e-9)
    assert (batch != 0).sum() > 100
    res = simulate(frame, batch, fees=0.001)
    summary = performance_summary(res)
    assert summary["bars"] == len(frame) and 0 < summary["exposure"] <= 1


# --- ruin: equity cannot go below zero (see "Ruin" in strategies.execution) ---------------------------------


def _ruin_loop(df, target, fees, slippage, cash):
    """Per-bar reference of the ruin rule, from the contract's words: before a bar's fill the account is
    marked at the open, after it at the bar's worst price (high for a short, low for a long); at <= 0 it
    is closed at the price where equity is 0 and holds nothing from then on."""
    o, h, lo, c = (df[k].to_numpy() for k in ("open", "high", "low", "close"))
    units, last, equity, ruined = 0.0, 0.0, [], None
    for t in range(len(df)):
        if ruined is None and cash + units * o[t] <= 0:
            ruined = t
        if ruined is None and t > 0 and target[t - 1] != last:
            want = target[t - 1] * (cash + units * o[t]) / o[t]
            trade = want - units
            fill = o[t] * (1 + slippage * np.sign(trade))
            if trade > 0 and trade * fill * (1 + fees) > cash:
                trade = max(cash, 0.0) / (fill * (1 + fees))
                want = units + trade
            cash -= trade * fill + fees * abs(trade) * fill
            units, last = want, target[t - 1]
        if ruined is None and cash + units * (h[t] if units < 0 else lo[t]) <= 0:
            ruined = t
        equity.append(0.0 if ruined is not None else cash + units * c[t])
    return np.array(equity), ruined


def _hl_frame(opens, closes, highs):
    df = _frame(opens, closes)
    df["high"] = np.maximum(np.asarray(highs, float), df[["open", "close"]].max(axis=1))
    return df


def test_short_through_a_doubling_is_liquidated_at_the_bankruptcy_price():
    # short 1x at the open of bar 1 (100); the high of bar 3 (205) passes the bankruptcy price (~199.8)
    df = _hl_frame([100, 100, 150, 190, 120, 110], [100, 150, 190, 180, 110, 100], [0, 0, 0, 205, 0, 0])
    target = [-1, -1, -1, -1, 1, 0]  # the buy decided at bar 3's close would fill at bar 4: never, after a ruin
    res = simulate(df, target, fees=0.001, slippage=0.0005, init_cash=1000.0)
    units = 1000.0 / 100
    cash = 1000.0 + units * 100 * (1 - 0.0005) * (1 - 0.001)
    bankrupt = cash / units
    assert 190 < bankrupt < 205  # the close of bar 3 (180) alone would not have shown it
    assert res.ruined_at == df.index[3]
    np.testing.assert_allclose(res.equity.to_numpy()[:3], [1000.0, cash - units * 150, cash - units * 190])
    assert res.equity.iloc[3:].tolist() == [0.0, 0.0, 0.0]
    assert res.returns.iloc[3] == -1.0 and res.returns.iloc[4:].tolist() == [0.0, 0.0]
    assert res.position.tolist() == [0, -1, -1, 0, 0, 0] and res.units.iloc[3:].tolist() == [0.0] * 3
    assert res.orders["via"].tolist() == ["next_open", "liquidation"]  # the later buy never fills
    last = res.orders.iloc[-1]
    assert last["side"] == "buy" and last["fee"] == 0.0 and last["time"] == df.index[3]
    np.testing.assert_allclose([last["price"], last["size"]], [bankrupt, units])
    tr = res.trades
    assert tr["status"].tolist() == ["liquidated"]
    np.testing.assert_allclose(tr["pnl"].iloc[0], -1000.0)  # everything, and no more
    ref, ruined = _ruin_loop(df, np.asarray(target, float), 0.001, 0.0005, 1000.0)
    assert ruined == 3
    np.testing.assert_allclose(res.equity.to_numpy(), ref, rtol=1e-12)


def test_a_gap_through_the_bankruptcy_price_ruins_at_the_open_and_skips_that_fill():
    # short at bar 1's open (100); bar 2 opens at 250, where the target to go flat was due to fill
    df = _hl_frame([100, 100, 250, 240], [100, 150, 240, 230], [0, 0, 0, 0])
    res = simulate(df, [-1, 0, 0, 0], fees=0.0, init_cash=1000.0)
    assert res.ruined_at == df.index[2]
    assert res.orders["via"].tolist() == ["next_open", "liquidation"]  # not the flattening order at 250
    np.testing.assert_allclose(res.orders["price"].iloc[-1], 200.0)  # cash 2000 / 10 units short
    assert res.equity.tolist() == [1000.0, 500.0, 0.0, 0.0]


def test_a_survivor_is_untouched_and_longs_are_never_ruined():
    df = _hl_frame([100, 100, 150, 190], [100, 150, 190, 150], [0, 0, 0, 199])  # high stays below ~199.8
    res = simulate(df, [-1, -1, -1, -1], fees=0.001, slippage=0.0005, init_cash=1000.0)
    assert res.ruined_at is None and res.equity.iloc[-1] > 0
    crash = _hl_frame([100, 100, 5, 3], [100, 5, 3, 3], [0, 0, 0, 0])
    res = simulate(crash, [1, 1, 1, 1], fees=0.001, init_cash=1000.0)
    assert res.ruined_at is None and (res.equity > 0).all()  # a long without leverage loses at most its cash


def _wild(seed: int, n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    """Wild prices (``wild_ohlcv``) and targets held 20 bars."""
    rng = np.random.default_rng(1000 + seed)
    return wild_ohlcv(seed, n), np.repeat(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], n // 20), 20)


@pytest.mark.parametrize("seed", range(6))
def test_ruin_matches_the_per_bar_reference_on_wild_prices(seed):
    df, target = _wild(seed)
    idx = df.index
    res = simulate(df, target, fees=0.001, slippage=0.0005, init_cash=1000.0)
    ref, ruined = _ruin_loop(df, target, 0.001, 0.0005, 1000.0)
    np.testing.assert_allclose(res.equity.to_numpy(), ref, rtol=1e-9, atol=1e-9)
    assert (res.equity >= 0).all()
    assert res.ruined_at == (None if ruined is None else idx[ruined])
    np.testing.assert_allclose(res.trades["pnl"].sum(), res.final_equity - 1000.0, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose((1 + res.returns).prod() * 1000.0, res.final_equity, atol=1e-9)


def test_some_wild_seeds_are_ruined():
    """The seeds above exercise both outcomes (otherwise the reference comparison proves little)."""
    survived = {
        simulate(*_wild(seed), fees=0.001, slippage=0.0005, init_cash=1000.0).ruined_at is None for seed in range(6)
    }
    assert survived == {True, False}


def _wick_frame():
    """Bar 3 opens at 120 and wicks to 260 before closing at 160."""
    o, c = np.array([100, 100, 140, 120, 150.0]), np.array([100, 140, 120, 160, 150.0])
    h = np.maximum(o, c)
    h[3] = 260.0
    idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
    return pd.DataFrame({"open": o, "high": h, "low": np.minimum(o, c), "close": c, "volume": 1.0}, index=idx)


def test_a_ruin_after_that_bars_fill_liquidates_the_new_position():
    # short 0.5 at 100 (5 units, cash 1,500); at bar 3's open (equity 900) short 1x: 7.5 units, cash 1,800;
    # the wick to 260 passes 1,800 / 7.5 = 240: the whole new position is liquidated at 240
    df = _wick_frame()
    res = simulate(df, [-0.5, -0.5, -1, -1, -1], fees=0.0, init_cash=1000.0)
    assert res.ruined_at == df.index[3]
    assert res.orders["via"].tolist() == ["next_open", "next_open", "liquidation"]
    np.testing.assert_allclose(res.orders[["size", "price"]].to_numpy(), [[5, 100], [2.5, 120], [7.5, 240]])
    np.testing.assert_allclose(res.trades["pnl"], [-1000.0])


def test_a_flip_on_the_ruin_bar_closes_the_long_and_liquidates_the_short():
    # long 10 units at 100 (cash 0); at bar 3's open (120) flip to -1: sell 20, cash 2,400; 2,400 / 10 = 240
    df = _wick_frame()
    res = simulate(df, [1, 1, -1, -1, -1], fees=0.0, init_cash=1000.0)
    assert res.ruined_at == df.index[3]
    tr = res.trades
    assert tr["direction"].tolist() == ["long", "short"] and tr["status"].tolist() == ["closed", "liquidated"]
    np.testing.assert_allclose(tr["pnl"], [200.0, -1200.0])
    np.testing.assert_allclose(tr["exit_price"], [120.0, 240.0])
    perf = performance_summary(res)
    assert perf["ruined"] and perf["trades"] == 2 and perf["win_rate"] == 0.5  # the liquidated trade counts
    assert perf["exposure"] == 0.4  # held during bars 1 and 2 only: nothing after the ruin
