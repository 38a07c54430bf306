"""A loopback fake Bybit v5 for tests, benchmarks and dry runs: REST + WebSocket on 127.0.0.1.

It serves ``/v5/market/time``, ``/v5/market/kline`` and ``/v5/market/instruments-info`` from an
OHLCV frame and streams ``kline.<interval>.<symbol>`` on ``/v5/public/<category>``. Its market
clock starts at ``start_index``'s bar and, once a client subscribes, advances one bar every
``bar_seconds`` real seconds: for each bar an unconfirmed update, then (when the bar closes)
its ``confirm=true`` message. Bars that close while a client is away are lost to that client,
as on the real exchange. ``Faults`` injects the failures the live feed must survive.

Run standalone: ``python -m effnet_trading.plugins.bybit.fake_exchange --data bars.csv --start-index 300``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd

from effnet_trading.errors import require
from effnet_trading.plugins.bybit.bars import interval_ms

__all__ = ["FakeBybit", "Faults"]


@dataclass
class Faults:
    """Failures to inject. Bar indices ``k`` count streamed bars from 0 (the bar at ``start_index``)."""

    drop_at: set = field(default_factory=set)  # close the socket mid-bar k (after its unconfirmed update)
    refuse_s: float = 0.0  # after a drop, refuse new WebSocket handshakes (HTTP 503) for this long
    duplicate: set = field(default_factory=set)  # send bar k's confirm twice
    delay_s: dict = field(default_factory=dict)  # k -> seconds to hold bar k's confirm
    reorder: set = field(default_factory=set)  # send bar k's confirm after bar k+1's
    malformed: set = field(default_factory=set)  # before bar k's confirm, send broken messages on its topic
    book_gap: set = field(default_factory=set)  # bar k's book delta skips one ``u``
    book_reset: set = field(default_factory=set)  # bar k's book update is a full book sent as a delta with u=1
    book_delete_missing: set = field(default_factory=set)  # bar k's delta deletes a level the book does not hold
    book_repeat: set = field(default_factory=set)  # after bar k's delta, the previous delta again (out of order)
    book_malformed: set = field(default_factory=set)  # before bar k's delta, a delta without ``u``
    stall_s: dict = field(default_factory=dict)  # k -> after bar k's confirm, send no data for this long (pongs go on)
    rest: list = field(
        default_factory=list
    )  # [(path part, kind)], consumed in order; kind: ok (answer normally) http429 http403 ret<retCode> reset


class _State:
    def __init__(self, ohlcv: pd.DataFrame, interval: str, start_index: int):
        self.lock = threading.Lock()
        self.step = interval_ms(interval)
        self.starts = (ohlcv.index.as_unit("ns").asi8 // 1_000_000).astype(np.int64)
        if len(self.starts) > 1 and not np.all(np.diff(self.starts) == self.step):
            raise ValueError(f"fake exchange data must be regular {self.step} ms bars without gaps")
        self.values = (
            ohlcv[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64).tolist()
        )  # Python floats: exact repr
        self.start_index = int(start_index)
        self.now_ms = int(self.starts[self.start_index]) + self.step // 2  # mid-way through the first live bar
        self.requests: list[str] = []

    def row(self, i: int) -> list[str]:
        o, h, lo, c, v = self.values[i]
        return [str(int(self.starts[i])), repr(o), repr(h), repr(lo), repr(c), repr(v), repr(v * c)]


class FakeBybit:
    """Start with ``with FakeBybit(ohlcv, start_index=...) as fake:``; then ``fake.rest_url``, ``fake.ws_url``."""

    def __init__(
        self,
        ohlcv: pd.DataFrame,
        *,
        symbol: str = "BTCUSDT",
        category: str = "linear",
        interval: str = "5",
        start_index: int | None = None,
        bar_seconds: float = 0.05,
        faults: Faults | None = None,
        end_index: int | None = None,
        rest_port: int = 0,
        ws_port: int = 0,
        api_key: str = "fake-key",
        api_secret: str = "fake-secret",
        taker_fee: float = 0.00055,
        order_delay_s: float = 0.0,
    ):
        self.symbol, self.category, self.interval = symbol, category, str(interval)
        n = len(ohlcv)
        self.state = _State(ohlcv, self.interval, n - 1 if start_index is None else start_index)
        self.end_index = n if end_index is None else int(end_index)
        self.bar_seconds = float(bar_seconds)
        self.faults = faults or Faults()
        self._ports = (rest_port, ws_port)
        self.streamed: list[int] = []  # bar starts whose confirm was sent (any connection)
        self.connections = 0
        self.refused = 0
        self._clients: set = set()
        self._book_clients: set = set()
        self.book_depth = 50
        self._book_u = 0
        self._book: tuple[dict, dict] = ({}, {})
        self._last_delta: str | None = None
        self._muted: dict = {}
        self._refuse_until = 0.0
        self._stream_task = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.done = threading.Event()  # set when the last bar has been confirmed
        # trading: one account, market orders fill at once at the open of the bar in progress
        self._key, self._secret = api_key, api_secret
        self.taker_fee = float(taker_fee)
        self.order_delay_s = float(order_delay_s)  # answer order/create this late (after accepting it)
        self.position = 0.0  # signed units
        self.avg_price = 0.0  # the position's average entry price (0 when flat)
        self.cum_realised = 0.0  # realised PnL as Bybit books it: closed PnL - trading fees - funding
        self.orders: dict[str, dict] = {}  # orderLinkId -> order
        self.open_orders: list[dict] = []  # resting orders (tests put stale ones here)
        self.order_requests = 0

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> FakeBybit:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        fake = self

        class Handler(_RestHandler):
            pass

        Handler.fake = fake
        self._http = ThreadingHTTPServer(("127.0.0.1", self._ports[0]), Handler)
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._http_thread.start()
        ready = threading.Event()
        self._ws_thread = threading.Thread(target=self._run_ws, args=(ready,), daemon=True)
        self._ws_thread.start()
        if not ready.wait(5):
            raise RuntimeError("fake exchange WebSocket server did not start within 5 s")

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
            self._ws_thread.join(5)
        self._http.shutdown()
        self._http.server_close()
        self._http_thread.join(5)

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self._ws_port}"

    # -- WebSocket side ------------------------------------------------------------------
    def _run_ws(self, ready: threading.Event) -> None:
        asyncio.run(self._ws_main(ready))

    async def _ws_main(self, ready: threading.Event) -> None:
        server_mod = require("websockets.asyncio.server", "live")
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        async with server_mod.serve(
            self._ws_handler, "127.0.0.1", self._ports[1], process_request=self._ws_gate, ping_interval=None
        ) as server:
            self._ws_port = server.sockets[0].getsockname()[1]
            ready.set()
            await self._stop_event.wait()
            if self._stream_task is not None:
                self._stream_task.cancel()

    def _ws_gate(self, connection, request):
        from http import HTTPStatus

        if time.monotonic() < self._refuse_until:
            self.refused += 1
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "fake exchange: refusing connections\n")
        if request.path != f"/v5/public/{self.category}":
            return connection.respond(HTTPStatus.NOT_FOUND, f"no stream at {request.path}\n")
        return None

    async def _ws_handler(self, ws) -> None:
        self.connections += 1
        kline, book = f"kline.{self.interval}.{self.symbol}", f"orderbook.{self.book_depth}.{self.symbol}"
        try:
            async for raw in ws:
                msg = json.loads(raw)
                op = msg.get("op")
                if op == "ping":
                    await ws.send(json.dumps({"success": True, "ret_msg": "pong", "op": "pong", "conn_id": "fake"}))
                elif op == "subscribe":
                    args = msg.get("args", [])
                    ok = all(a in (kline, book) for a in args)
                    await ws.send(
                        json.dumps(
                            {
                                "success": ok,
                                "ret_msg": "" if ok else "unknown topic",
                                "op": "subscribe",
                                "req_id": msg.get("req_id"),
                                "conn_id": "fake",
                            }
                        )
                    )
                    if ok and kline in args:
                        self._clients.add(ws)
                    if ok and book in args:
                        if not self._book[0]:
                            self._set_book(self.state.start_index)
                        await ws.send(self._book_msg("snapshot", self._book, self._book_u))
                        self._book_clients.add(ws)
                    if ok and self._stream_task is None:
                        self._stream_task = asyncio.create_task(self._stream())
        except Exception:  # noqa: BLE001 - a client going away is normal here
            pass
        finally:
            self._clients.discard(ws)
            self._book_clients.discard(ws)

    # -- order book --------------------------------------------------------------------------
    def _levels(self, i: int) -> tuple[dict, dict]:
        """A deterministic 10-level book around bar i's open (tick 0.01)."""
        mid = round(self.state.values[i][0], 2)
        sizes = [1.0 + ((i * 7 + j * 3) % 5) * 0.5 for j in range(10)]
        bids = {round(mid - 0.01 * (j + 1), 2): sizes[j] for j in range(10)}
        asks = {round(mid + 0.01 * (j + 1), 2): sizes[::-1][j] for j in range(10)}
        return bids, asks

    def _set_book(self, i: int) -> None:
        self._book = self._levels(i)
        self._book_u = max(self._book_u, 1)

    def _book_msg(self, kind: str, levels: tuple[dict, dict], u: int, extra_bid=None) -> str:
        bids = [[repr(p), repr(q)] for p, q in levels[0].items()] + ([extra_bid] if extra_bid else [])
        asks = [[repr(p), repr(q)] for p, q in levels[1].items()]
        now = self.state.now_ms
        return json.dumps(
            {
                "topic": f"orderbook.{self.book_depth}.{self.symbol}",
                "type": kind,
                "ts": now,
                "data": {"s": self.symbol, "b": bids, "a": asks, "u": u, "seq": u * 10},
                "cts": now,
            }
        )

    async def _book_broadcast(self, text: str) -> None:
        for ws in list(self._book_clients):
            try:
                await ws.send(text)
            except Exception:  # noqa: BLE001
                self._book_clients.discard(ws)

    async def _book_step(self, k: int, i: int) -> None:
        """Move the book to bar i's levels with one delta (deletions as size 0), with bar k's faults."""
        f = self.faults
        old, new = self._book, self._levels(i)
        delta = tuple({**{p: 0.0 for p in o if p not in n}, **n} for o, n in zip(old, new))
        self._book = new
        if k in f.book_malformed:
            await self._book_broadcast(
                json.dumps(
                    {
                        "topic": f"orderbook.{self.book_depth}.{self.symbol}",
                        "type": "delta",
                        "data": {"s": self.symbol, "b": [["x", "1"]]},
                    }
                )
            )
        if k in f.book_reset:
            self._book_u = 1
            msg = self._book_msg("delta", new, 1)
        else:
            self._book_u += 2 if k in f.book_gap else 1
            msg = self._book_msg(
                "delta", delta, self._book_u, extra_bid=["0.5", "0"] if k in f.book_delete_missing else None
            )
        await self._book_broadcast(msg)
        if k in f.book_repeat and self._last_delta is not None:
            await self._book_broadcast(self._last_delta)
        self._last_delta = msg

    def _kline_msg(self, i: int, confirm: bool, now: int) -> str:
        s = self.state
        o, h, lo, c, v = s.values[i]
        start = int(s.starts[i])
        data = {
            "start": start,
            "end": start + s.step - 1,
            "interval": self.interval,
            "open": repr(o),
            "close": repr(c),
            "high": repr(h),
            "low": repr(lo),
            "volume": repr(v),
            "turnover": repr(v * c),
            "confirm": confirm,
            "timestamp": now,
        }
        return json.dumps(
            {"topic": f"kline.{self.interval}.{self.symbol}", "data": [data], "ts": now, "type": "snapshot"}
        )

    async def _broadcast(self, text: str) -> None:
        now = time.monotonic()
        for ws in list(self._clients):
            if self._muted.get(ws, 0.0) > now:
                continue
            try:
                await ws.send(text)
            except Exception:  # noqa: BLE001
                self._clients.discard(ws)

    async def _stream(self) -> None:
        s, f = self.state, self.faults
        held: list[tuple[int, str]] = []
        for k, i in enumerate(range(s.start_index, self.end_index)):
            with s.lock:
                s.now_ms = int(s.starts[i]) + s.step // 2
            await self._broadcast(self._kline_msg(i, False, s.now_ms))
            if self._book_clients or self._book[0]:
                await self._book_step(k, i)
            if k in f.drop_at:
                for ws in list(self._clients | self._book_clients):
                    ws.transport.abort()
                    self._clients.discard(ws)
                    self._book_clients.discard(ws)
                self._refuse_until = time.monotonic() + f.refuse_s
            await asyncio.sleep(self.bar_seconds)
            with s.lock:
                s.now_ms = int(s.starts[i]) + s.step  # bar i closed: REST now serves it as closed
            msg = self._kline_msg(i, True, s.now_ms)
            if k in f.malformed:
                topic = f"kline.{self.interval}.{self.symbol}"
                await self._broadcast("{not json")
                await self._broadcast(json.dumps({"topic": topic, "data": [{"start": "x", "confirm": True}]}))
                await self._broadcast(json.dumps({"topic": topic, "data": None}))
            self.streamed.append(int(s.starts[i]))
            if k in f.reorder:
                held.append((k, msg))
                continue
            if k in f.delay_s:
                await asyncio.sleep(f.delay_s[k])
            await self._broadcast(msg)
            for _, m in held:
                await self._broadcast(m)
            held.clear()
            if k in f.duplicate:
                await self._broadcast(msg)
            if k in f.stall_s:
                until = time.monotonic() + f.stall_s[k]
                for ws in list(self._clients):
                    self._muted[ws] = until
        for _, m in held:
            await self._broadcast(m)
        self.done.set()

    # -- trading -----------------------------------------------------------------------------
    def check_auth(self, headers, payload: str) -> dict | None:
        """None when the request is signed with this account's key (Bybit's HMAC-SHA256 scheme), else an error body."""
        import hashlib
        import hmac

        key, ts, win, sign = (
            headers.get(h) for h in ("X-BAPI-API-KEY", "X-BAPI-TIMESTAMP", "X-BAPI-RECV-WINDOW", "X-BAPI-SIGN")
        )
        if key != self._key:
            return {"retCode": 10003, "retMsg": "API key is invalid.", "result": {}}
        want = hmac.new(self._secret.encode(), f"{ts}{key}{win}{payload}".encode(), hashlib.sha256).hexdigest()
        if sign != want:
            return {"retCode": 10004, "retMsg": "error sign!", "result": {}}
        return None

    def _current_index(self) -> int:
        s = self.state
        return int(min(len(s.starts) - 1, max(0, np.searchsorted(s.starts, s.now_ms, side="right") - 1)))

    def place_order(self, body: dict) -> dict:
        s = self.state
        with s.lock:
            self.order_requests += 1
            link = body.get("orderLinkId") or f"auto-{self.order_requests}"
            if link in self.orders:
                return {"retCode": 110072, "retMsg": "OrderLinkedID is duplicate", "result": {}}
            try:
                qty = float(body["qty"])
            except (KeyError, ValueError):
                return {"retCode": 10001, "retMsg": "params error: qty", "result": {}}
            steps = qty / 0.001
            if qty < 0.001 or abs(steps - round(steps)) > 1e-6:
                return {"retCode": 10001, "retMsg": f"Qty invalid: {body['qty']} (step 0.001, min 0.001)", "result": {}}
            side = body.get("side")
            if side not in ("Buy", "Sell") or body.get("orderType") != "Market":
                return {"retCode": 10001, "retMsg": "params error: side/orderType", "result": {}}
            price = s.values[self._current_index()][0]
            signed = qty if side == "Buy" else -qty
            self._book_fill(signed, price, qty * price * self.taker_fee)
            order = {
                "orderId": f"fake-{len(self.orders) + 1}",
                "orderLinkId": link,
                "symbol": self.symbol,
                "side": side,
                "orderType": "Market",
                "qty": body["qty"],
                "avgPrice": repr(price),
                "cumExecQty": body["qty"],
                "cumExecFee": repr(qty * price * self.taker_fee),
                "orderStatus": "Filled",
                "createdTime": str(s.now_ms),
            }
            self.orders[link] = order
        return _ok({"orderId": order["orderId"], "orderLinkId": link}, s.now_ms)

    def _book_fill(self, signed: float, price: float, fee: float) -> None:
        """Position, average price and realised PnL after a fill (the lock held): the closed part realises
        (price - avg) x units, the fee is realised at once, a flip opens the rest at ``price``."""
        old = self.position
        self.cum_realised -= fee
        closed = min(abs(signed), abs(old)) if old * signed < 0 else 0.0
        self.cum_realised += closed * (price - self.avg_price) * (1.0 if old > 0 else -1.0)
        new = round(old + signed, 9)
        if new == 0.0:
            self.avg_price = 0.0
        elif old * new <= 0.0:  # opened from flat, or flipped: the rest opens at this price
            self.avg_price = price
        elif abs(new) > abs(old):  # added to the same side
            self.avg_price = (abs(old) * self.avg_price + abs(signed) * price) / abs(new)
        self.position = new

    def mark_price(self) -> float:
        """The fake's mark price: the open of the bar in progress (what its market orders fill at)."""
        return float(self.state.values[self._current_index()][0])

    def charge_funding(self, rate: float) -> float:
        """One funding settlement: a long pays position value x ``rate`` (a short receives it); returns the payment."""
        with self.state.lock:
            paid = self.position * self.mark_price() * float(rate)
            self.cum_realised -= paid
        return paid

    def trading_get(self, path: str, q: dict) -> dict:
        now = self.state.now_ms
        with self.state.lock:
            if path == "/v5/position/list":
                side = "Buy" if self.position > 0 else "Sell" if self.position < 0 else ""
                mark = self.mark_price()
                return _ok(
                    {
                        "category": self.category,
                        "list": [
                            {
                                "symbol": self.symbol,
                                "side": side,
                                "size": repr(abs(self.position)),
                                "positionIdx": 0,
                                "avgPrice": repr(self.avg_price),
                                "markPrice": repr(mark),
                                "unrealisedPnl": repr(self.position * (mark - self.avg_price)),
                                "cumRealisedPnl": repr(self.cum_realised),
                            }
                        ],
                    },
                    now,
                )
            if path == "/v5/order/realtime":
                if q.get("orderLinkId"):
                    found = self.orders.get(q["orderLinkId"])
                    return _ok({"list": [found] if found else []}, now)
                return _ok({"list": list(self.open_orders)}, now)
        return {"retCode": 404, "retMsg": f"fake exchange: no route {path}"}

    def cancel_all(self) -> dict:
        with self.state.lock:
            gone = [{"orderId": o["orderId"], "orderLinkId": o["orderLinkId"]} for o in self.open_orders]
            self.open_orders.clear()
        return _ok({"list": gone}, self.state.now_ms)

    # -- REST side -----------------------------------------------------------------------
    def _take_rest_fault(self, path: str) -> str | None:
        with self.state.lock:
            for j, (part, kind) in enumerate(self.faults.rest):
                if part in path:
                    del self.faults.rest[j]
                    return None if kind == "ok" else kind
        return None

    def rest_answer(self, path: str, q: dict) -> tuple[int, dict, dict]:
        """(HTTP status, JSON body, extra headers) for one GET."""
        s = self.state
        with s.lock:
            now = s.now_ms
            s.requests.append(path)
        if path == "/v5/market/time":
            return 200, _ok({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}, now), {}
        if path == "/v5/market/kline":
            if (
                q.get("symbol") != self.symbol
                or q.get("category") != self.category
                or q.get("interval") != self.interval
            ):
                return (
                    200,
                    {
                        "retCode": 10001,
                        "retMsg": "params error: symbol/category/interval not served by the fake",
                        "result": {},
                        "time": now,
                    },
                    {},
                )
            limit = min(int(q.get("limit", 200)), 1000)
            start, end = int(q.get("start", 0)), int(q.get("end", now))
            sel = np.flatnonzero((s.starts >= start) & (s.starts <= min(end, now)))[-limit:]
            rows = [s.row(i) for i in sel[::-1]]  # newest first, the open bar included, as Bybit does
            return 200, _ok({"category": self.category, "symbol": self.symbol, "list": rows}, now), {}
        if path == "/v5/market/instruments-info":
            return (
                200,
                _ok(
                    {
                        "category": self.category,
                        "list": [
                            {
                                "symbol": self.symbol,
                                "status": "Trading",
                                "lotSizeFilter": {"qtyStep": "0.001", "minOrderQty": "0.001", "maxOrderQty": "100"},
                                "priceFilter": {"tickSize": "0.1", "minPrice": "0.1"},
                            }
                        ],
                    },
                    now,
                ),
                {},
            )
        return 404, {"retCode": 404, "retMsg": f"fake exchange: no route {path}"}, {}


