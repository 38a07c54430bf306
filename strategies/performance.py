"""Performance statistics, annualised with the data's own calendar.

periods_per_year: by default the bars per year the data itself shows (bars / span of its
DatetimeIndex, in 365.25-day years), so 24/7 crypto (8766 hourly bars), 252-day equities and
24/5 FX each come out right; an explicit ``periods_per_year`` overrides it, and without a
DatetimeIndex ``interval`` gives a 24/7 calendar. Every summary states which was used.

Sharpe = mean(r) / std(r, ddof=1) * sqrt(periods_per_year); Sortino uses the downside
deviation sqrt(mean(min(r, 0)^2)) in place of the standard deviation (risk-free rate 0).
CAGR = (final / initial) ** (1 / years) - 1 with ``years`` the calendar time the returns cover;
below ``MIN_CAGR_DAYS`` it is None, with the reason in ``cagr_note``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError
from effnet_trading.imaging import infer_interval, parse_timeframe
from effnet_trading.strategies.execution import equity_returns

__all__ = [
    "bars_per_year",
    "periods_per_year",
    "drawdown",
    "sharpe_ratio",
    "performance_summary",
    "buy_and_hold",
    "YEAR",
    "MIN_CAGR_DAYS",
]

YEAR = pd.Timedelta(days=365.25)
MIN_CAGR_DAYS = 90.0  # an annualised growth rate of a shorter span says nothing (8 days at +3 % reads +300 %/year)


def bars_per_year(interval) -> float:
    """Bars in a 365.25-day, 24-hour year for a bar size ('1h', '5m', a Timedelta): '1h' -> 8766.
    Right for 24/7 markets only; ``periods_per_year(index)`` reads the calendar from the data."""
    step = parse_timeframe(interval) if not isinstance(interval, pd.Timedelta) else interval
    if step <= pd.Timedelta(0):
        raise DataError(f"bar interval {interval!r} must be positive.")
    return YEAR / step


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year observed in ``index``: (bars - 1) intervals over its span, in 365.25-day years.

    Hourly crypto (24/7) gives 8766, daily stock bars about 252, hourly FX (24/5) about 6200;
    missing bars lower it as they lower the bars a year really holds. Needs >= 2 bars."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        raise DataError("periods_per_year needs a DatetimeIndex of >= 2 bars; pass periods_per_year= explicitly.")
    ns = index.as_unit("ns").asi8
    span = int(ns[-1] - ns[0])
    if span <= 0:
        raise DataError("the index spans no time (unsorted or one timestamp); sort it or pass periods_per_year=.")
    count = len(index) - 1
    step = infer_interval(index)
    if span == count * step.value:  # a regular grid: exactly YEAR / step (parity with the live path)
        return float(YEAR / step)
    return count * YEAR.value / span


def _calendar(index, interval, given: float | None, n: int) -> tuple[float, str, float | None]:
    """-> (periods_per_year, how it was chosen, years the n returns cover or None if unknown)."""
    has_time = isinstance(index, pd.DatetimeIndex) and len(index) >= 2
    if given is not None:
        ppy, source = float(given), "given"
        if not (math.isfinite(ppy) and ppy > 0):
            raise DataError(f"periods_per_year={given!r} must be a positive number (e.g. 252 for daily stock bars).")
    elif has_time:
        ppy = periods_per_year(index)
        source = f"observed: {len(index)} bars from {index[0]} to {index[-1]}"
    elif interval is not None:
        ppy, source = bars_per_year(interval), f"{interval} bars on a 24/7 calendar (no timestamps)"
    else:
        raise DataError(
            "pass interval='1h' (the bar size) or periods_per_year=: neither can be read without a DatetimeIndex."
        )
    years = None
    if has_time:
        # each return spans one bar: n returns on len(index) stamps start one bar before index[0] when n == len
        span = index[-1] - index[0]
        if n >= len(index):
            span = span + infer_interval(index)
        years = span / YEAR
    elif n:
        years = n / ppy
    return ppy, source, years


def drawdown(equity: pd.Series) -> pd.Series:
    """Fractional drawdown from the running peak (<= 0): equity / cummax(equity) - 1."""
    values = np.asarray(equity, dtype=np.float64)
    out = values / np.maximum.accumulate(values) - 1.0
    return pd.Series(out, index=getattr(equity, "index", None), name="drawdown")


def _as_equity(series, kind: str, init: float | None) -> tuple[np.ndarray, np.ndarray]:
    """-> (equity including the starting value, per-period returns)."""
    values = np.asarray(series, dtype=np.float64)
    if kind == "auto":
        kind = _detect_kind(values)
    if kind == "returns":
        r = np.nan_to_num(values)
        return np.concatenate([[1.0], np.cumprod(1.0 + r)]), r
    if kind != "equity":
        raise DataError(f"kind={kind!r} must be 'auto', 'equity' or 'returns'.")
    start = values[0] if init is None else float(init)
    eq = np.concatenate([[start], values]) if init is not None else values
    return eq, equity_returns(eq[1:], eq[0])  # 0 once equity is 0: a ruined account holds nothing


def _detect_kind(values: np.ndarray) -> str:
    """'returns' if any value is negative; 'equity' if all are positive (or positive, then 0 to the end: a
    ruin) and one reaches 0.5 (no run of
    per-bar returns is +50 % on every bar); otherwise ambiguous: refuse."""
    finite = values[np.isfinite(values)]
    if len(finite) and finite.min() < 0:
        return "returns"
    ruined_tail = len(finite) and finite[0] > 0 and not (finite[np.argmax(finite <= 0) :] > 0).any()
    if len(finite) and finite.max() >= 0.5 and (finite.min() > 0 or ruined_tail):  # equity may end in 0s (ruin)
        return "equity"
    raise DataError(
        f"cannot tell whether these {len(values)} values are an equity curve or per-bar returns "
        f"(range {finite.min() if len(finite) else float('nan'):.4g} .. {finite.max() if len(finite) else float('nan'):.4g}); "
        "pass kind='equity' or kind='returns'."
    )


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
    periods_per_year: float | None = None,
    kind: str = "auto",
    init_cash: float | None = None,
) -> dict:
    """Summary statistics of an equity curve (or per-bar returns, or a ``SimResult``).

    periods_per_year: annualisation; default: observed from the DatetimeIndex (the data's own
    calendar). interval: the bar size ('1h'), used (as a 24/7 calendar) only without a
    DatetimeIndex. kind: 'equity', 'returns' or 'auto' (returns if any value is negative,
    equity if all are positive, or positive and then 0 to the end, and one reaches 0.5, else an
    error asking for kind).
    init_cash: the equity before the first bar (a SimResult supplies it).
    Returns total_return, cagr (None below 90 days, reason in cagr_note), sharpe, sortino,
    volatility (annualised), max_drawdown (<= 0), bars, days, periods_per_year and
    periods_per_year_source, trades, win_rate, exposure (share of bars with a position),
    turnover (sum of |change in position| in equity multiples) and turnover_per_year, and ruined
    (equity reached 0: see "Ruin" in ``strategies.execution``; returns after it count as 0).
    """
    if hasattr(equity_or_returns, "equity") and hasattr(equity_or_returns, "trades"):
        res = equity_or_returns
        trades = res.trades if trades is None else trades
        position = res.position if position is None else position
        init_cash = res.init_cash if init_cash is None else init_cash
        equity_or_returns, kind = res.equity, "equity"
    index = getattr(equity_or_returns, "index", None)
    eq, r = _as_equity(equity_or_returns, kind, init_cash)
    n = len(r)
    bpy, source, years = _calendar(index, interval, periods_per_year, n)
    total = eq[-1] / eq[0] - 1.0
    sd = r.std(ddof=1) if n > 1 else float("nan")
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) if n else float("nan")
    mean = r.mean() if n else float("nan")
    days = None if years is None else years * 365.25
    cagr, note = None, None
    if years is None or days is None or days < MIN_CAGR_DAYS:
        note = (
            f"not annualised: the span is {days:.1f} days, under {MIN_CAGR_DAYS:.0f}"
            if days is not None
            else "not annualised: no span"
        )
    elif eq[-1] <= 0:
        note = "equity reached zero"
    else:
        cagr = float((eq[-1] / eq[0]) ** (1.0 / years) - 1.0)
    out = {
        "total_return": float(total),
        "cagr": cagr,
        "sharpe": sharpe_ratio(r, bpy),
        "sortino": float(mean / downside * math.sqrt(bpy)) if n and downside > 0 else float("nan"),
        "volatility": float(sd * math.sqrt(bpy)) if n > 1 else float("nan"),
        "max_drawdown": float(drawdown(eq).min()),
        "bars": int(n),
        "days": None if days is None else float(days),
        "periods_per_year": float(bpy),
        "periods_per_year_source": source,
        "ruined": bool(n and eq.min() <= 0.0),  # equity reached 0 (see "Ruin" in strategies.execution)
    }
    if note:
        out["cagr_note"] = note
    if trades is not None:
        closed = trades[trades["status"] != "open"] if "status" in trades else trades  # closed or liquidated
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
