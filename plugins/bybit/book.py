"""A local order book from Bybit's ``orderbook.<depth>.<symbol>`` stream: snapshot + deltas.

Kept sorted (``bisect``), sequence-checked on ``u``, reset on any snapshot and on ``u == 1``
(Bybit's service restart); a delta that deletes a level we do not hold is counted, not fatal; a
gap in ``u`` or a crossed book marks it out of sync (``needs_snapshot``) so the feed re-subscribes.
pybit merges deltas into an unsorted shared dict, crashes on a missing level and never checks
``u`` (``USER_PAINS.md``); this class is the replacement.
"""

from __future__ import annotations

import asyncio
import bisect
import time

import numpy as np

from effnet_trading.errors import DataError
from effnet_trading.plugins.bybit.feed import DELAYED, LIVE, _Resync, _TopicStream

__all__ = ["OrderBook", "BookFeed", "walk_book"]


class _Side:
    """Price levels of one side, prices kept sorted ascending."""

    def __init__(self):
        self.prices: list[float] = []
        self.sizes: dict[float, float] = {}

    def clear(self) -> None:
        self.prices.clear()
        self.sizes.clear()

    def set(self, price: float, size: float) -> bool:
        """Set a level; size 0 deletes. Returns False when deleting a level that is not there."""
        if size == 0.0:
            if price not in self.sizes:
                return False
            del self.sizes[price]
            self.prices.pop(bisect.bisect_left(self.prices, price))
            return True
        if price not in self.sizes:
            bisect.insort(self.prices, price)
        self.sizes[price] = size
        return True


class OrderBook:
    """Best bid/ask, sorted levels and health of one symbol's book (``apply`` each stream message)."""

    def __init__(self, symbol: str, stale_after_s: float = 5.0, clock=time.monotonic):
        self.symbol = symbol
        self.stale_after_s = float(stale_after_s)
        self.clock = clock
        self.bids, self.asks = _Side(), _Side()
        self.u: int | None = None
        self.seq: int | None = None
        self.ts: int | None = None  # exchange ms of the last message
        self.updated: float | None = None  # local clock of the last applied message
        self.needs_snapshot = True
        self.stats = {
            "snapshots": 0,
            "deltas": 0,
            "gaps": 0,
            "stale_deltas": 0,
            "missing_deletes": 0,
            "crossed": 0,
            "malformed": 0,
            "ignored_until_snapshot": 0,
        }

    # -- updates -------------------------------------------------------------------------
    def apply(self, msg: dict) -> str:
        """Apply one stream message; returns ``ok``, ``snapshot``, ``ignored``, ``gap``, ``crossed`` or ``malformed``."""
        try:
            kind = msg["type"]
            data = msg["data"]
            u = int(data["u"])
            bids = [(float(p), float(s)) for p, s in data.get("b", [])]
            asks = [(float(p), float(s)) for p, s in data.get("a", [])]
            if kind not in ("snapshot", "delta") or any(p <= 0 or s < 0 for p, s in bids + asks):
                raise ValueError(kind)
        except (KeyError, TypeError, ValueError):
            self.stats["malformed"] += 1
            return "malformed"
        if kind == "snapshot" or u == 1:
            self.bids.clear()
            self.asks.clear()
            self.stats["snapshots"] += 1
            self.needs_snapshot = False
        elif self.needs_snapshot:
            self.stats["ignored_until_snapshot"] += 1
            return "ignored"
        elif u <= self.u:  # type: ignore[operator]
            self.stats["stale_deltas"] += 1  # an old or repeated delta: already applied
            return "ignored"
        elif u != self.u + 1:  # type: ignore[operator]
            self.stats["gaps"] += 1
            self.needs_snapshot = True
            return "gap"
        else:
            self.stats["deltas"] += 1
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, s in levels:
                if not side.set(p, s):
                    self.stats["missing_deletes"] += 1
        self.u, self.seq, self.ts = u, data.get("seq"), msg.get("ts")
        self.updated = self.clock()
        if self.bids.prices and self.asks.prices and self.bids.prices[-1] >= self.asks.prices[0]:
            self.stats["crossed"] += 1
            self.needs_snapshot = True
            return "crossed"
        return "snapshot" if kind == "snapshot" or u == 1 else "ok"

    # -- reads ---------------------------------------------------------------------------
    @property
    def best_bid(self) -> float:
        return self.bids.prices[-1] if self.bids.prices else float("nan")

    @property
    def best_ask(self) -> float:
        return self.asks.prices[0] if self.asks.prices else float("nan")

    @property
    def mid(self) -> float:
        return (self.best_bid + self.best_ask) / 2.0

    def levels(self, side: str, n: int | None = None) -> np.ndarray:
        """``(n, 2)`` price, size from the best level outwards (bids descending, asks ascending)."""
        s = self.bids if side == "bid" else self.asks
        prices = s.prices[::-1] if side == "bid" else s.prices
        prices = prices[:n] if n is not None else prices
        return np.array([[p, s.sizes[p]] for p in prices], dtype=np.float64).reshape(-1, 2)

    @property
    def stale(self) -> bool:
        return self.updated is None or self.clock() - self.updated > self.stale_after_s

    @property
    def usable(self) -> bool:
        """In sync, fresh and two-sided."""
        return not self.needs_snapshot and not self.stale and bool(self.bids.prices) and bool(self.asks.prices)

    def __repr__(self) -> str:
        return f"OrderBook({self.symbol!r}, bid={self.best_bid}, ask={self.best_ask}, u={self.u}, usable={self.usable})"


