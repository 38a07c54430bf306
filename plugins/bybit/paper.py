"""PaperBroker: simulated fills under the project's execution contract (strategies/execution.py).

A target decided at the close of bar t is filled at the open of bar t+1: units =
``target * (cash + units * open) / open``, the fill price moved against the trade by
``slippage``, a fee of ``fees`` x notional, and a buy never spends more than the cash on hand.
Over the same bars and targets its fills equal ``simulate``'s orders (tested).

With ``book=`` (an ``OrderBook`` kept live by ``BookFeed``) an order instead fills at once, as a
taker, against the book's depth: the average price of the levels it takes (depth slippage), sized
from equity marked at the mid, with the same fee rate and cash limit. If the book is not usable
(out of sync, stale, one-sided) the order falls back to the next bar's open and says so (``via``).
With ``fill_model=`` (e.g. ``applications.orderbook.ImpactModel`` fitted on a recorded book) the
next-open fill price is ``fill_model(side, units, open)`` instead of the fixed ``slippage``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from effnet_trading.errors import SpecError
from effnet_trading.plugins.bybit.bars import Bar
from effnet_trading.strategies.execution import Fill

__all__ = ["LiveOrder", "PaperBroker", "order_link_id"]


def order_link_id(strategy: str, symbol: str, bar_start_ms: int) -> str:
    """Deterministic client order id (Bybit's ``orderLinkId``, <= 36 chars): the same decision
    always gets the same id, so a retried request can never place a second order."""
    tail = f"-{symbol}-{int(bar_start_ms)}"
    keep = max(1, 36 - len(tail))
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in strategy)[:keep] + tail


@dataclass(frozen=True)
class LiveOrder:
    """A request to move the position to ``target`` (fraction of equity), decided at bar ``time``."""

    time: object  # decision bar open time (UTC Timestamp)
    order_link_id: str
    symbol: str
    target: float
    previous: float
    status: str = "submitted"

    def as_row(self) -> dict:
        return asdict(self)


class PaperBroker:
    """Fills targets at the next bar's open with fees and slippage; tracks units, cash and PnL."""

    def __init__(
        self,
        init_cash: float = 10_000.0,
        fees: float = 0.001,
        slippage: float = 0.0,
        book=None,
        step_ms: int = 0,
        fill_model=None,
    ):
        if init_cash <= 0:
            raise SpecError(f"init_cash={init_cash} must be > 0.")
        if not (0.0 <= fees < 1.0 and 0.0 <= slippage < 1.0):
            raise SpecError(f"fees={fees} and slippage={slippage} must be fractions in [0, 1), e.g. 0.001.")
        self.init_cash, self.fees, self.slippage = float(init_cash), float(fees), float(slippage)
        self.cash, self.units = self.init_cash, 0.0
        self.target = 0.0  # last requested target
        self._pending: LiveOrder | None = None
        self.orders: list[LiveOrder] = []
        self.fills: list[Fill] = []
        self.book, self.step_ms = book, int(step_ms)
        self.last_price = float("nan")
        self.bar = -1  # bars seen (on_bar calls) - 1: the Fill records' bar index in the session's stream
        self.book_fallbacks = 0  # orders the book could not fill (not usable), filled at the next open instead
        self.fill_model = fill_model  # (side, units, open) -> fill price, e.g. applications.orderbook.ImpactModel

    def submit(self, time, symbol: str, target: float, link_id: str) -> LiveOrder:
        """Request ``target`` (decided at the close of bar ``time``); filled by the next ``on_bar``."""
        order = LiveOrder(time, link_id, symbol, float(target), self.target)
        if any(o.order_link_id == link_id for o in self.orders[-3:]):
            return order  # the same decision again (a retry): never a second order
        self.orders.append(order)
        self.target = float(target)
        if self.book is not None:
            if self.book.usable:
                self._fill_from_book(order)
                return order
            self.book_fallbacks += 1
        self._pending = order  # a newer decision replaces an unfilled one, as in the backtests
        return order

    def _fill_from_book(self, order: LiveOrder) -> None:
        from effnet_trading.plugins.bybit.book import walk_book

        mid = self.book.mid
        delta = order.target * (self.cash + self.units * mid) / mid - self.units
        if delta == 0.0:
            return
        side = "buy" if delta > 0 else "sell"
        price, filled = walk_book(self.book, side, abs(delta))
        if side == "buy" and filled * price * (1.0 + self.fees) > self.cash:
            price, filled = walk_book(self.book, side, max(self.cash, 0.0) / (price * (1.0 + self.fees)))
        if filled <= 0.0:
            return
        signed = filled if side == "buy" else -filled
        fee = self.fees * filled * price
        self.cash -= signed * price + fee
        self.units += signed
        t = order.time + pd.Timedelta(milliseconds=self.step_ms)  # filled as the next bar opens
        self.fills.append(
            Fill(self.bar + 1, signed, price, fee, order.target, self.units, self.cash, t, order.order_link_id, "book")
        )

    def on_bar(self, bar: Bar) -> list[Fill]:
        """A new bar opened: fill the pending order at its open."""
        self.bar += 1
        self.last_price = bar.close
        order, self._pending = self._pending, None
        if order is None:
            return []
        open_ = bar.open
        equity = self.cash + self.units * open_
        new_units = order.target * equity / open_
        delta = new_units - self.units
        if self.fill_model is not None and delta != 0.0:
            price = float(self.fill_model("buy" if delta > 0 else "sell", abs(delta), open_))
        else:
            price = open_ * (1.0 + self.slippage * np.sign(delta))
        if delta > 0.0 and delta * price * (1.0 + self.fees) > self.cash:
            delta = max(self.cash, 0.0) / (price * (1.0 + self.fees))
            new_units = self.units + delta
        if delta == 0.0:
            return []
        fee = self.fees * abs(delta) * price
        self.cash -= delta * price + fee
        self.units = new_units
        fill = Fill(
            self.bar,
            float(delta),
            float(price),
            float(fee),
            order.target,
            self.units,
            self.cash,
            bar.timestamp,
            order.order_link_id,
        )
        self.fills.append(fill)
        return [fill]

    def flatten(self, time, reason: str) -> LiveOrder | None:
        """Kill switch: close the position now at the last close (with slippage and fees)."""
        self._pending = None
        self.target = 0.0
        if self.units == 0.0:
            return None
        order = LiveOrder(
            time, f"kill-{int(pd.Timestamp(time).value // 1_000_000)}", "", 0.0, self.target, f"kill: {reason}"
        )
        self.orders.append(order)
        delta = -self.units
        price = self.last_price * (1.0 - self.slippage * (1 if delta < 0 else -1))
        fee = self.fees * abs(delta) * price
        self.cash -= delta * price + fee
        self.units = 0.0
        self.fills.append(Fill(self.bar, delta, price, fee, 0.0, 0.0, self.cash, time, order.order_link_id, "kill"))
        return order

    def equity(self, price: float) -> float:
        return self.cash + self.units * price

    def snapshot(self, price: float) -> dict:
        eq = self.equity(price)
        return {
            "broker": "paper",
            "target": self.target,
            "units": self.units,
            "cash": self.cash,
            "equity": eq,
            "pnl": eq - self.init_cash,
            "return": eq / self.init_cash - 1.0,
            "orders": len(self.orders),
            "fills": len(self.fills),
            "pending": self._pending is not None,
            "fill_model": "book" if self.book is not None else "next_open",
            "book_fallbacks": self.book_fallbacks,
        }

    def __repr__(self) -> str:
        return f"PaperBroker(cash={self.cash:.2f}, units={self.units:.6g}, fees={self.fees}, slippage={self.slippage})"
