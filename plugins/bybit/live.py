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

from effnet_trading.errors import EffnetTradingError
from effnet_trading.plugins.bybit.bars import Bar, interval_ms
from effnet_trading.plugins.bybit.endpoints import Endpoints
from effnet_trading.plugins.bybit.feed import KlineFeed
from effnet_trading.plugins.bybit.paper import LiveFill, LiveOrder, order_link_id
from effnet_trading.plugins.bybit.rest import BybitREST

__all__ = ["LiveSession"]

log = logging.getLogger("effnet_trading.bybit.live")

_ORDER_COLUMNS = list(LiveOrder.__dataclass_fields__)
_FILL_COLUMNS = list(LiveFill.__dataclass_fields__)


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

    def __init__(self, scorer, policy, risk, broker, rest: BybitREST, endpoints: Endpoints, *, symbol: str,
                 category: str, interval: str, out_dir, monitor=None, strategy: str = "effnet",
                 warmup_bars: int | None = None, feed_options: dict | None = None, config: dict | None = None):
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

    # -- one bar -------------------------------------------------------------------------
    def _predictor_name(self) -> str:
        model = getattr(self.scorer, "model", None)
        names, active = getattr(model, "names", None), getattr(model, "active", None)
        if names is not None and active is not None:
            return names[active]
        return str(getattr(self.scorer, "name", type(self.scorer).__name__))

    def _decide(self, bar: Bar, phase: str) -> dict:
        t0 = bar.received or time.perf_counter()
        fills = self.broker.on_bar(bar) if phase == "live" else []
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
        if phase == "live" and target != self.broker.target:
            order = self.broker.submit(bar.timestamp, self.symbol, target, order_link_id(self.strategy, self.symbol, bar.start))
        latency_ms = (time.perf_counter() - t0) * 1e3
        self.monitor.record(probs if probs is not None else np.full(len(self.class_names), np.nan),
                            latency_ms=latency_ms if phase == "live" else None, bar=row)
        values = probs.to_numpy() if probs is not None else np.full(len(self.class_names), np.nan)
        decision = {"timestamp": bar.timestamp, **dict(zip(self.class_names, values.tolist())), "target": float(target),
                    "latency_ms": latency_ms, "predictor": self._predictor_name() if probs is not None else "",
                    "source": bar.source, "phase": phase}
        return {"decision": decision, "order": order, "fills": fills}

    # -- session -------------------------------------------------------------------------
    def _warmup_count(self) -> int:
        if self.warmup_bars is not None:
            return int(self.warmup_bars)
        return int(max(self.scorer.history, self.scorer.warmup + 1))

    def _load_warmup(self) -> list[Bar]:
        n = self._warmup_count()
        now = self.rest.server_time_ms()
        last_closed = (now // self.step) * self.step - self.step
        return self.rest.closed_klines(self.symbol, self.category, self.interval, last_closed - (n - 1) * self.step,
                                       last_closed)

    def status(self, state: str) -> dict:
        price = self.last_bar.close if self.last_bar is not None else float("nan")
        mon = self.monitor.summary()
        return _json_safe({
            "state": state, "symbol": self.symbol, "interval": self.interval, "network": self.endpoints.network,
            "updated": pd.Timestamp.now(tz="UTC"), "last_bar": self.last_bar.timestamp if self.last_bar else None,
            "live_bars": self.live_bars, "position": self.broker.snapshot(price), "predictor": self._predictor_name(),
            "latency_ms": mon["latency_ms"], "confidence": mon.get("confidence", {}).get("mean"),
            "class_rates": mon.get("class_rates"), "drift": mon.get("drift"), "alarms": mon.get("alarms"),
            "feed": None if self.feed is None else {k: v for k, v in vars(self.feed.stats).items()},
            "errors": self.errors[-20:], "config": self.config,
        })

    def _write_status(self, state: str) -> None:
        from effnet_trading.strategies.report import write_text_atomic

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
        try:
            self._write_status(state)
            warm = await asyncio.to_thread(self._load_warmup)
            for bar in warm:
                decisions.write(self._decide(bar, "warmup")["decision"])
                self.last_bar = bar
            self.feed = KlineFeed(self.rest, self.endpoints, self.symbol, self.category, self.interval,
                                  last_start=warm[-1].start if warm else None, **self.feed_options)
            if max_bars is not None and max_bars <= 0:
                return self.status("STOPPED")
            gen = self.feed.bars()
            try:
                while True:
                    timeout = None if t_end is None else max(0.0, t_end - time.monotonic())
                    try:
                        bar = await asyncio.wait_for(gen.__anext__(), timeout=timeout)
                    except (asyncio.TimeoutError, TimeoutError):
                        break  # --duration reached
                    except StopAsyncIteration:
                        break
                    out = self._decide(bar, "live")
                    self.last_bar = bar
                    self.live_bars += 1
                    decisions.write(out["decision"])
                    for f in out["fills"]:
                        fills.write(f.as_row())
                    if out["order"] is not None:
                        orders.write(out["order"].as_row())
                    self._write_status(self.feed.stats.state)
                    if max_bars is not None and self.live_bars >= max_bars:
                        break
            finally:
                await gen.aclose()
            state = "STOPPED"
        except BaseException as exc:
            state = f"FAILED: {type(exc).__name__}"
            self.errors.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            decisions.close()
            orders.close()
            fills.close()
            self._write_status(state)
        return self.status(state)

    def run_sync(self, max_bars: int | None = None, duration_s: float | None = None) -> dict:
        return asyncio.run(self.run(max_bars=max_bars, duration_s=duration_s))


def build_live_session(model_dir, *, symbol: str, category: str = "linear", interval: str, out_dir, network: str = "mainnet",
                       rest_url: str | None = None, ws_url: str | None = None, threshold: float = 0.5,
                       hysteresis: float = 0.0, long_only: bool = False, max_exposure: float = 1.0, fees: float = 0.001,
                       slippage: float = 0.0, cash: float = 10_000.0, fallback: bool = True,
                       stale_after_s: float | None = None, threads: int = 1, strategy: str = "effnet") -> LiveSession:
    """A paper LiveSession from a model folder: Predictor (+ momentum-rule fallback) -> SignalModel -> Policy -> Risk."""
    from effnet_trading.model_zoo.failover import FailoverPredictor, RuleBasedPredictor
    from effnet_trading.model_zoo.runtime import Predictor
    from effnet_trading.plugins.bybit.endpoints import resolve_endpoints
    from effnet_trading.plugins.bybit.paper import PaperBroker
    from effnet_trading.strategies import Policy, Risk, SignalModel

    endpoints = resolve_endpoints(network, rest_url, ws_url)
    predictor = Predictor(model_dir, providers="cpu", intra_op_threads=threads)
    model = FailoverPredictor([predictor, RuleBasedPredictor(class_names=predictor.class_names)]) if fallback else predictor
    scorer = SignalModel(model, base_interval=f"{interval_ms(interval) // 60_000}min")
    policy = Policy(threshold, hysteresis, long_only, class_names=scorer.class_names)
    risk = Risk(max_exposure=max_exposure, interval=f"{interval_ms(interval) // 60_000}min")
    broker = PaperBroker(cash, fees=fees, slippage=slippage)
    config = {"model": str(Path(model_dir).resolve()), "symbol": symbol, "category": category, "interval": interval,
              "mode": "paper", "network": endpoints.network, "rest_url": endpoints.rest, "ws_url": endpoints.ws,
              "policy": policy.to_dict(), "risk": risk.to_dict(), "fees": fees, "slippage": slippage, "cash": cash,
              "fallback": fallback, "threads": threads,
              "execution": "decide at the close of bar t, fill at the open of bar t+1"}
    return LiveSession(scorer, policy, risk, broker, BybitREST(endpoints), endpoints, symbol=symbol, category=category,
                       interval=interval, out_dir=out_dir, strategy=strategy,
                       feed_options={"stale_after_s": stale_after_s} if stale_after_s else None, config=config)
