"""Kill switch: limits checked after every decision; a breach flattens the position and stops the session."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pandas as pd

from effnet_trading.errors import SpecError

__all__ = ["KillSwitch"]


@dataclass
class KillSwitch:
    """max_position: largest |position value| / capital (e.g. 1.0); max_daily_loss: fraction of capital
    lost since the UTC day's first bar (e.g. 0.05); max_orders_per_hour: orders in any rolling hour of
    bar time; max_stale_s: seconds the feed may stay out of LIVE (or silent) before stopping."""

    max_position: float | None = None
    max_daily_loss: float | None = None
    max_orders_per_hour: int | None = None
    max_stale_s: float | None = None
    _day: object = field(default=None, repr=False)
    _day_start_equity: float = field(default=float("nan"), repr=False)
    _orders: deque = field(default_factory=deque, repr=False)

    def __post_init__(self):
        for name in ("max_position", "max_daily_loss", "max_orders_per_hour", "max_stale_s"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise SpecError(f"KillSwitch {name}={v} must be > 0 or None (off).")

    def check(
        self, bar_time: pd.Timestamp, *, equity: float, capital: float, position_value: float, ordered: bool
    ) -> str | None:
        """The reason to stop, or None. Call once per decided bar (``ordered``: an order was sent)."""
        day = bar_time.normalize()
        if day != self._day:
            self._day, self._day_start_equity = day, equity
        if ordered:
            self._orders.append(bar_time)
        while self._orders and bar_time - self._orders[0] >= pd.Timedelta(hours=1):
            self._orders.popleft()
        if self.max_position is not None and abs(position_value) > self.max_position * capital * (1 + 1e-9):
            return (
                f"position value {abs(position_value):.2f} > max_position {self.max_position:g} x capital {capital:.2f}"
            )
        if self.max_daily_loss is not None and self._day_start_equity - equity > self.max_daily_loss * capital:
            return (
                f"daily loss {self._day_start_equity - equity:.2f} > max_daily_loss {self.max_daily_loss:g} x capital "
                f"{capital:.2f}"
            )
        if self.max_orders_per_hour is not None and len(self._orders) > self.max_orders_per_hour:
            return f"{len(self._orders)} orders within an hour > max_orders_per_hour {self.max_orders_per_hour}"
        return None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("max_position", "max_daily_loss", "max_orders_per_hour", "max_stale_s")}
