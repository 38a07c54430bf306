"""Performance statistics against closed-form values on synthetic returns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from effnet_trading.errors import DataError
from effnet_trading.strategies import (
    YEAR,
    bars_per_year,
    buy_and_hold,
    drawdown,
    performance_summary,
    periods_per_year,
    simulate,
)


def test_bars_per_year():
    assert bars_per_year("1h") == pytest.approx(8766.0)
    assert bars_per_year("5m") == pytest.approx(8766.0 * 12)
    assert bars_per_year(pd.Timedelta(days=1)) == pytest.approx(365.25)
    with pytest.raises(DataError, match="not understood"):
        bars_per_year("fortnight")


def test_sharpe_sortino_closed_form():
    n = 1000
    r = np.tile([0.01, -0.005], n // 2)
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    s = performance_summary(pd.Series(r, index=idx), kind="returns")
    sd = 0.0075 * math.sqrt(n / (n - 1))
    assert s["sharpe"] == pytest.approx(0.0025 / sd * math.sqrt(8766), rel=1e-12)
    assert s["sortino"] == pytest.approx(0.0025 / (0.005 / math.sqrt(2)) * math.sqrt(8766), rel=1e-12)
    assert s["volatility"] == pytest.approx(sd * math.sqrt(8766), rel=1e-12)
    assert s["total_return"] == pytest.approx((1.01 * 0.995) ** (n // 2) - 1, rel=1e-9)
    # the same returns on 5m bars: Sharpe scales with sqrt(12)
    s5 = performance_summary(pd.Series(r), kind="returns", interval="5m")
    assert s5["sharpe"] == pytest.approx(s["sharpe"] * math.sqrt(12), rel=1e-12)


def test_cagr_and_drawdown_closed_form():
    g = 1e-4
    eq = 100.0 * (1 + g) ** np.arange(2 * 8766 + 1)  # exactly two years of hourly returns
    s = performance_summary(pd.Series(eq), interval="1h", kind="equity")
    assert s["cagr"] == pytest.approx((1 + g) ** 8766 - 1, rel=1e-9)
    assert s["max_drawdown"] == 0.0 and s["bars"] == 2 * 8766
    dd = drawdown(pd.Series([100.0, 120, 90, 130, 65]))
    np.testing.assert_allclose(dd, [0, 0, -0.25, 0, -0.5])
    assert performance_summary(pd.Series([100.0, 120, 90, 130, 65]), interval="1d")["max_drawdown"] == pytest.approx(
        -0.5
    )


def test_exposure_turnover_win_rate_from_sim():
    idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    o = np.array([100, 101, 102, 104, 103, 105.0])
    c = np.array([101, 102, 104, 103, 105, 106.0])
    df = pd.DataFrame(
        {"open": o, "high": np.maximum(o, c) + 1, "low": np.minimum(o, c) - 1, "close": c, "volume": 1.0}, index=idx
    )
    res = simulate(df, [1, 1, 0, -1, -1, 0], fees=0.001, init_cash=1000.0)
    s = performance_summary(res)
    assert s["trades"] == 2 and s["win_rate"] == 1.0  # one closed winner; the open short is not counted
    assert s["exposure"] == pytest.approx(4 / 6) and s["turnover"] == pytest.approx(3.0)
    assert s["total_return"] == pytest.approx(res.final_equity / 1000.0 - 1)
    assert s["bars"] == 6


def test_auto_kind_and_missing_interval():
    assert performance_summary(pd.Series([0.01, -0.02, 0.03]), interval="1h")["total_return"] == pytest.approx(
        1.01 * 0.98 * 1.03 - 1
    )
    with pytest.raises(DataError, match="interval"):
        performance_summary(pd.Series([0.01, 0.02]), kind="returns")


def test_buy_and_hold_closed_form(random_walk):
    df = random_walk.iloc[:500]
    eq = buy_and_hold(df, fees=0.001, init_cash=1000.0)
    units = 1000.0 / (df["open"].iloc[1] * 1.001)  # all the cash: notional + 0.1% fee = 1000
    expected = units * df["close"].to_numpy()
    expected[0] = 1000.0
    np.testing.assert_allclose(eq.to_numpy(), expected, rtol=1e-12)


# -- issue 11: the data's own calendar, CAGR from calendar time, unambiguous input kind ----------
def _us_trading_days(start="2020-01-01", end="2023-12-31"):
    from pandas.tseries.holiday import USFederalHolidayCalendar

    days = pd.bdate_range(start, end, tz="UTC")
    return days[~days.tz_localize(None).isin(USFederalHolidayCalendar().holidays(start, end))]


def _fx_hours(weeks=60):
    hours = pd.date_range("2021-01-04", periods=weeks * 7 * 24, freq="1h", tz="UTC")
    return hours[hours.day_of_week < 5]  # 24/5: Monday 00:00 .. Friday 23:00


@pytest.mark.parametrize(
    "index, expected, rel",
    [
        (pd.date_range("2024-01-01", periods=5000, freq="1h", tz="UTC"), 8766.0, 1e-12),  # 24/7 crypto
        (_us_trading_days(), 251.0, 0.01),  # US stocks, daily
        (_fx_hours(), 24 * 5 * 365.25 / 7, 0.01),  # FX 24/5, hourly
    ],
)
def test_periods_per_year_from_the_data_calendar(index, expected, rel):
    assert periods_per_year(index) == pytest.approx(expected, rel=rel)
    r = pd.Series(np.random.default_rng(1).normal(0.0005, 0.01, len(index)), index=index)
    s = performance_summary(r, kind="returns")
    assert s["periods_per_year"] == pytest.approx(expected, rel=rel) and s["periods_per_year_source"].startswith(
        "observed"
    )
    # the Sharpe ratio is annualised with that calendar, not with 365.25 days of 24 hours
    assert s["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(s["periods_per_year"]), rel=1e-9)
    forced = performance_summary(r, kind="returns", periods_per_year=252)
    assert forced["periods_per_year"] == 252 and forced["periods_per_year_source"] == "given"


def test_cagr_is_null_below_90_days_and_from_calendar_time():
    idx = pd.date_range("2024-01-01", periods=8 * 24, freq="1h", tz="UTC")  # 8 days
    eq = pd.Series(np.linspace(100, 130, len(idx)), index=idx)
    s = performance_summary(eq, kind="equity")
    assert s["cagr"] is None and "8.0 days, under 90" in s["cagr_note"] and s["total_return"] == pytest.approx(0.3)
    import json

    assert json.loads(json.dumps(s, allow_nan=True))["cagr"] is None
    # 2 calendar years of daily stock bars doubling: CAGR sqrt(2) - 1 whatever the bar count
    days = _us_trading_days("2021-01-01", "2022-12-31")
    eq = pd.Series(np.geomspace(100, 200, len(days)), index=days)
    span_years = (days[-1] - days[0]) / YEAR
    s = performance_summary(eq, kind="equity")
    assert s["cagr"] == pytest.approx(2 ** (1 / span_years) - 1, rel=1e-12) and "cagr_note" not in s


def test_falling_equity_curve_is_not_read_as_returns():
    eq = pd.Series(np.linspace(1.0, 0.3, 500), index=pd.date_range("2024-01-01", periods=500, freq="1D", tz="UTC"))
    s = performance_summary(eq)
    assert s["total_return"] == pytest.approx(-0.7) and s["max_drawdown"] == pytest.approx(-0.7)
    with pytest.raises(DataError, match="pass kind='equity' or kind='returns'"):
        performance_summary(pd.Series([0.01, 0.02, 0.0]), interval="1h")


def test_risk_vol_target_uses_the_same_calendar():
    from effnet_trading.strategies import Risk

    days = _us_trading_days("2021-01-01", "2022-12-31")
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
    df = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0}, index=days
    )
    sized = Risk(vol_target=0.2, vol_window=20, max_exposure=1.0).apply(df, np.full(len(df), 0.5))
    i = len(df) - 1
    vol = np.diff(np.log(close))[i - 20 : i].std(ddof=1) * math.sqrt(periods_per_year(days))
    assert sized.iloc[i] == pytest.approx(min(0.5 * 0.2 / vol, 1.0), rel=1e-9)


def test_statistics_match_vectorbt():
    """Sharpe, Sortino, max drawdown, CAGR and win rate against vectorbt's own implementations."""
    import vectorbt  # noqa: F401  (registers the .vbt accessor; run alone, no other test has imported it)

    from effnet_trading.plugins.vectorbt import portfolio_from_signals

    idx = pd.date_range("2023-01-01", periods=24 * 200, freq="1h", tz="UTC")  # 200 days of 24/7 bars
    r = pd.Series(np.random.default_rng(7).normal(0.0002, 0.01, len(idx)), index=idx)
    ours = performance_summary(r, kind="returns")
    ref = r.vbt.returns(freq="1h", year_freq="365.25D")
    assert ref.ann_factor == pytest.approx(ours["periods_per_year"], rel=1e-12)
    assert ours["sharpe"] == pytest.approx(ref.sharpe_ratio(), rel=1e-9)
    assert ours["sortino"] == pytest.approx(ref.sortino_ratio(), rel=1e-9)
    assert ours["max_drawdown"] == pytest.approx(ref.max_drawdown(), rel=1e-9)
    assert ours["cagr"] == pytest.approx(ref.annualized(), rel=1e-9)
    # on daily stock bars with the observed calendar given to vectorbt as its year
    days = _us_trading_days()
    r = pd.Series(np.random.default_rng(8).normal(0.0004, 0.012, len(days)), index=days)
    ours = performance_summary(r, kind="returns", periods_per_year=252)
    ref = r.vbt.returns(freq="1D", year_freq=pd.Timedelta(days=252))
    assert ours["sharpe"] == pytest.approx(ref.sharpe_ratio(), rel=1e-9)
    assert ours["sortino"] == pytest.approx(ref.sortino_ratio(), rel=1e-9)
    # win rate of the trades of one target path: vectorbt's closed trades vs simulate's
    close = 100 * np.exp(np.cumsum(np.random.default_rng(9).normal(0, 0.01, 2000)))
    bars = pd.DataFrame({"open": np.r_[100.0, close[:-1]], "close": close}, index=idx[:2000])
    bars["high"], bars["low"], bars["volume"] = (
        bars.max(axis=1) * 1.001,
        bars[["open", "close"]].min(axis=1) * 0.999,
        1.0,
    )
    bars = bars[["open", "high", "low", "close", "volume"]]
    target = pd.Series(np.sign(np.sin(np.arange(2000) / 15.0)), index=bars.index)
    ours = performance_summary(simulate(bars, target, fees=0.001))
    pf = portfolio_from_signals(bars, target, fees=0.001)
    assert ours["win_rate"] == pytest.approx(pf.trades.closed.win_rate(), rel=1e-12)
    assert ours["total_return"] == pytest.approx(pf.total_return(), rel=1e-9)


