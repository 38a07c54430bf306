"""Risk: sizes the policy's targets (volatility targeting, max exposure) and applies stop-loss /
take-profit with a cooldown. Fees and slippage live in ``simulate``.

Per bar t (decision at the close of bar t, as in the execution contract):

1. Volatility targeting (``vol_target``, annualised, e.g. 0.5 = 50 %): realised volatility is the
   standard deviation (ddof=1) of the last ``vol_window`` close-to-close log returns up to and
   including bar t, annualised with the data's own calendar (``performance.periods_per_year``, as
   the summaries use), or ``periods_per_year`` when given; the target is scaled by
   ``vol_target / vol``. Until ``vol_window`` returns exist the target is 0 (flat).
2. The sized target is clipped to ``[-max_exposure, max_exposure]``.
3. Stop-loss / take-profit (fractions, e.g. 0.05) are checked on the **close** of each bar
   while a position is held. The entry price is the open of the bar at which the position was
   entered (the fill under the execution contract); a same-side resize keeps it. A long is
   stopped when ``close <= entry * (1 - stop_loss)`` and takes profit when
   ``close >= entry * (1 + take_profit)`` (mirrored for shorts). On a hit the target becomes 0
   at that bar (filled at the next open) and stays 0 for the next ``cooldown_bars`` decisions.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError, SpecError
from effnet_trading.imaging import parse_timeframe
from effnet_trading.strategies.execution import align_target
from effnet_trading.strategies.performance import bars_per_year, periods_per_year
from effnet_trading.strategies.signal import canonical_ohlcv, parse_bar

__all__ = ["Risk"]


class Risk:
    """Position sizing and protective exits; ``apply`` (history) and ``step`` (live) agree."""

    # live state, set by reset()
    _prev: float
    _held_before: float
    _entry: float
    _cool: int
    _returns: deque[float]
    _last_close: float | None
    _last_ts: pd.Timestamp | None
    _bpy_live: float | None

    def __init__(
        self,
        vol_target: float | None = None,
        vol_window: int = 100,
        max_exposure: float = 1.0,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        cooldown_bars: int = 0,
        interval=None,
        periods_per_year: float | None = None,
    ):
        """interval: the bar size, a 24/7 calendar (``bars_per_year``); periods_per_year: an explicit
        calendar (252 for daily stock bars); neither: observed from the data (live: from the bar
        spacing, 24/7, so pass periods_per_year for markets that close)."""
        if vol_target is not None and vol_target <= 0:
            raise SpecError(f"Risk vol_target={vol_target} must be > 0 (annualised volatility, e.g. 0.5) or None.")
        if int(vol_window) < 2:
            raise SpecError(f"Risk vol_window={vol_window} must be >= 2 returns.")
        if not 0 < max_exposure <= 1.0:
            raise SpecError(f"Risk max_exposure={max_exposure} must be in (0, 1] (a fraction of equity).")
        for name, v in (("stop_loss", stop_loss), ("take_profit", take_profit)):
            if v is not None and not v > 0:
                raise SpecError(f"Risk {name}={v} must be a positive fraction (e.g. 0.05 = 5 %) or None.")
        if periods_per_year is not None and not (math.isfinite(periods_per_year) and periods_per_year > 0):
            raise SpecError(f"Risk periods_per_year={periods_per_year} must be a positive number (e.g. 252) or None.")
        if int(cooldown_bars) < 0:
            raise SpecError(f"Risk cooldown_bars={cooldown_bars} must be >= 0.")
        self.vol_target = vol_target
        self.vol_window = int(vol_window)
        self.max_exposure = float(max_exposure)
        self.stop_loss = stop_loss
        self.take_profit = take_profit
        self.cooldown_bars = int(cooldown_bars)
        self.interval = None if interval is None else parse_timeframe(interval)
        self.periods_per_year = None if periods_per_year is None else float(periods_per_year)
        self.reset()

    # -- shared rules ------------------------------------------------------------------
    def _scale(self, target: float, vol: float, bpy: float) -> float:
        if self.vol_target is not None and target != 0.0:
            if not np.isfinite(vol):
                return 0.0
            ann = vol * math.sqrt(bpy)
            target = math.copysign(self.max_exposure, target) if ann == 0.0 else target * self.vol_target / ann
        return min(max(target, -self.max_exposure), self.max_exposure)

    def _exit_hit(self, held: float, entry: float, close: float) -> bool:
        if held == 0.0 or not np.isfinite(entry):
            return False
        move = close / entry - 1.0 if held > 0 else 1.0 - close / entry
        return (self.stop_loss is not None and move <= -self.stop_loss) or (
            self.take_profit is not None and move >= self.take_profit
        )

    def _advance(self, sized: float, open_: float, close: float) -> float:
        """One bar of the stateful exit rule; ``sized`` is this bar's sized target."""
        held = self._prev  # decided at the previous close, filled at this bar's open
        if held != 0.0 and (self._held_before == 0.0 or (held > 0) != (self._held_before > 0)):
            self._entry = open_
        elif held == 0.0:
            self._entry = float("nan")
        self._held_before = held
        if self._exit_hit(held, self._entry, close):
            out, self._cool = 0.0, self.cooldown_bars
        elif self._cool > 0:
            out, self._cool = 0.0, self._cool - 1
        else:
            out = sized
        self._prev = out
        return out

    # -- whole history ------------------------------------------------------------------
    def _vol(self, close: np.ndarray) -> np.ndarray:
        """``(T,)`` causal per-bar std of the last ``vol_window`` log returns (NaN before)."""
        r = np.diff(np.log(close))
        out = np.full(len(close), np.nan)
        w = self.vol_window
        if len(r) >= w:
            win = np.lib.stride_tricks.sliding_window_view(r, w)
            out[w:] = win.std(axis=1, ddof=1)
        return out

    def _bpy(self, index: pd.DatetimeIndex | None) -> float:
        if self.vol_target is None:
            return float("nan")
        if self.periods_per_year is not None:
            return self.periods_per_year
        if self.interval is not None:
            return bars_per_year(self.interval)
        if index is None or len(index) < 2:
            raise DataError(
                "Risk(vol_target=...) needs the calendar: pass Risk(periods_per_year=...) or at least 2 bars."
            )
        return periods_per_year(index)

    def apply(self, ohlcv, targets) -> pd.Series:
        """Sized, protected targets for a whole history (same index as ``ohlcv``). Starts flat."""
        frame = canonical_ohlcv(ohlcv)
        tgt = align_target(frame, targets)
        open_ = frame["open"].to_numpy()
        close = frame["close"].to_numpy()
        bpy = self._bpy(frame.index)
        vol = self._vol(close) if self.vol_target is not None else np.zeros(len(frame))
        sized = np.array([self._scale(t, v, bpy) for t, v in zip(tgt, vol)])
        if self.stop_loss is None and self.take_profit is None:
            return pd.Series(sized, index=frame.index, name="target")
        saved = self._state()
        self.reset()
        out = np.array([self._advance(s, o, c) for s, o, c in zip(sized, open_, close)])
        self._restore(saved)
        return pd.Series(out, index=frame.index, name="target")

    # -- one bar at a time --------------------------------------------------------------
    def step(self, bar, target: float) -> float:
        """The sized, protected target for one new closed bar (its open, close and timestamp)."""
        ts, row = parse_bar(bar)
        if self._bpy_live is None and self.vol_target is not None:
            if self.periods_per_year is not None:
                self._bpy_live = self.periods_per_year
            elif self.interval is not None:
                self._bpy_live = bars_per_year(self.interval)
            elif self._last_ts is not None:
                self._bpy_live = bars_per_year(ts - self._last_ts)
        self._last_ts = ts
        if self._last_close is not None:
            self._returns.append(math.log(row[3]) - math.log(self._last_close))
        self._last_close = row[3]
        t = 0.0 if target is None or target != target else float(target)
        vol = float("nan")
        if self.vol_target is not None and len(self._returns) == self.vol_window:
            vol = float(np.std(np.fromiter(self._returns, float, self.vol_window), ddof=1))
        sized = self._scale(t, vol, self._bpy_live if self._bpy_live is not None else float("nan"))
        if self.stop_loss is None and self.take_profit is None:
            return sized
        return self._advance(sized, row[0], row[3])

    def reset(self) -> None:
        """Back to flat with no history."""
        self._prev = 0.0
        self._held_before = 0.0
        self._entry = float("nan")
        self._cool = 0
        self._returns = deque(maxlen=self.vol_window)
        self._last_close = None
        self._last_ts = None
        self._bpy_live = None

    def _state(self) -> tuple:
        return (self._prev, self._held_before, self._entry, self._cool)

    def _restore(self, state: tuple) -> None:
        self._prev, self._held_before, self._entry, self._cool = state

    @classmethod
    def from_dict(cls, d: dict) -> Risk:
        known = {
            "vol_target",
            "vol_window",
            "max_exposure",
            "stop_loss",
            "take_profit",
            "cooldown_bars",
            "interval",
            "periods_per_year",
        }
        unknown = set(d) - known
        if unknown:
            raise SpecError(f"unknown Risk option(s) {sorted(unknown)}; known: {sorted(known)}.")
        return cls(**d)

    def to_dict(self) -> dict:
        """JSON-ready configuration (``Risk.from_dict`` inverts it)."""
        return {
            "vol_target": self.vol_target,
            "vol_window": self.vol_window,
            "max_exposure": self.max_exposure,
            "stop_loss": self.stop_loss,
            "take_profit": self.take_profit,
            "cooldown_bars": self.cooldown_bars,
            "interval": None if self.interval is None else f"{int(self.interval.total_seconds())}s",
            "periods_per_year": self.periods_per_year,
        }
