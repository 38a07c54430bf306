"""Performance statistics, annualised for the bar size (24/7 markets: 365.25 days a year).

Sharpe = mean(r) / std(r, ddof=1) * sqrt(bars_per_year); Sortino uses the downside
deviation sqrt(mean(min(r, 0)^2)) in place of the standard deviation (risk-free rate 0).
CAGR = (final / initial) ** (bars_per_year / bars) - 1, where ``bars`` counts return periods.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError
from effnet_trading.imaging import infer_interval, parse_timeframe

__all__ = ["bars_per_year", "drawdown", "sharpe_ratio", "performance_summary", "buy_and_hold", "YEAR"]

YEAR = pd.Timedelta(days=365.25)


def bars_per_year(interval) -> float:
    """Bars in a 365.25-day year for a bar size ('1h', '5m', a Timedelta): '1h' -> 8766."""
    step = parse_timeframe(interval) if not isinstance(interval, pd.Timedelta) else interval
    if step <= pd.Timedelta(0):
        raise DataError(f"bar interval {interval!r} must be positive.")
    return YEAR / step


def drawdown(equity: pd.Series) -> pd.Series:
    """Fractional drawdown from the running peak (<= 0): equity / cummax(equity) - 1."""
    values = np.asarray(equity, dtype=np.float64)
    out = values / np.maximum.accumulate(values) - 1.0
    return pd.Series(out, index=getattr(equity, "index", None), name="drawdown")


def _as_equity(series, kind: str, init: float | None) -> tuple[np.ndarray, np.ndarray]:
    """-> (equity including the starting value, per-period returns)."""
    values = np.asarray(series, dtype=np.float64)
    if kind == "auto":
        kind = "equity" if (len(values) and values.min() > 0 and np.median(values) > 0.5) else "returns"
    if kind == "returns":
        r = np.nan_to_num(values)
        return np.concatenate([[1.0], np.cumprod(1.0 + r)]), r
    if kind != "equity":
        raise DataError(f"kind={kind!r} must be 'auto', 'equity' or 'returns'.")
    start = values[0] if init is None else float(init)
    eq = np.concatenate([[start], values]) if init is not None else values
    return eq, eq[1:] / eq[:-1] - 1.0


def sharpe_ratio(returns: np.ndarray, bars_per_year: float = 1.0) -> float:
    """mean / std(ddof=1) of per-bar returns, times sqrt(bars_per_year) (1.0 = per bar); NaN if flat."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return float("nan")
    sd = r.std(ddof=1)
    return float(r.mean() / sd * math.sqrt(bars_per_year)) if sd > 0 else float("nan")


def performance_summary(
    equity_or_returns,
    *,
    trades: pd.DataFrame | None = None,
    position: pd.Series | None = None,
    interval=None,
    kind: str = "auto",
    init_cash: float | None = None,
) -> dict:
    """Summary statistics of an equity curve (or per-bar returns, or a ``SimResult``).

    interval: the bar size ('1h', Timedelta); inferred from a DatetimeIndex when omitted.
    kind: 'equity', 'returns' or 'auto' (equity when all values are positive and the median
    exceeds 0.5). init_cash: the equity before the first bar (a SimResult supplies it).
    Returns total_return, cagr, sharpe, sortino, volatility (annualised), max_drawdown (<= 0),
    bars, trades, win_rate, exposure (share of bars with a position), turnover (sum of
    |change in position| in equity multiples) and turnover_per_year.
    """
    if hasattr(equity_or_returns, "equity") and hasattr(equity_or_returns, "trades"):
        res = equity_or_returns
        trades = res.trades if trades is None else trades
        position = res.position if position is None else position
        init_cash = res.init_cash if init_cash is None else init_cash
        equity_or_returns, kind = res.equity, "equity"
    index = getattr(equity_or_returns, "index", None)
    if interval is None:
        if not isinstance(index, pd.DatetimeIndex):
            raise DataError("pass interval='1h' (the bar size): it cannot be inferred without a DatetimeIndex.")
        interval = infer_interval(index)
    bpy = bars_per_year(interval)
    eq, r = _as_equity(equity_or_returns, kind, init_cash)
    n = len(r)
    total = eq[-1] / eq[0] - 1.0
    sd = r.std(ddof=1) if n > 1 else float("nan")
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) if n else float("nan")
    mean = r.mean() if n else float("nan")
    out = {
        "total_return": float(total),
        "cagr": float((eq[-1] / eq[0]) ** (bpy / n) - 1.0) if n and eq[-1] > 0 else float("nan"),
        "sharpe": sharpe_ratio(r, bpy),
        "sortino": float(mean / downside * math.sqrt(bpy)) if n and downside > 0 else float("nan"),
        "volatility": float(sd * math.sqrt(bpy)) if n > 1 else float("nan"),
        "max_drawdown": float(drawdown(eq).min()),
        "bars": int(n),
    }
    if trades is not None:
        closed = trades[trades["status"] == "closed"] if "status" in trades else trades
        out["trades"] = int(len(trades))
        out["win_rate"] = float((closed["pnl"] > 0).mean()) if len(closed) else float("nan")
    if position is not None:
        pos = np.nan_to_num(np.asarray(position, dtype=np.float64))
        turnover = float(np.abs(np.diff(np.concatenate([[0.0], pos]))).sum())
        out["exposure"] = float((pos != 0).mean()) if len(pos) else float("nan")
        out["turnover"] = turnover
        out["turnover_per_year"] = turnover * bpy / len(pos) if len(pos) else float("nan")
    return out


def buy_and_hold(ohlcv, *, fees: float = 0.001, slippage: float = 0.0, init_cash: float = 10_000.0) -> pd.Series:
    """Equity of buying at the open of the first tradable bar (bar 1: decided at bar 0's close) and
    holding, under the same execution contract as ``simulate``."""
    from effnet_trading.strategies.execution import simulate
    from effnet_trading.strategies.signal import canonical_ohlcv

    frame = canonical_ohlcv(ohlcv)
    res = simulate(frame, np.ones(len(frame)), fees=fees, slippage=slippage, init_cash=init_cash)
    return res.equity.rename("buy_and_hold")