def walk_book(book: OrderBook, side: str, units: float) -> tuple[float, float]:
    """Fill ``units`` (> 0) as a taker: buys take asks upwards, sells take bids downwards.

    Returns (average fill price, units filled); fills less than asked when the book is too thin.
    """
    if units <= 0:
        raise DataError(f"units={units} must be > 0 to walk the book.")
    if not book.usable:
        raise DataError(
            f"order book of {book.symbol} is not usable (out of sync, stale or one-sided); "
            "wait for a fresh snapshot or fill at the next bar's open instead."
        )
    from effnet_trading.applications.orderbook import walk_depth

    levels = book.levels("ask" if side == "buy" else "bid")
    price, filled = walk_depth(levels[:, 0], levels[:, 1], units)
    return float(price), float(filled)


class BookFeed(_TopicStream):
    """Keeps ``self.book`` current from ``orderbook.<depth>.<symbol>``; ``await feed.run()`` until cancelled.

    A gap in ``u`` or a crossed book re-subscribes (a fresh snapshot); a malformed message or a
    delete of a missing level is counted and skipped; the stream never dies of one bad message.
    """

    what = "order-book stream"

    def __init__(
        self,
        endpoints,
        symbol: str,
        category: str = "linear",
        depth: int = 50,
        *,
        stale_after_s: float = 10.0,
        max_reconnects: int = 10,
        reconnect=None,
        ping_interval_s: float = 20.0,
        open_timeout_s: float = 10.0,
        on_state=None,
    ):
        self.symbol, self.depth = symbol, int(depth)
        self.book = OrderBook(symbol, stale_after_s=stale_after_s)
        self._init_stream(
            endpoints,
            category,
            f"orderbook.{self.depth}.{symbol}",
            stale_after_s,
            max_reconnects,
            reconnect,
            ping_interval_s,
            open_timeout_s,
            on_state,
        )

    def _on_connect(self) -> None:
        self.book.needs_snapshot = True  # deltas wait for the new subscription's snapshot

    async def _handle(self, msg: dict, received: float) -> None:
        result = self.book.apply(msg)
        if result == "malformed":
            self.stats.malformed += 1
        elif result in ("gap", "crossed"):
            raise _Resync(
                f"order book {result} at u={msg.get('data', {}).get('u')}: re-subscribing for a fresh snapshot"
            )

    async def run(self) -> None:
        """Run until cancelled; raises ``TransientExchangeError`` when reconnecting fails ``max_reconnects`` times."""
        self._queue = asyncio.Queue()
        self._closing = False
        self._set_state(DELAYED, "connecting")
        reader = asyncio.create_task(self._reader())
        try:
            while True:
                kind, payload = await self._queue.get()
                if kind == "failed":
                    raise payload
                self._set_state(LIVE, "subscribed")
        finally:
            self._closing = True
            if self._ws is not None:
                self._ws.transport.abort()
            reader.cancel()
            try:
                await asyncio.wait_for(reader, timeout=2.0)
            except BaseException:  # noqa: BLE001 - leaving anyway
                pass
