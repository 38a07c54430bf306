"""Kline intervals and the one bar record shared by the REST history, the live feed and the brokers."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from effnet_trading.errors import DataError, SpecError

__all__ = ["INTERVALS", "interval_ms", "Bar", "bar_from_rest", "bar_from_ws", "bars_to_frame"]

# Bybit interval string -> bar length in ms (W/M are calendar-based and not supported here)
INTERVALS = {**{str(m): m * 60_000 for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)}, "D": 86_400_000}


def interval_ms(interval: str | int) -> int:
    """Bybit interval ("1", "5", "60", "D", ...) -> bar length in milliseconds."""
    key = str(interval).upper() if str(interval).upper() == "D" else str(interval)
    if key not in INTERVALS:
        raise SpecError(
            f"interval {interval!r} is not a Bybit kline interval; use one of {list(INTERVALS)} (minutes, or D)."
        )
    return INTERVALS[key]


@dataclass(frozen=True)
class Bar:
    """One kline: ``start`` = open time in ms since the epoch (UTC); prices as floats."""

    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    turnover: float = 0.0
    confirm: bool = True
    source: str = "rest"  # rest | ws
    received: float = field(default=0.0, compare=False)  # time.perf_counter() when the message arrived

    @property
    def timestamp(self) -> pd.Timestamp:
        return pd.Timestamp(self.start, unit="ms", tz="UTC")

    def as_dict(self) -> dict:
        """The mapping ``SignalModel.update`` / ``Risk.step`` take."""
        return {
            "timestamp": self.timestamp,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
        }


def bar_from_rest(row, received: float = 0.0) -> Bar:
    """A ``/v5/market/kline`` list row ``[start, open, high, low, close, volume, turnover]`` (strings)."""
    try:
        return Bar(
            int(row[0]),
            float(row[1]),
            float(row[2]),
            float(row[3]),
            float(row[4]),
            float(row[5]),
            float(row[6]) if len(row) > 6 else 0.0,
            True,
            "rest",
            received,
        )
    except (TypeError, ValueError, IndexError) as exc:
        raise DataError(f"kline row {row!r} is not [start, open, high, low, close, volume, turnover] ({exc}).") from exc


def bar_from_ws(item: dict, received: float = 0.0) -> Bar:
    """One entry of a ``kline.<interval>.<symbol>`` message's ``data`` list."""
    try:
        return Bar(
            int(item["start"]),
            float(item["open"]),
            float(item["high"]),
            float(item["low"]),
            float(item["close"]),
            float(item["volume"]),
            float(item.get("turnover", 0.0)),
            bool(item.get("confirm", False)),
            "ws",
            received,
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise DataError(f"kline message entry {item!r} lacks start/open/high/low/close/volume ({exc}).") from exc


def bars_to_frame(bars) -> pd.DataFrame:
    """Bars -> OHLCV frame indexed by UTC open time (``timestamp``), the project's canonical columns."""
    bars = list(bars)
    idx = pd.DatetimeIndex(pd.to_datetime([b.start for b in bars], unit="ms", utc=True), name="timestamp")
    return pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        },
        index=idx,
    )
