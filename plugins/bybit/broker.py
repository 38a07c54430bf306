"""BybitBroker: market orders on Bybit testnet, demo trading or mainnet, through pybit's HTTP session.

* Every order carries a deterministic ``orderLinkId`` (strategy, symbol, bar time): a request
  retried after a timeout either places the order once or is answered "duplicate" (retCode
  110072), which the broker reads as "already placed" and looks the order up; never two orders.
* Position and open orders are reconciled from the exchange at start and after every reconnect.
* Quantities are floored to the instrument's lot step (instruments-info) and orders below the
  minimum are skipped and reported; prices round to the tick size.
* Sizing: a target of 1.0 is ``capital`` worth of the symbol at the last close.
* Equity, two figures (``snapshot``): ``equity`` is this session's estimate from its own fills, marked at
  the last close, which knows nothing of funding; ``exchange_equity`` is capital plus the symbol's PnL since
  the session started as the exchange books it (``cumRealisedPnl``, all-time realised PnL after trading fees
  and funding, plus ``unrealisedPnl``), read from /v5/position/list at the start, after every decided bar
  (``refresh``), after a kill and at each reconcile. The kill switch uses ``limit_equity``: the exchange's
  figure when this bar's read succeeded, else the estimate plus what it missed at the last good read.
* Category ``linear`` (USDT/USDC perpetuals and futures) only; ``spot`` and ``inverse`` are refused
  before any request (``check_traded_category``): see ``UNTRADED`` for why. Paper trading reads any
  category's data.
"""

from __future__ import annotations

import logging
import math
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import pandas as pd

from effnet_trading.errors import AuthError, ExchangeError, SpecError
from effnet_trading.plugins.bybit.bars import Bar
from effnet_trading.plugins.bybit.paper import LiveOrder
from effnet_trading.plugins.bybit.rest import BybitREST
from effnet_trading.strategies.execution import Fill

__all__ = ["BybitBroker", "round_to_step", "check_traded_category", "UNTRADED"]

log = logging.getLogger("effnet_trading.bybit.broker")
_DUPLICATE_LINK_ID = 110072


UNTRADED = {
    "spot": (
        "on spot a market Buy's qty is in the quote coin (USDT) unless marketUnit is set, /v5/position/list "
        "holds no spot positions to reconcile, and a short needs a margin loan"
    ),
    "inverse": (
        "inverse contracts (e.g. BTCUSD) are sized in USD contracts and settle in the coin, while this broker "
        "sizes a target as capital / price coins and counts equity in the quote currency"
    ),
}


def check_traded_category(category: str) -> None:
    """Refuse a category ``BybitBroker`` cannot trade correctly (``SpecError``, before any request)."""
    if category in UNTRADED:
        raise SpecError(
            f"category {category!r} is not traded by BybitBroker: {UNTRADED[category]}. Trade the linear "
            "perpetual (category 'linear', e.g. BTCUSDT), or paper-trade this category's data (--paper)."
        )
    if category != "linear":
        raise SpecError(f"category {category!r} is unknown; BybitBroker trades 'linear'.")


def round_to_step(value: float, step: str, rounding=ROUND_DOWN) -> str:
    """``value`` on the grid of ``step`` (a decimal string such as "0.001"), as an exact decimal string."""
    d, s = Decimal(repr(float(value))), Decimal(step)
    return str((d / s).to_integral_value(rounding=rounding) * s)


