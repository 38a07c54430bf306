"""An order-book capture -> OHLCV bars on a regular grid (mid price; traded quantity as volume).

The order-book ablation (``evaluate --ablation orderbook``) needs candles with a book behind every
bar; the real captures cover minutes, so the bars are sub-second bars built from the capture itself.
"""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pandas as pd

from effnet_trading.errors import DataError
from effnet_trading.imaging.data import parse_timeframe
from effnet_trading.imaging.lob import as_order_book, read_hftbacktest

__all__ = ["capture_bars", "book_message_times"]

_MS = 1_000_000  # ns


def _trades_and_updates(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(trade receive times ns, traded quantities, trade exchange times ns or -1 where the message has
    none, book-update receive times ns) of a capture.

    Binance: ``@trade`` and ``@aggTrade`` lines (``q``; exchange time ``T`` in ms) and ``depthUpdate``
    diffs; Hyperliquid: ``trades`` lines (one entry per trade: ``sz``, exchange time ``time`` in ms)
    and ``l2Book`` snapshots. Receive times, as the book rebuild uses.
    """
    t_tr, q_tr, x_tr, t_up = [], [], [], []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            ts, _, payload = line.partition(" ")
            if '"depthUpdate"' in payload or '"l2Book"' in payload:
                t_up.append(int(ts))
            elif "trade" in payload or "Trade" in payload:  # parse only candidate lines: most are depth or bookTicker
                msg = json.loads(payload)
                data = msg.get("data", msg)
                if isinstance(data, dict) and data.get("e") in ("trade", "aggTrade"):
                    t_tr.append(int(ts))
                    q_tr.append(float(data["q"]))
                    x_tr.append(int(data["T"]) * _MS if "T" in data else -1)
                elif msg.get("channel") == "trades":
                    for t in data:
                        t_tr.append(int(ts))
                        q_tr.append(float(t["sz"]))
                        x_tr.append(int(t["time"]) * _MS if "time" in t else -1)
    return (
        np.asarray(t_tr, np.int64),
        np.asarray(q_tr, np.float64),
        np.asarray(x_tr, np.int64),
        np.sort(np.asarray(t_up, np.int64)),
    )


def book_message_times(path: str | os.PathLike) -> np.ndarray:
    """Sorted receive times (datetime64[ns], UTC) of the book messages of a capture: Binance depth diffs
    or Hyperliquid ``l2Book`` snapshots. The readers sample the book on a forward-filled grid, which has
    a row in every interval of the capture's span, outages included; these are the times something
    arrived (``evaluate --ablation orderbook`` measures its coverage with them)."""
    return _trades_and_updates(os.fspath(path))[3].astype("datetime64[ns]")


def capture_bars(
    path: str | os.PathLike,
    bar: str | pd.Timedelta = "250ms",
    *,
    sample_ms: int | None = None,
    max_gap: str | pd.Timedelta = "10s",
):
    """Bars of ``bar`` from an hftbacktest capture (Binance depth diffs or Hyperliquid ``l2Book``).

    Returns a DataFrame ``open high low close volume`` indexed by bar open time ``t`` (UTC), like
    every candle CSV of the project. Prices are the **mid price** ``(best bid + best ask) / 2`` of the
    book rebuilt by ``imaging.read_hftbacktest`` and sampled every ``sample_ms`` (default: a tenth of
    the bar): ``open`` = the mid at ``t`` (the previous bar's close), ``close`` = the mid at
    ``t + bar``, ``high``/``low`` = the extremes of the samples ``t, t + sample, .., t + bar``. The
    mid is always defined, so no bar is dropped or invented: bars run from the first grid time at or
    after the book's first snapshot to the last one whose close the capture reaches. ``volume`` is
    the quantity of the capture's trade lines received in ``(t, t + bar]`` (0 when none); trades
    whose exchange time is before the first bar opens are not counted (Hyperliquid sends recent
    trades on subscribing, Binance may deliver a late trade: they belong to no bar). Every value of
    bar ``t`` uses only messages received up to ``t + bar``, its close time (receive times; the book
    sample at time g holds every message received at or before g).

    A silence of the book longer than ``max_gap`` (no depth diff or snapshot) is refused rather than
    filled with a stale mid: split the capture there, or raise ``max_gap`` if the book really did not
    change (a diff stream sends nothing while nothing changes).
    """
    path = os.fspath(path)
    step = parse_timeframe(bar)
    bar_ms = step / pd.Timedelta(milliseconds=1)
    if bar_ms < 1 or bar_ms != int(bar_ms):
        raise DataError(f"bar {bar!r} must be a whole number of milliseconds >= 1 (e.g. '250ms', '1s').")
    bar_ms = int(bar_ms)
    sample_ms = max(1, bar_ms // 10) if sample_ms is None else int(sample_ms)
    if sample_ms < 1 or bar_ms % sample_ms:
        raise DataError(
            f"sample_ms={sample_ms} must divide the bar ({bar_ms} ms) so every bar holds the same samples; "
            f"use e.g. sample_ms={max(1, bar_ms // 10)}."
        )
    if not os.path.exists(path):
        raise DataError(f"capture {path!r} does not exist; pass an hftbacktest .gz capture (../shared/data/lob).")
    t_tr, q_tr, x_tr, t_up = _trades_and_updates(path)
    gap = parse_timeframe(max_gap)
    if len(t_up) > 1:
        dt = np.diff(t_up)
        if dt.max() > gap.value:
            j = int(np.argmax(dt))
            a, b = (pd.Timestamp(int(t), tz="UTC") for t in t_up[j : j + 2])
            raise DataError(
                f"{os.path.basename(path)} has no book message from {a} to {b} ({(b - a).total_seconds():.1f} s, "
                f"over max_gap {gap}): bars through it would repeat a stale mid (an outage of the feed?). Split the "
                "capture there, or raise max_gap (`lob bars --max-gap`) if the book really did not change."
            )
        rate_ms = round(float(np.median(dt)) / _MS)
        if bar_ms < rate_ms:
            raise DataError(
                f"bar {bar_ms} ms is finer than the book's updates in {os.path.basename(path)} (median "
                f"{rate_ms} ms between them): most bars would repeat the previous mid. Use a bar of at least "
                f"{rate_ms} ms."
            )
    book = as_order_book(read_hftbacktest(path, levels=1, every_ms=sample_ms))
    times = book.timestamps.astype(np.int64)
    mid = 0.5 * (book.levels[:, 0, 0] + book.levels[:, 0, 2])
    ns, k = bar_ms * _MS, bar_ms // sample_ms
    t0 = -(-times[0] // ns) * ns
    n = int((times[-1] - t0) // ns)
    if n < 2:
        raise DataError(
            f"{os.path.basename(path)} spans {(times[-1] - times[0]) / 1e9:.1f} s of book: fewer than 2 bars of "
            f"{bar_ms} ms. Use a shorter bar or a longer capture."
        )
    if (np.diff(times) != sample_ms * _MS).any():  # the readers sample on a contiguous grid; say so if not
        raise DataError(f"the book of {os.path.basename(path)} is not on a contiguous {sample_ms} ms grid.")
    i0 = int(np.searchsorted(times, t0))
    # sample i0 + j is the book at time t0 + j * sample
    samples = mid[i0 : i0 + n * k + 1]
    win = np.lib.stride_tricks.sliding_window_view(samples, k + 1)[::k]  # (n, k + 1): t, .., t + bar
    inside = (t_tr > t0) & (t_tr <= t0 + n * ns) & ((x_tr < 0) | (x_tr >= t0))
    volume = np.bincount((t_tr[inside] - t0 - 1) // ns, weights=q_tr[inside], minlength=n)[:n]
    index = pd.DatetimeIndex(pd.to_datetime(t0 + ns * np.arange(n), utc=True), name="timestamp")
    return pd.DataFrame(
        {"open": win[:, 0], "high": win.max(1), "low": win.min(1), "close": win[:, -1], "volume": volume}, index=index
    )