def test_a_ruined_curve_is_flagged_and_holds_nothing_after():
    idx = pd.date_range("2024-01-01", periods=6, freq="1D", tz="UTC")
    eq = pd.Series([100.0, 120.0, 60.0, 0.0, 0.0, 0.0], index=idx)
    for kind in ("equity", "auto"):  # an equity curve that ends at 0 is still read as equity
        s = performance_summary(eq, kind=kind, init_cash=100.0)
        assert s["ruined"] and s["total_return"] == -1.0 and s["max_drawdown"] == -1.0
        assert np.isfinite(s["sharpe"])  # the bars after the ruin return 0, not 0/0
    r = performance_summary(eq.pct_change().fillna(0.0).where(eq.shift(1) != 0, 0.0), kind="returns")
    assert r["ruined"] and r["total_return"] == -1.0
    assert not performance_summary(eq.iloc[:3], kind="equity", init_cash=100.0)["ruined"]


@pytest.mark.parametrize("values", [[0.0, 0.0, 0.6, 0.0, 0.1], [0.0, 10.0, 25.0, 30.0, 40.0], [5.0, 0.0, 3.0, 2.0]])
def test_auto_kind_still_refuses_zeros_that_are_not_a_ruin(values):
    """Zeros read as equity only as a run to the end after a positive start (a ruined account)."""
    with pytest.raises(DataError, match="cannot tell"):
        performance_summary(pd.Series(values), kind="auto", periods_per_year=365)
