"""Performance statistics against closed-form values on synthetic returns."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from effnet_trading.errors import DataError
from effnet_trading.strategies import buy_and_hold, bars_per_year, drawdown, performance_summary, simulate


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
    assert performance_summary(pd.Series([100.0, 120, 90, 130, 65]), interval="1d")["max_drawdown"] == pytest.approx(-0.5)


def test_exposure_turnover_win_rate_from_sim():
    idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    o = np.array([100, 101, 102, 104, 103, 105.0])
    c = np.array([101, 102, 104, 103, 105, 106.0])
    df = pd.DataFrame({"open": o, "high": np.maximum(o, c) + 1, "low": np.minimum(o, c) - 1, "close": c, "volume": 1.0}, index=idx)
    res = simulate(df, [1, 1, 0, -1, -1, 0], fees=0.001, init_cash=1000.0)
    s = performance_summary(res)
    assert s["trades"] == 2 and s["win_rate"] == 1.0  # one closed winner; the open short is not counted
    assert s["exposure"] == pytest.approx(4 / 6) and s["turnover"] == pytest.approx(3.0)
    assert s["total_return"] == pytest.approx(res.final_equity / 1000.0 - 1)
    assert s["bars"] == 6


def test_auto_kind_and_missing_interval():
    assert performance_summary(pd.Series([0.01, -0.02, 0.03]), interval="1h")["total_return"] == pytest.approx(1.01 * 0.98 * 1.03 - 1)
    with pytest.raises(DataError, match="interval"):
        performance_summary(pd.Series([0.01, 0.02]))


def test_buy_and_hold_closed_form(random_walk):
    df = random_walk.iloc[:500]
    eq = buy_and_hold(df, fees=0.001, init_cash=1000.0)
    units = 1000.0 / (df["open"].iloc[1] * 1.001)  # all the cash: notional + 0.1% fee = 1000
    expected = units * df["close"].to_numpy()
    expected[0] = 1000.0
    np.testing.assert_allclose(eq.to_numpy(), expected, rtol=1e-12)
