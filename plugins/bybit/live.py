"""A live session without backtrader: on each confirmed bar, ``update`` -> ``Policy`` -> ``Risk`` -> order.

It first loads the scorer's warm-up history over REST and runs it through the same path (no
orders), so the model buffer and the policy's state equal a backtest over the same bars; then it
decides on each confirmed bar of the feed. Outputs in ``out_dir``: ``decisions.csv`` (timestamp,
one column per class, target, latency_ms, predictor, source, phase: the columns of ``backtest``'s
``signals.csv`` first), ``orders.csv``, ``fills.csv``, and ``status.json`` refreshed every bar.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from effnet_trading.errors import EffnetTradingError, SpecError
from effnet_trading.plugins.bybit.bars import Bar, interval_ms
from effnet_trading.plugins.bybit.endpoints import Endpoints
from effnet_trading.plugins.bybit.feed import KlineFeed
from effnet_trading.plugins.bybit.paper import LiveOrder, order_link_id
from effnet_trading.plugins.bybit.rest import BybitREST
from effnet_trading.strategies.execution import FILL_ROW_COLUMNS

__all__ = ["LiveSession"]

log = logging.getLogger("effnet_trading.bybit.live")

_ORDER_COLUMNS = list(LiveOrder.__dataclass_fields__)
_FILL_COLUMNS = FILL_ROW_COLUMNS


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, pd.Timestamp):
        return str(obj)
    return obj


class _Csv:
    """Append-only CSV: header once, one flushed line per row."""

    def __init__(self, path: Path, columns: list[str]):
        self.columns = columns
        self._fh = open(path, "w", newline="", encoding="utf-8")
        self._w = csv.writer(self._fh)
        self._w.writerow(columns)
        self._fh.flush()

    def write(self, row: dict) -> None:
        self._w.writerow([_cell(row.get(c)) for c in self.columns])
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _cell(v):
    if isinstance(v, (float, np.floating)):
        return "" if v != v else repr(float(v))
    return "" if v is None else str(v)


class LiveSession:
    """One symbol, one scorer, one broker. ``run(max_bars=..., duration_s=...)`` returns the final status.

    scorer: a ``SignalModel`` (its ``update`` is the live path); policy, risk, monitor: the
    strategies objects, handed over whole; broker: ``PaperBroker`` (or a broker with the same
    ``submit``/``on_bar``/``snapshot``).
    """

    def __init__(
        self,
        scorer,
        policy,
        risk,
        broker,
        rest: BybitREST,
        endpoints: Endpoints,
        *,
        symbol: str,
        category: str,
        interval: str,
        out_dir,
        monitor=None,
        strategy: str = "effnet",
        warmup_bars: int | None = None,
        feed_options: dict | None = None,
        config: dict | None = None,
        book_feed=None,
        kill_switch=None,
    ):
        from effnet_trading.strategies import Monitor

        self.scorer, self.policy, self.risk, self.broker = scorer, policy, risk, broker
        self.rest, self.endpoints = rest, endpoints
        self.symbol, self.category, self.interval = symbol, category, str(interval)
        self.step = interval_ms(interval)
        self.monitor = monitor or Monitor(window=1000)
        self.strategy = strategy
        self.warmup_bars = warmup_bars
        self.feed_options = feed_options or {}
        self.config = config or {}
        self.out_dir = Path(out_dir)
        self.class_names = list(scorer.class_names)
        self.errors: list[str] = []
        self.live_bars = 0
        self.last_bar: Bar | None = None
        self.feed: KlineFeed | None = None
        self.book_feed = book_feed  # a BookFeed whose book the broker fills against (optional)
        self.kill_switch = kill_switch
        self.killed: str | None = None
        self._reconcile_due = False

    # -- one bar -------------------------------------------------------------------------
    def _predictor_name(self) -> str:
        model = getattr(self.scorer, "model", None)
        names, active = getattr(model, "names", None), getattr(model, "active", None)
        if names is not None and active is not None:
            return names[active]
        return str(getattr(self.scorer, "name", type(self.scorer).__name__))

    def _decide(self, bar: Bar, phase: str) -> dict:
        t0 = bar.received or time.perf_counter()
        n_fills = len(self.broker.fills)
        if phase == "live":
            self.broker.on_bar(bar)
        row = bar.as_dict()
        try:
            probs = self.scorer.update(row)
        except EffnetTradingError as exc:  # every predictor failed or bad input: record, stay flat-safe
            self.errors.append(f"{bar.timestamp}: {exc}")
            log.error("scoring bar %s failed: %s", bar.timestamp, exc)
            probs = None
        target = self.policy.step(probs)
        target = self.risk.step(row, target)
        order = None
        t_order = None
        if phase == "live" and target != self.broker.target:
            t_order = time.perf_counter()  # the latency ends at the order request
            order = self.broker.submit(
                bar.timestamp, self.symbol, target, order_link_id(self.strategy, self.symbol, bar.start)
            )
        latency_ms = ((t_order or time.perf_counter()) - t0) * 1e3
        self.monitor.record(
            probs if probs is not None else np.full(len(self.class_names), np.nan),
            latency_ms=latency_ms if phase == "live" else None,
            bar=row,
        )
        values = probs.to_numpy() if probs is not None else np.full(len(self.class_names), np.nan)
        decision = {
            "timestamp": bar.timestamp,
            **dict(zip(self.class_names, values.tolist())),
            "target": float(target),
            "latency_ms": latency_ms,
            "predictor": self._predictor_name() if probs is not None else "",
            "source": bar.source,
            "phase": phase,
        }
        return {"decision": decision, "order": order, "fills": self.broker.fills[n_fills:]}

    # -- session -------------------------------------------------------------------------
    def _warmup_count(self) -> int:
        if self.warmup_bars is not None:
            return int(self.warmup_bars)
        return int(max(self.scorer.history, self.scorer.warmup + 1))

    def _load_warmup(self) -> list[Bar]:
        n = self._warmup_count()
        now = self.rest.server_time_ms()
        last_closed = (now // self.step) * self.step - self.step
        return self.rest.closed_klines(
            self.symbol, self.category, self.interval, last_closed - (n - 1) * self.step, last_closed
        )

    def _on_feed_state(self, state: str, reason: str) -> None:
        if state == "DISCONNECTED":
            self._reconcile_due = True  # read position and orders back once the stream is back

    async def _kill(self, bar_time, reason: str, orders: _Csv, fills: _Csv) -> None:
        self.killed = reason
        log.error("kill switch: %s; flattening and stopping", reason)
        n = len(self.broker.fills)
        order = await asyncio.to_thread(self.broker.flatten, bar_time, reason)
        if hasattr(self.broker, "refresh"):  # the final status shows the flat account as the exchange books it
            await asyncio.to_thread(self.broker.refresh)
        if order is not None:
            orders.write(order.as_row())
        for f in self.broker.fills[n:]:
            fills.write(f.as_row())

    def _kill_check(self, bar: Bar, ordered: bool) -> str | None:
        snap = self.broker.snapshot(bar.close)
        # always on for the paper account, kill switch or not: nothing is left to trade with (an exchange
        # account is liquidated by the exchange itself)
        if snap.get("broker") == "paper" and snap["equity"] <= 0.0:
            return (
                f"equity {snap['equity']:.2f} <= 0 at the close of {bar.timestamp}: the account is ruined "
                "(see 'Ruin' in strategies.execution); cap the exposure or set a kill switch (--max-daily-loss)"
            )
        if self.kill_switch is None:
            return None
        capital = snap.get("capital", getattr(self.broker, "init_cash", float("nan")))
        return self.kill_switch.check(
            bar.timestamp,
            equity=snap.get("limit_equity", snap["equity"]),  # the exchange's figure (funding included) when read
            capital=capital,
            position_value=snap["units"] * bar.close,
            ordered=ordered,
        )

    def status(self, state: str) -> dict:
        price = self.last_bar.close if self.last_bar is not None else float("nan")
        mon = self.monitor.summary()
        return _json_safe(
            {
                "state": state,
                "symbol": self.symbol,
                "interval": self.interval,
                "network": self.endpoints.network,
                "updated": pd.Timestamp.now(tz="UTC"),
                "last_bar": self.last_bar.timestamp if self.last_bar else None,
                "live_bars": self.live_bars,
                "position": self.broker.snapshot(price),
                "predictor": self._predictor_name(),
                "latency_ms": mon["latency_ms"],
                "confidence": mon.get("confidence", {}).get("mean"),
                "class_rates": mon.get("class_rates"),
                "drift": mon.get("drift"),
                "alarms": mon.get("alarms"),
                "feed": None if self.feed is None else {k: v for k, v in vars(self.feed.stats).items()},
                "book": None
                if self.book_feed is None
                else {
                    "state": self.book_feed.stats.state,
                    "usable": self.book_feed.book.usable,
                    "bid": self.book_feed.book.best_bid,
                    "ask": self.book_feed.book.best_ask,
                    "u": self.book_feed.book.u,
                    **self.book_feed.book.stats,
                    "reconnects": self.book_feed.stats.reconnects,
                },
                "errors": self.errors[-20:],
                "killed": self.killed,
                "kill_switch": None if self.kill_switch is None else self.kill_switch.to_dict(),
                "config": self.config,
            }
        )

    def _write_status(self, state: str) -> None:
        from effnet_trading.outputs import write_text_atomic

        write_text_atomic(self.out_dir / "status.json", json.dumps(self.status(state), indent=2) + "\n")

    async def run(self, max_bars: int | None = None, duration_s: float | None = None) -> dict:
        """Warm up over REST, then trade confirmed bars until ``max_bars`` live bars or ``duration_s`` seconds."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        cols = ["timestamp", *self.class_names, "target", "latency_ms", "predictor", "source", "phase"]
        decisions = _Csv(self.out_dir / "decisions.csv", cols)
        orders = _Csv(self.out_dir / "orders.csv", _ORDER_COLUMNS)
        fills = _Csv(self.out_dir / "fills.csv", _FILL_COLUMNS)
        t_end = None if duration_s is None else time.monotonic() + float(duration_s)
        state = "DELAYED"
        book_task = asyncio.create_task(self.book_feed.run()) if self.book_feed is not None else None
        try:
            self._write_status(state)
            warm = await asyncio.to_thread(self._load_warmup)
            for bar in warm:
                decisions.write(self._decide(bar, "warmup")["decision"])
                self.last_bar = bar
            self.feed = KlineFeed(
                self.rest,
                self.endpoints,
                self.symbol,
                self.category,
                self.interval,
                last_start=warm[-1].start if warm else None,
                on_state=self._on_feed_state,
                **self.feed_options,
            )
            if max_bars is not None and max_bars <= 0:
                return self.status("STOPPED")
            gen = self.feed.bars()
            try:
                stale_s = None if self.kill_switch is None else self.kill_switch.max_stale_s
                while True:
                    timeout = None if t_end is None else max(0.0, t_end - time.monotonic())
                    if stale_s is not None:
                        timeout = stale_s if timeout is None else min(timeout, stale_s)
                    try:
                        bar = await asyncio.wait_for(gen.__anext__(), timeout=timeout)
                    except (asyncio.TimeoutError, TimeoutError):
                        if t_end is not None and time.monotonic() >= t_end - 1e-3:
                            break  # --duration reached
                        await self._kill(
                            self.last_bar.timestamp if self.last_bar else pd.Timestamp.now(tz="UTC"),
                            f"stale data: no bar for {stale_s:g} s (feed {self.feed.stats.state})",
                            orders,
                            fills,
                        )
                        break
                    except StopAsyncIteration:
                        break
                    if self._reconcile_due and hasattr(self.broker, "reconcile"):
                        self._reconcile_due = False
                        await asyncio.to_thread(self.broker.reconcile)
                    out = self._decide(bar, "live")
                    if hasattr(self.broker, "refresh"):  # the exchange's PnL (funding included) for the checks
                        await asyncio.to_thread(self.broker.refresh)
                    self.last_bar = bar
                    self.live_bars += 1
                    decisions.write(out["decision"])
                    for f in out["fills"]:
                        fills.write(f.as_row())
                    if out["order"] is not None:
                        orders.write(out["order"].as_row())
                    reason = self._kill_check(bar, out["order"] is not None)
                    if reason is not None:
                        await self._kill(bar.timestamp, reason, orders, fills)
                        break
                    self._write_status(self.feed.stats.state)
                    if max_bars is not None and self.live_bars >= max_bars:
                        break
            finally:
                await gen.aclose()
            state = "KILLED" if self.killed else "STOPPED"
        except BaseException as exc:
            state = f"FAILED: {type(exc).__name__}"
            self.errors.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if book_task is not None:
                book_task.cancel()
                try:
                    await book_task
                except BaseException:  # noqa: BLE001 - stopping it is all we want
                    pass
            decisions.close()
            orders.close()
            fills.close()
            self._write_status(state)
        return self.status(state)

    def run_sync(self, max_bars: int | None = None, duration_s: float | None = None) -> dict:
        return asyncio.run(self.run(max_bars=max_bars, duration_s=duration_s))


