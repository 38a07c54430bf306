"""backtrader live trading on Bybit, in backtrader's store / data / broker style.

``BybitStore`` holds the endpoints and the REST session; ``store.getdata(...)`` gives a
``BybitData`` feed: the last ``backfill`` closed bars over REST (notification ``DELAYED``), then
the confirmed candles of the live feed (``LIVE``; ``DISCONNECTED`` while reconnecting, after
which missed bars are backfilled). ``store.getbroker()`` is backtrader's own ``BackBroker``
(paper: market orders fill at the next bar's open, as in the backtests). An unchanged
``EfficientNetStrategy`` runs on it with ``cerebro.run()``::

    store = BybitStore(network="testnet")
    cerebro = bt.Cerebro(cheat_on_open=True)
    cerebro.adddata(store.getdata(symbol="BTCUSDT", interval="5", backfill=300))
    cerebro.setbroker(store.getbroker(cash=10_000, commission=0.001))
    cerebro.addstrategy(EfficientNetStrategy, model="model_dir")
    cerebro.run()
"""

from __future__ import annotations

import asyncio
import queue
import threading

from effnet_trading.errors import require
from effnet_trading.plugins.bybit.endpoints import resolve_endpoints
from effnet_trading.plugins.bybit.feed import KlineFeed
from effnet_trading.plugins.bybit.rest import BybitREST

bt = require("backtrader", "backtrader")

__all__ = ["BybitStore", "BybitData"]


class BybitStore:
    """Endpoints + one REST session, shared by the data feeds (and a future exchange broker)."""

    def __init__(
        self,
        network: str = "mainnet",
        rest_url: str | None = None,
        ws_url: str | None = None,
        feed_options: dict | None = None,
    ):
        self.endpoints = resolve_endpoints(network, rest_url, ws_url)
        self.rest = BybitREST(self.endpoints)
        self.feed_options = feed_options or {}

    def getdata(self, **kwargs) -> BybitData:
        return BybitData(store=self, **kwargs)

    def getbroker(self, cash: float = 10_000.0, commission: float = 0.001, slippage: float = 0.0):
        """Paper broker: backtrader's BackBroker with cheat-on-open (orders sized and filled at the next open)."""
        broker = bt.brokers.BackBroker()
        broker.setcash(float(cash))
        broker.setcommission(commission=float(commission))
        broker.set_coo(True)
        if slippage:
            broker.set_slippage_perc(float(slippage), slip_open=True, slip_match=True, slip_out=True)
        return broker


class BybitData(bt.feed.DataBase):
    """Closed Bybit candles: history backfill (DELAYED), then live (LIVE / DISCONNECTED)."""

    params = (
        ("store", None),
        ("symbol", "BTCUSDT"),
        ("category", "linear"),
        ("interval", "5"),
        ("backfill", 300),  # closed bars loaded over REST before the live ones
        ("max_bars", None),  # live bars, then the feed ends (None: until stopped)
        ("timeout", 3600.0),  # seconds _load waits for the next bar before ending the feed
    )

    def islive(self) -> bool:
        return True

    def start(self) -> None:
        super().start()
        store = self.p.store
        if store is None:
            raise ValueError("BybitData needs store=BybitStore(...); use store.getdata(symbol=..., interval=...).")
        self._q: queue.Queue = queue.Queue()
        now = store.rest.server_time_ms()
        from effnet_trading.plugins.bybit.bars import interval_ms

        step = interval_ms(self.p.interval)
        last_closed = (now // step) * step - step
        history = store.rest.closed_klines(
            self.p.symbol,
            self.p.category,
            self.p.interval,
            last_closed - (int(self.p.backfill) - 1) * step,
            last_closed,
        )
        self.put_notification(self.DELAYED)
        for bar in history:
            self._q.put(("bar", bar))
        self._feed = KlineFeed(
            store.rest,
            store.endpoints,
            self.p.symbol,
            self.p.category,
            self.p.interval,
            last_start=history[-1].start if history else None,
            on_state=lambda state, reason: self._q.put(("state", state)),
            **store.feed_options,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run_feed, name=f"BybitData-{self.p.symbol}", daemon=True)
        self._thread.start()

    def _run_feed(self) -> None:
        async def pump():
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            gen = self._feed.bars()
            n = 0
            try:
                async for bar in gen:
                    self._q.put(("bar", bar))
                    n += 1
                    if self._stop.is_set() or (self.p.max_bars is not None and n >= self.p.max_bars):
                        break
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # noqa: BLE001 - reported through the queue, never lost
                self._q.put(("error", exc))
            finally:
                await gen.aclose()
                self._q.put(("end", None))

        asyncio.run(pump())

    def _load(self):
        while True:
            try:
                kind, payload = self._q.get(timeout=float(self.p.timeout))
            except queue.Empty:
                return False
            if kind == "state":
                self.put_notification(getattr(self, payload))
                continue
            if kind == "error":
                self.put_notification(self.DISCONNECTED)
                raise payload
            if kind == "end":
                return False
            bar = payload
            self.lines.datetime[0] = bt.date2num(bar.timestamp.tz_convert("UTC").tz_localize(None).to_pydatetime())
            self.lines.open[0], self.lines.high[0], self.lines.low[0] = bar.open, bar.high, bar.low
            self.lines.close[0], self.lines.volume[0] = bar.close, bar.volume
            self.lines.openinterest[0] = 0.0
            return True

    def stop(self) -> None:
        self._stop.set()
        loop, task = getattr(self, "_loop", None), getattr(self, "_task", None)
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop finished meanwhile
                pass
        if getattr(self, "_thread", None) is not None:
            self._thread.join(5)
        super().stop()
