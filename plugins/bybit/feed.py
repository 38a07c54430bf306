"""Live kline feed: confirmed candles only, in order, each once, gaps backfilled over REST.

The feed owns its WebSocket (``websockets``), its reconnects and its staleness timer instead of
pybit's ``WebSocket`` manager, whose measured faults (``USER_PAINS.md``) it would have to patch
around: no backfill after a reconnect, a silent give-up after 10 retries, a stream killed by one
exception, unbounded waits in ``subscribe``/``exit``, no stale-feed detection.

State follows backtrader's live-feed notifications: ``DELAYED`` (loading/backfilling history),
``LIVE``, ``DISCONNECTED`` (socket lost or stale; reconnecting with bounded backoff). When the
retries are spent the feed raises ``TransientExchangeError``: it never stops silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from effnet_trading.errors import DataError, TransientExchangeError, require
from effnet_trading.plugins.bybit.bars import Bar, bar_from_ws, interval_ms
from effnet_trading.plugins.bybit.endpoints import Endpoints
from effnet_trading.plugins.bybit.rest import BybitREST, RetryPolicy

__all__ = ["KlineFeed", "FeedStats", "DELAYED", "LIVE", "DISCONNECTED"]

log = logging.getLogger("effnet_trading.bybit.feed")

DELAYED, LIVE, DISCONNECTED = "DELAYED", "LIVE", "DISCONNECTED"


@dataclass
class FeedStats:
    """Counters and the state log of one feed (written to status.json)."""

    state: str = DELAYED
    transitions: list = field(default_factory=list)  # [(unix time, state, reason)]
    ws_bars: int = 0  # confirmed bars taken from the stream
    backfilled: int = 0  # bars taken from REST (gaps, reconnects)
    duplicates: int = 0  # confirmed candles seen again (dropped)
    unconfirmed: int = 0  # in-progress candle updates (ignored)
    reconnects: int = 0
    stale: int = 0  # times the stream went quiet for stale_after_s
    malformed: int = 0  # messages that could not be parsed (skipped)
    callback_errors: int = 0
    gaps: list = field(default_factory=list)  # bar times REST could not supply (should stay empty)


class _TopicStream:
    """One subscribed topic on a public stream: connect, subscribe (bounded), ping, staleness timer,
    bounded reconnects with backoff, state log. Subclasses handle messages (``_handle``)."""

    what = "stream"

    def _init_stream(
        self,
        endpoints: Endpoints,
        category: str,
        topic: str,
        stale_after_s: float,
        max_reconnects: int,
        reconnect: RetryPolicy | None,
        ping_interval_s: float,
        open_timeout_s: float,
        on_state,
    ) -> None:
        self.endpoints, self.category, self.topic = endpoints, category, topic
        self.url = endpoints.public_ws(category)
        self.stale_after_s = float(stale_after_s)
        self.max_reconnects = int(max_reconnects)
        self.reconnect = reconnect or RetryPolicy(base_s=0.5, cap_s=30.0, total_s=float("inf"))
        self.ping_interval_s = float(ping_interval_s)
        self.open_timeout_s = float(open_timeout_s)
        self.on_state = on_state
        self.stats = FeedStats()
        self._queue: asyncio.Queue | None = None
        self._closing = False
        self._ws = None

    # -- state ---------------------------------------------------------------------------
    def _set_state(self, state: str, reason: str) -> None:
        if state == self.stats.state and self.stats.transitions:
            return
        self.stats.state = state
        self.stats.transitions.append((time.time(), state, reason))
        log.info("feed %s: %s (%s)", self.topic, state, reason)
        if self.on_state is not None:
            try:
                self.on_state(state, reason)
            except Exception:  # noqa: BLE001 - a user callback must never kill the feed
                self.stats.callback_errors += 1
                log.exception("on_state callback raised; ignored")

    # -- WebSocket reader ----------------------------------------------------------------
    async def _reader(self) -> None:
        client = require("websockets.asyncio.client", "live")
        failures = 0
        while True:
            try:
                async with client.connect(
                    self.url,
                    open_timeout=self.open_timeout_s,
                    proxy=None,
                    ping_interval=None,
                    close_timeout=1.0,
                    max_queue=None,
                ) as ws:
                    self._ws = ws
                    await ws.send(json.dumps({"op": "subscribe", "args": [self.topic], "req_id": self.topic}))
                    await self._await_subscribed(ws)
                    self._on_connect()
                    failures = 0
                    await self._queue.put(("connected", None))
                    await self._pump(ws)
                reason = "server closed the stream"
            except asyncio.CancelledError:
                raise
            except (_Stale, _Resync) as exc:
                self.stats.stale += isinstance(exc, _Stale)
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001 - every socket failure means: reconnect
                if self._closing:
                    return  # closing the socket on cancellation may surface as ConnectionClosed
                reason = f"{type(exc).__name__}: {exc}"[:200]
                failures += 1
            if self._closing:
                return
            self._set_state(DISCONNECTED, reason)
            if failures > self.max_reconnects:
                await self._queue.put(
                    (
                        "failed",
                        TransientExchangeError(
                            f"{self.what} {self.url} ({self.topic}) failed {failures} times in a row (last: {reason}); "
                            "check --ws-url and the network, then restart the session."
                        ),
                    )
                )
                return
            self.stats.reconnects += 1
            await asyncio.sleep(self.reconnect.delay(max(failures - 1, 0)))

    async def _await_subscribed(self, ws) -> None:
        deadline = time.monotonic() + self.open_timeout_s
        while True:
            raw = await asyncio.wait_for(ws.recv(), timeout=max(0.0, deadline - time.monotonic()))
            msg = json.loads(raw)
            if msg.get("op") == "subscribe":
                if not msg.get("success"):
                    raise DataError(
                        f"subscribe to {self.topic} refused: {msg.get('ret_msg')!r}; check --symbol/--interval/--category."
                    )
                return

    async def _pump(self, ws) -> None:
        last_data = time.monotonic()
        next_ping = time.monotonic() + self.ping_interval_s
        while True:
            now = time.monotonic()
            wait = min(last_data + self.stale_after_s, next_ping) - now
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=max(wait, 0.0))
            except (asyncio.TimeoutError, TimeoutError):
                now = time.monotonic()
                if now >= last_data + self.stale_after_s:
                    raise _Stale(f"no {self.topic} message for {self.stale_after_s:g} s (stale feed)") from None
                await ws.send(json.dumps({"op": "ping"}))
                next_ping = now + self.ping_interval_s
                continue
            received = time.perf_counter()
            try:
                msg = json.loads(raw)
                if msg.get("topic") != self.topic:
                    continue  # pong, subscribe echo, other topics
                last_data = time.monotonic()
                await self._handle(msg, received)
            except (ValueError, TypeError, AttributeError, KeyError, DataError):
                self.stats.malformed += 1  # one bad message never ends the stream

    def _on_connect(self) -> None:
        """Called once subscribed, before the first message is handled."""

    async def _handle(self, msg: dict, received: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class KlineFeed(_TopicStream):
    """Closed bars of ``symbol`` after ``last_start`` (ms), via ``async for bar in feed.bars()``.

    stale_after_s: no kline message (any, confirmed or not) for this long forces a reconnect;
    default 2x the bar length. reconnect: backoff between attempts; ``max_reconnects`` failed
    attempts in a row end the feed with ``TransientExchangeError``. on_state(state, reason) is
    called on every transition; an exception in it is logged and counted, never propagated.
    """

    def __init__(
        self,
        rest: BybitREST,
        endpoints: Endpoints,
        symbol: str,
        category: str,
        interval: str,
        *,
        last_start: int | None = None,
        stale_after_s: float | None = None,
        max_reconnects: int = 10,
        reconnect: RetryPolicy | None = None,
        ping_interval_s: float = 20.0,
        open_timeout_s: float = 10.0,
        on_state: Callable[[str, str], None] | None = None,
    ):
        self.rest = rest
        self.symbol, self.interval = symbol, str(interval)
        self.step = interval_ms(interval)
        self.last_start = last_start
        self._init_stream(
            endpoints,
            category,
            f"kline.{self.interval}.{symbol}",
            stale_after_s if stale_after_s else 2.0 * self.step / 1000.0,
            max_reconnects,
            reconnect,
            ping_interval_s,
            open_timeout_s,
            on_state,
        )

    what = "kline stream"

    async def _handle(self, msg: dict, received: float) -> None:
        for item in msg["data"]:
            bar = bar_from_ws(item, received)
            if bar.confirm:
                await self._queue.put(("bar", bar))
            else:
                self.stats.unconfirmed += 1

    # -- consumer ------------------------------------------------------------------------
    async def _backfill(self, upto: int | None = None) -> list[Bar]:
        """Closed bars after ``last_start`` (up to ``upto``) from REST, in order."""
        if self.last_start is None:
            return []
        got = await asyncio.to_thread(
            self.rest.closed_klines, self.symbol, self.category, self.interval, self.last_start + self.step, upto
        )
        return [b for b in got if b.start > self.last_start]

    def _take(self, bar: Bar) -> Bar:
        if self.last_start is not None and bar.start != self.last_start + self.step:
            self.stats.gaps.append(self.last_start + self.step)
            log.error(
                "feed %s: bars from %d to %d missing after backfill", self.topic, self.last_start + self.step, bar.start
            )
        self.last_start = bar.start
        if bar.source == "ws":
            self.stats.ws_bars += 1
        else:
            self.stats.backfilled += 1
        return bar

    async def bars(self) -> AsyncIterator[Bar]:
        """Closed bars, strictly one step apart (gaps and reconnects backfilled), each once."""
        self._queue = asyncio.Queue()
        self._closing = False
        self._set_state(DELAYED, "connecting")
        reader = asyncio.create_task(self._reader())
        try:
            while True:
                kind, payload = await self._queue.get()
                if kind == "failed":
                    raise payload
                if kind == "connected":
                    self._set_state(DELAYED, "backfilling after (re)connect")
                    for b in await self._backfill():
                        yield self._take(b)
                    self._set_state(LIVE, "subscribed")
                    continue
                bar: Bar = payload
                if self.last_start is not None and bar.start <= self.last_start:
                    self.stats.duplicates += 1  # a repeated confirm, or a bar REST already gave us
                    continue
                if self.last_start is not None and bar.start > self.last_start + self.step:
                    for _ in range(3):  # the exchange may need a moment to serve the missing bars
                        for b in await self._backfill(upto=bar.start - self.step):
                            yield self._take(b)
                        if self.last_start + self.step >= bar.start:
                            break
                        await asyncio.sleep(0.05)
                yield self._take(bar)
        finally:
            self._closing = True
            if self._ws is not None:
                self._ws.transport.abort()  # leaving: no close handshake to wait for
            reader.cancel()
            try:
                await asyncio.wait_for(reader, timeout=2.0)
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass


class _Stale(Exception):
    pass


class _Resync(Exception):
    """The handler lost sync (e.g. a gap in the order book's ``u``): reconnect and re-subscribe."""