class BybitBroker:
    """Same interface as ``PaperBroker`` (``submit``, ``on_bar``, ``snapshot``, ``orders``, ``fills``, ``target``)."""

    def __init__(
        self, rest: BybitREST, symbol: str, category: str = "linear", *, capital: float, instrument: dict | None = None
    ):
        check_traded_category(category)
        if not capital > 0:
            raise SpecError(f"capital={capital} must be > 0 (the notional a target of 1.0 holds).")
        self.rest, self.symbol, self.category, self.capital = rest, symbol, category, float(capital)
        info = instrument or rest.instrument(symbol, category)
        lot, price = info.get("lotSizeFilter", {}), info.get("priceFilter", {})
        self.qty_step = str(lot.get("qtyStep") or lot.get("basePrecision") or "0.001")
        self.min_qty = float(lot.get("minOrderQty", self.qty_step))
        self.max_qty = float(lot.get("maxOrderQty", "inf"))
        self.tick = str(price.get("tickSize", "0.01"))
        self.units = 0.0
        self.target = 0.0
        self.cash_flow = 0.0  # -(signed qty x price) - fees, over this session's fills
        self.last_price = float("nan")
        self.bar = -1  # bars seen (on_bar calls) - 1: the Fill records' bar index in the session's stream
        self.orders: list[LiveOrder] = []
        self.fills: list[Fill] = []
        self.open_orders: list[dict] = []
        self.reconciles = 0
        self._pnl_start: float | None = None  # cumRealisedPnl + unrealisedPnl at the first read
        self.exchange_pnl: float | None = None  # that sum now, less its value at the start
        self.mark_price = float("nan")
        self.exchange_read_bar: int | None = None  # self.bar at the last successful position read
        self.read_budget_s = 5.0  # refresh's retry budget (plus one request's timeout): not the client's 60 s
        self._gap = 0.0  # exchange PnL - the estimate's PnL at the mark price, at the last read
        self.reconcile()

    # -- exchange state ------------------------------------------------------------------
    def reconcile(self) -> dict:
        """Read the position and open orders back from the exchange (start, and after each reconnect)."""
        self._read_position()
        self.open_orders = self.rest.call(
            "get_open_orders", "GET /v5/order/realtime", category=self.category, symbol=self.symbol
        ).get("list", [])
        self.reconciles += 1
        return {"units": self.units, "open_orders": len(self.open_orders)}

    def refresh(self) -> None:
        """Read the position and its PnL back after a decided bar (the live loop calls it off the event loop).
        A failed read is logged and the last one kept (``exchange_read_bar`` says which bar it is from); a
        rejected key stops the session."""
        try:
            self._read_position(budget_s=self.read_budget_s)
        except AuthError:
            raise
        except ExchangeError as exc:
            log.warning(
                "reading the %s position failed (%s); exchange_equity stays at bar %s's read",
                self.symbol,
                exc,
                self.exchange_read_bar,
            )

    def _read_position(self, budget_s: float | None = None) -> None:
        pos = self.rest.call(
            "get_positions", "GET /v5/position/list", budget_s=budget_s, category=self.category, symbol=self.symbol
        )
        units, cost, pnl, mark = 0.0, 0.0, 0.0, float("nan")
        rows = pos.get("list", [])
        booked = bool(rows)  # every row carries the exchange's PnL fields (a stub or an old answer may not)
        for p in rows:
            size = float(p.get("size") or 0.0)
            signed = size if p.get("side") == "Buy" else -size if p.get("side") == "Sell" else 0.0
            units += signed
            cost += signed * float(p.get("avgPrice") or "nan") if signed else 0.0
            if p.get("cumRealisedPnl") in (None, "") or (signed and p.get("unrealisedPnl") in (None, "")):
                booked = False
            else:
                pnl += float(p["cumRealisedPnl"]) + float(p.get("unrealisedPnl") or 0.0)
            mark = float(p.get("markPrice") or mark)
        if not math.isclose(units, self.units, abs_tol=1e-12):
            log.warning(
                "reconcile %s: exchange position %s units, local %s; taking the exchange's",
                self.symbol,
                units,
                self.units,
            )
            # units this session recorded no fill for (a position held before it started, a fill missed
            # across a reconnect) bring their cash flow, so equity is capital + their PnL, not minus
            # their notional: at the last price seen; before any bar at this read's mark price (so that both
            # equities start at capital), or without one at the position's average price
            ref = next(
                (r for r in (self.last_price, mark, cost / units if units else math.nan) if math.isfinite(r)), math.nan
            )
            if math.isfinite(ref):
                self.cash_flow -= (units - self.units) * ref
        self.units = units
        if booked:
            if self._pnl_start is None:
                self._pnl_start = pnl
            self.exchange_pnl, self.mark_price, self.exchange_read_bar = pnl - self._pnl_start, mark, self.bar
            if math.isfinite(mark):  # what the estimate misses (funding, mostly), for a bar whose read fails
                self._gap = self.exchange_pnl - (self.cash_flow + self.units * mark)

    def round_price(self, price: float) -> str:
        return round_to_step(price, self.tick, ROUND_HALF_UP)

    # -- broker interface ----------------------------------------------------------------
    def on_bar(self, bar: Bar) -> list[Fill]:
        self.bar += 1
        self.last_price = bar.close
        return []

    def submit(self, time, symbol: str, target: float, link_id: str) -> LiveOrder:
        """Move the position to ``target`` x capital with one market order (id ``link_id``)."""
        if not math.isfinite(self.last_price):
            raise SpecError("BybitBroker.submit before any bar: call on_bar(bar) first (the size needs a price).")
        want = float(target) * self.capital / self.last_price
        delta = want - self.units
        qty = round_to_step(min(abs(delta), self.max_qty), self.qty_step)
        order = LiveOrder(time, link_id, symbol, float(target), self.target)
        if float(qty) < self.min_qty:
            order = LiveOrder(
                time,
                link_id,
                symbol,
                float(target),
                self.target,
                f"skipped: {abs(delta):.6g} units < min {self.min_qty}",
            )
            self.orders.append(order)
            self.target = float(target)
            return order
        side = "Buy" if delta > 0 else "Sell"
        try:
            self.rest.call(
                "place_order",
                "POST /v5/order/create",
                category=self.category,
                symbol=symbol,
                side=side,
                orderType="Market",
                qty=qty,
                orderLinkId=link_id,
            )
        except AuthError:
            raise
        except ExchangeError as exc:
            if exc.code != _DUPLICATE_LINK_ID:
                order = LiveOrder(time, link_id, symbol, float(target), self.target, f"rejected: {exc}")
                self.orders.append(order)
                log.error("order %s rejected: %s", link_id, exc)
                return order
            log.warning("order %s was already placed (a retried request): not placing it again", link_id)
        self.orders.append(order)
        self.target = float(target)
        self._record_fill(time, link_id, float(target))
        return order

    def _record_fill(self, time, link_id: str, target: float) -> None:
        found = self.rest.call(
            "get_open_orders", "GET /v5/order/realtime", category=self.category, symbol=self.symbol, orderLinkId=link_id
        ).get("list", [])
        if not found or float(found[0].get("cumExecQty") or 0.0) == 0.0:
            return  # not filled yet; the next reconcile reads the position back
        o = found[0]
        qty, price, fee = float(o["cumExecQty"]), float(o["avgPrice"]), float(o.get("cumExecFee") or 0.0)
        signed = qty if o["side"] == "Buy" else -qty
        self.units += signed
        self.cash_flow -= signed * price + fee
        self.fills.append(
            Fill(
                self.bar + 1,  # decided at this bar's close, filled in the next
                signed,
                price,
                fee,
                target,
                self.units,
                self.capital + self.cash_flow,
                pd.Timestamp(int(o.get("createdTime", 0)), unit="ms", tz="UTC"),
                link_id,
                "exchange",
            )
        )

    def flatten(self, time, reason: str) -> LiveOrder:
        """Kill switch: cancel resting orders and close the position."""
        self.rest.call("cancel_all_orders", "POST /v5/order/cancel-all", category=self.category, symbol=self.symbol)
        stamp = int(pd.Timestamp(time).value // 1_000_000)
        return self.submit(time, self.symbol, 0.0, f"kill-{self.symbol}-{stamp}"[:36])

    def snapshot(self, price: float) -> dict:
        eq = self.capital + self.cash_flow + self.units * price
        booked = self.exchange_pnl is not None
        if not booked:
            limit = eq
        elif self.exchange_read_bar == self.bar:
            limit = self.capital + self.exchange_pnl
        else:  # the reads since failed: the estimate now, plus what it missed at the last good read
            limit = eq + self._gap
        return {
            "broker": "bybit",
            "network": self.rest.endpoints.network,
            "target": self.target,
            "units": self.units,
            "capital": self.capital,
            "equity": eq,
            "pnl": eq - self.capital,
            "exchange_equity": self.capital + self.exchange_pnl if booked else None,
            "exchange_pnl": self.exchange_pnl,
            "mark_price": self.mark_price if booked else None,
            "exchange_read_bar": self.exchange_read_bar,
            "limit_equity": limit,
            "orders": len(self.orders),
            "fills": len(self.fills),
            "open_orders": len(self.open_orders),
            "reconciles": self.reconciles,
            "qty_step": self.qty_step,
            "tick": self.tick,
        }

    def __repr__(self) -> str:
        return f"BybitBroker({self.symbol!r}, {self.category!r}, network={self.rest.endpoints.network!r}, units={self.units:.6g})"