def build_live_session(
    model_dir,
    *,
    symbol: str,
    category: str = "linear",
    interval: str,
    out_dir,
    mode: str = "paper",
    network: str | None = None,
    key_file=None,
    kill_switch=None,
    rest_url: str | None = None,
    ws_url: str | None = None,
    policy=None,
    max_exposure: float = 1.0,
    fees: float = 0.001,
    slippage: float = 0.0,
    cash: float = 10_000.0,
    fallback: bool = True,
    stale_after_s: float | None = None,
    threads: int = 1,
    strategy: str = "effnet",
    fill: str = "next_open",
) -> LiveSession:
    """A LiveSession from a model folder: Predictor (+ momentum-rule fallback) -> SignalModel -> Policy -> Risk -> broker.

    policy: the ``Policy`` the backtests trade (default ``Policy()``), handed on whole.

    mode: ``paper`` (PaperBroker on ``network``'s data, mainnet by default), or ``testnet`` / ``demo`` /
    ``live`` (BybitBroker with keys from the environment or ``key_file``; ``live`` is mainnet: the
    caller must have asked for explicit confirmation). ``cash`` is the paper cash or the exchange capital.
    """
    from effnet_trading.model_zoo.failover import FailoverPredictor, RuleBasedPredictor
    from effnet_trading.model_zoo.runtime import Predictor
    from effnet_trading.plugins.bybit.endpoints import resolve_endpoints
    from effnet_trading.plugins.bybit.paper import PaperBroker
    from effnet_trading.strategies import Policy, Risk, SignalModel

    if mode not in ("paper", "testnet", "demo", "live"):
        raise SpecError(f"mode={mode!r} must be one of paper, testnet, demo, live.")
    if mode != "paper":  # before the keys are read or anything is asked of the exchange
        from effnet_trading.plugins.bybit.broker import check_traded_category

        check_traded_category(category)
    network = network or {"testnet": "testnet", "demo": "demo"}.get(mode, "mainnet")
    endpoints = resolve_endpoints(network, rest_url, ws_url)
    predictor = Predictor(model_dir, providers="cpu", intra_op_threads=threads)
    # the rule sees the model's close window: its lookback must fit inside it
    rule = RuleBasedPredictor(lookback=max(1, min(20, predictor.spec.window - 1)), class_names=predictor.class_names)
    model = FailoverPredictor([predictor, rule]) if fallback else predictor
    scorer = SignalModel(model, base_interval=f"{interval_ms(interval) // 60_000}min")
    policy = (policy if policy is not None else Policy()).replace(class_names=scorer.class_names)
    risk = Risk(max_exposure=max_exposure, interval=f"{interval_ms(interval) // 60_000}min")
    if fill not in ("next_open", "book"):
        raise SpecError(
            f"fill={fill!r} must be 'next_open' (the backtests' contract) or 'book' (taker fills on the live book)."
        )
    book_feed = None
    if fill == "book":
        from effnet_trading.plugins.bybit.book import BookFeed

        book_feed = BookFeed(endpoints, symbol, category, stale_after_s=max(10.0, 2 * interval_ms(interval) / 1000.0))
    if mode == "paper":
        rest = BybitREST(endpoints)
        broker = PaperBroker(
            cash,
            fees=fees,
            slippage=slippage,
            book=None if book_feed is None else book_feed.book,
            step_ms=interval_ms(interval),
        )
    else:
        from effnet_trading.plugins.bybit.broker import BybitBroker
        from effnet_trading.plugins.bybit.credentials import load_credentials

        creds = load_credentials(key_file)
        rest = BybitREST(endpoints, api_key=creds.api_key, api_secret=creds.api_secret)
        broker = BybitBroker(rest, symbol, category, capital=cash)
    config = {
        "model": str(Path(model_dir).resolve()),
        "symbol": symbol,
        "category": category,
        "interval": interval,
        "mode": mode,
        "network": endpoints.network,
        "rest_url": endpoints.rest,
        "ws_url": endpoints.ws,
        "policy": policy.to_dict(),
        "risk": risk.to_dict(),
        "fees": fees,
        "slippage": slippage,
        "cash": cash,
        "fallback": fallback,
        "threads": threads,
        "fill": fill,
        "kill_switch": None if kill_switch is None else kill_switch.to_dict(),
        "execution": "decide at the close of bar t, fill at the open of bar t+1",
    }
    return LiveSession(
        scorer,
        policy,
        risk,
        broker,
        rest,
        endpoints,
        symbol=symbol,
        category=category,
        interval=interval,
        out_dir=out_dir,
        strategy=strategy,
        feed_options={"stale_after_s": stale_after_s} if stale_after_s else None,
        config=config,
        book_feed=book_feed,
        kill_switch=kill_switch,
    )