def _ok(result: dict, now: int) -> dict:
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now}


class _RestHandler(BaseHTTPRequestHandler):
    fake: FakeBybit
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        kind = self.fake._take_rest_fault(url.path)
        if kind == "reset":
            self.close_connection = True
            self.connection.close()
            return
        if kind in ("http429", "http403"):
            return self._send(int(kind[4:]), {"retCode": int(kind[4:]), "retMsg": "Too many visits"}, {})
        if kind and kind.startswith("ret"):
            return self._send(
                200,
                {
                    "retCode": int(kind[3:]),
                    "retMsg": "Too many visits!" if kind == "ret10006" else "server error",
                    "result": {},
                    "time": self.fake.state.now_ms,
                },
                {},
            )
        if url.path in ("/v5/position/list", "/v5/order/realtime"):  # signed: the account's trading state
            err = self.fake.check_auth(self.headers, url.query)
            return self._send(200, err or self.fake.trading_get(url.path, q), {})
        self._send(*self.fake.rest_answer(url.path, q))

    def do_POST(self) -> None:
        url = urlparse(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)).decode()
        kind = self.fake._take_rest_fault(url.path)
        if kind == "reset":
            self.close_connection = True
            self.connection.close()
            return
        err = self.fake.check_auth(self.headers, raw)
        if err:
            return self._send(200, err, {})
        body = json.loads(raw or "{}")
        if url.path == "/v5/order/create":
            answer = self.fake.place_order(body)
            if answer["retCode"] == 0 and (kind == "timeout" or self.fake.order_delay_s):
                time.sleep(max(self.fake.order_delay_s, 1.0))  # accepted, but the answer comes too late
            return self._send(200, answer, {})
        if url.path == "/v5/order/cancel-all":
            return self._send(200, self.fake.cancel_all(), {})
        self._send(404, {"retCode": 404, "retMsg": f"fake exchange: no route {url.path}"}, {})

    def _send(self, status: int, body: dict, headers: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout test)
            self.close_connection = True


def main(argv=None) -> None:  # pragma: no cover - a manual tool
    import argparse

    from effnet_trading.imaging import load_ohlcv

    p = argparse.ArgumentParser(description="Run the loopback fake Bybit on fixed ports until Ctrl-C.")
    p.add_argument("--data", required=True)
    p.add_argument("--symbol", default="BTCUSDT")
    p.add_argument("--category", default="linear")
    p.add_argument("--interval", default="5")
    p.add_argument("--start-index", type=int, required=True)
    p.add_argument("--bar-seconds", type=float, default=0.5)
    p.add_argument("--rest-port", type=int, default=8080)
    p.add_argument("--ws-port", type=int, default=8081)
    a = p.parse_args(argv)
    with FakeBybit(
        load_ohlcv(a.data),
        symbol=a.symbol,
        category=a.category,
        interval=a.interval,
        start_index=a.start_index,
        bar_seconds=a.bar_seconds,
        rest_port=a.rest_port,
        ws_port=a.ws_port,
    ) as fake:
        print(f"fake Bybit: --rest-url {fake.rest_url} --ws-url {fake.ws_url}", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    main()
